"""Typed configuration of one GSM modem and of a pool of them, validated once at construction.

Every invalid value raises GsmConfigError naming the key, before any port is opened. Timeouts
and intervals are in seconds. Status reports cost money on some networks, so they are off
unless ``status_reports`` is set.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from datetime import timedelta

from drivers.gsm.codec import MAX_SEGMENTS
from drivers.gsm.errors import GsmConfigError


class ReportMode(enum.Enum):
    """How the modem hands status reports over (27.005 §3.4.1, ``AT+CNMI`` ``<ds>``)."""

    STORED = "cdsi"  # <ds>=2: "+CDSI: <mem>,<index>", read with +CMGR, then deleted
    DIRECT = "cds"  # <ds>=1: "+CDS: <length>" followed by the PDU line

    @property
    def cnmi_ds(self) -> int:
        return 2 if self is ReportMode.STORED else 1


@dataclass(frozen=True, slots=True)
class GsmModemConfig:
    """One modem: where it is and how to talk to it.

    ``port`` is anything pyserial's ``serial_for_url`` opens: ``/dev/ttyUSB0``, a pty path, a
    stable symlink, ``socket://host:port``. Hardware flow control is off by default: many
    USB modems and UARTs do not wire RTS/CTS or DSR/DTR. ``smsc`` sets the service centre
    (``AT+CSCA``) for SIMs that lack one; ``pin`` is never shown in a repr.
    """

    name: str
    port: str
    baudrate: int = 115200
    rtscts: bool = False
    dsrdtr: bool = False
    pin: str | None = field(default=None, repr=False)
    smsc: str | None = None
    command_timeout: float = 5.0
    prompt_timeout: float = 5.0
    send_timeout: float = 60.0
    status_reports: bool = False
    report_mode: ReportMode = ReportMode.STORED
    min_send_interval: float = 0.0
    health_interval: float = 30.0
    reconnect_interval: float = 2.0

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("-", "").replace("_", "").isalnum():
            raise GsmConfigError(f"modem name {self.name!r}: use letters, digits, - and _")
        if not self.port:
            raise GsmConfigError(f"modem {self.name}: port is empty")
        if self.baudrate <= 0:
            raise GsmConfigError(f"modem {self.name}: baudrate must be positive")
        if self.pin is not None and not (self.pin.isdigit() and 4 <= len(self.pin) <= 8):
            raise GsmConfigError(f"modem {self.name}: pin must be 4-8 digits")
        if self.smsc is not None and not re.fullmatch(r"\+[0-9]{3,20}", self.smsc):
            raise GsmConfigError(f"modem {self.name}: smsc must be an international number")
        for key in ("command_timeout", "prompt_timeout", "send_timeout", "health_interval"):
            if getattr(self, key) <= 0:
                raise GsmConfigError(f"modem {self.name}: {key} must be positive")
        for key in ("min_send_interval", "reconnect_interval"):
            if getattr(self, key) < 0:
                raise GsmConfigError(f"modem {self.name}: {key} must not be negative")


@dataclass(frozen=True, slots=True)
class GsmPoolConfig:
    """A pool of modems sharing one queue of messages.

    ``max_attempts`` bounds how often one message is tried (on any modem) after retryable
    errors; ``retry_delay`` is the pause before a retry. ``queue_timeout`` is how long queued
    messages wait for a modem to come back once no modem is ready (all failed, without service
    or reconnecting): then every one of them fails with GsmNoModemError. It never applies while
    a modem is ready: a message waits for a busy healthy modem until its own deadline (the
    ``deadline`` of ``GsmModemPool.send``, e.g. its alert's expiry). ``max_segments``
    caps the segments one message may take; ``validity`` (TP-VP) tells the network how long to
    keep trying.
    """

    modems: tuple[GsmModemConfig, ...]
    max_attempts: int = 3
    retry_delay: float = 0.5
    queue_timeout: float = 30.0
    max_segments: int = MAX_SEGMENTS
    validity: timedelta | None = None

    def __post_init__(self) -> None:
        if not self.modems:
            raise GsmConfigError("pool: at least one modem is needed")
        names = [modem.name for modem in self.modems]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise GsmConfigError(f"pool: duplicate modem names {duplicates}")
        ports = [modem.port for modem in self.modems]
        if len(set(ports)) != len(ports):
            raise GsmConfigError("pool: two modems share one port")
        if len({modem.status_reports for modem in self.modems}) > 1:
            raise GsmConfigError("pool: status_reports must be the same for every modem")
        if self.max_attempts < 1:
            raise GsmConfigError("pool: max_attempts must be at least 1")
        if self.retry_delay < 0:
            raise GsmConfigError("pool: retry_delay must not be negative")
        if self.queue_timeout <= 0:
            raise GsmConfigError("pool: queue_timeout must be positive")
        if self.validity is not None and self.validity < timedelta(minutes=5):
            raise GsmConfigError("pool: validity must be at least 5 minutes")
        if not 1 <= self.max_segments <= MAX_SEGMENTS:
            raise GsmConfigError(f"pool: max_segments must be 1-{MAX_SEGMENTS}")

    @property
    def status_reports(self) -> bool:
        return self.modems[0].status_reports
