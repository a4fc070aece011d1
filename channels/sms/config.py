"""The typed configuration of an ``sms`` channel instance and its translation to the GSM pool's.

One ``[channels.<name>]`` table with ``type = "sms"``; each ``[[channels.<name>.modems]]`` is one
modem (a device path, a stable ``/dev/serial/by-id/...`` link or a pyserial URL such as
``socket://host:port``) with its rate limit. Everything is validated once, at load: an invalid
value names its key and nothing is opened.

Status reports are set for the whole instance, not per modem: the pool tracks every message the
same way, and with them on a delivery is confirmed only when the network reports each segment
delivered. ``simulate = true`` starts in-process simulated modems instead (demos, bench tests).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from broadcaster.config import SecretValue
from channels.smstext.templates import SmsTextConfig
from drivers.gsm import GsmConfigError, GsmModemConfig, GsmPoolConfig, ReportMode


class SmsModemSettings(BaseModel):
    """One modem of the channel's pool."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_-]+$")
    port: str = Field(min_length=1, description="device path or pyserial URL")
    baudrate: int = Field(115200, gt=0)
    pin: SecretValue | None = Field(None, description="SIM PIN, if the SIM asks for one")
    rtscts: bool = False
    dsrdtr: bool = False
    report_mode: Literal["stored", "direct"] = Field(
        "stored", description="stored: +CDSI then AT+CMGR; direct: +CDS with the PDU"
    )
    segments_per_minute: float | None = Field(
        None, gt=0, description="rate limit of this modem; none: as fast as it answers"
    )
    command_timeout_seconds: float = Field(5.0, gt=0)
    send_timeout_seconds: float = Field(60.0, gt=0)
    health_interval_seconds: float = Field(30.0, gt=0)
    reconnect_interval_seconds: float = Field(2.0, ge=0)


class SmsChannelConfig(SmsTextConfig):
    """``[channels.<name>]`` of ``type = "sms"``."""

    modems: list[SmsModemSettings] = Field(default_factory=list)
    status_reports: bool = Field(
        True, description="request a status report per segment; off: acceptance is final"
    )
    max_attempts: int = Field(3, ge=1, le=10, description="pool tries per send, any modem")
    retry_delay_seconds: float = Field(0.5, ge=0)
    validity_minutes: float | None = Field(
        None, ge=5, description="TP-VP; default: until the alert expires (at least 5 minutes)"
    )
    groups_csv: Path | None = Field(
        None, description="subscriber groups to register at start (relative to the data dir)"
    )
    simulate: bool = Field(False, description="start in-process simulated modems (demo only)")
    simulated_modems: int = Field(2, ge=1, le=16)
    simulated_report_delay_seconds: float = Field(0.5, ge=0)

    @model_validator(mode="after")
    def _check_modems(self) -> SmsChannelConfig:
        if not self.modems and not self.simulate:
            raise ValueError("modems: at least one modem is needed (or simulate = true)")
        if self.modems and self.simulate:
            raise ValueError("simulate = true starts its own modems: remove modems or simulate")
        names = [m.name for m in self.modems]
        if len(set(names)) != len(names):
            raise ValueError(f"modems: duplicate names in {names}")
        ports = [m.port for m in self.modems]
        if len(set(ports)) != len(ports):
            raise ValueError("modems: two modems share one port")
        self.pool_config()  # the driver's own checks (PIN format, timeouts) at load time
        return self

    def pool_config(self, ports: dict[str, str] | None = None) -> GsmPoolConfig:
        """The GSM pool configuration; ``ports`` replaces modem ports (simulated modems)."""
        modems = self.modems or [
            SmsModemSettings(name=f"sim{n}", port=f"sim{n}") for n in range(self.simulated_modems)
        ]
        try:
            return GsmPoolConfig(
                modems=tuple(self._modem_config(m, (ports or {}).get(m.name)) for m in modems),
                max_attempts=self.max_attempts,
                retry_delay=self.retry_delay_seconds,
                max_segments=self.segment_limit,
                validity=(
                    timedelta(minutes=self.validity_minutes) if self.validity_minutes else None
                ),
            )
        except GsmConfigError as exc:
            raise ValueError(str(exc)) from exc

    def _modem_config(self, modem: SmsModemSettings, port: str | None) -> GsmModemConfig:
        rate = modem.segments_per_minute
        return GsmModemConfig(
            name=modem.name,
            port=port or modem.port,
            baudrate=modem.baudrate,
            rtscts=modem.rtscts,
            dsrdtr=modem.dsrdtr,
            pin=modem.pin.reveal() if modem.pin is not None else None,
            command_timeout=modem.command_timeout_seconds,
            prompt_timeout=modem.command_timeout_seconds,
            send_timeout=modem.send_timeout_seconds,
            status_reports=self.status_reports,
            report_mode=ReportMode.DIRECT if modem.report_mode == "direct" else ReportMode.STORED,
            min_send_interval=60.0 / rate if rate else 0.0,
            health_interval=modem.health_interval_seconds,
            reconnect_interval=modem.reconnect_interval_seconds,
        )
