"""What the modem pool hands back: per-segment submissions, delivery reports and modem health.

A message is "accepted" once every segment got a TP-MR from ``+CMGS`` (TS 27.005 §3.5.1). With
status reports configured, each segment is then followed by ``DeliveryReport``s carrying the
TP-ST of TS 23.040 §9.2.3.15: ``pending`` reports may repeat, ``delivered`` and ``failed`` are
final. Without status reports, acceptance is the final state.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from drivers.gsm.codec import SmsEncoding
from drivers.gsm.pdu import DeliveryState


class ModemState(enum.Enum):
    """Where a modem of the pool stands; only ``READY`` modems take messages."""

    CONNECTING = "connecting"
    READY = "ready"
    NO_SERVICE = "no-service"  # the port answers but the modem is not registered
    FAILED = "failed"  # the port vanished, stalled or answered garbage; reconnecting
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class SegmentSubmission:
    """One segment accepted by the network: which modem sent it and the TP-MR it got."""

    sequence: int
    total: int
    modem: str
    message_reference: int


@dataclass(frozen=True, slots=True)
class SmsSubmission:
    """A whole message accepted by the network, one entry per segment in order."""

    reference: str
    number: str
    encoding: SmsEncoding
    segments: tuple[SegmentSubmission, ...]
    status_reports: bool

    @property
    def final(self) -> bool:
        """True when acceptance is all there will be (no status reports requested)."""
        return not self.status_reports


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """A status report matched to the segment it is about."""

    reference: str
    number: str
    sequence: int
    total: int
    modem: str
    message_reference: int
    state: DeliveryState
    status: int
    discharge_time: datetime

    @property
    def final(self) -> bool:
        return self.state is not DeliveryState.PENDING


@dataclass(frozen=True, slots=True)
class ModemHealth:
    """A modem's state as last seen: radio signal, whether it is sending, and counters."""

    name: str
    state: ModemState
    rssi: int | None
    registered: bool
    busy: bool
    sent_segments: int
    failures: int
    last_error: str | None
