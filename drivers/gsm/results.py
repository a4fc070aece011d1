"""What the modem pool hands back: per-segment submissions, delivery reports and modem health.

A message is "accepted" once every segment got a TP-MR from ``+CMGS`` (TS 27.005 §3.5.1). With
status reports configured, each segment is then followed by ``DeliveryReport``s carrying the
TP-ST of TS 23.040 §9.2.3.15: ``pending`` reports may repeat, ``delivered`` and ``failed`` are
final. Without status reports, acceptance is the final state.

Reports are matched to segments by (modem, TP-MR, recipient): TP-MR is 8 bits per modem and
wraps, so the recipient guards against a stale reference; a report that overtakes its
``+CMGS`` answer is held until the segment is registered.
"""

from __future__ import annotations

import enum
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime

from drivers.gsm.codec import SmsEncoding
from drivers.gsm.pdu import ReportStatus, StatusReportPdu


class ModemState(enum.Enum):
    """Where a modem of the pool stands; only ``READY`` modems take messages."""

    CONNECTING = "connecting"
    READY = "ready"
    NO_SERVICE = "no-service"  # the port answers but the modem is not registered
    FAILED = "failed"  # the port vanished, stalled or answered garbage; reconnecting
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class SegmentSubmission:
    """One segment accepted by the network: which modem sent it and the TP-MR it got.

    ``concat_reference`` is the reference of the concatenation header (TS 23.040 §9.2.3.24.1)
    the segment carried; None for a message of one segment.
    """

    sequence: int
    total: int
    modem: str
    message_reference: int
    concat_reference: int | None = None


@dataclass(frozen=True, slots=True)
class SmsResume:
    """Segments of a message accepted earlier (before a restart): send only the others.

    The missing segments get the same concatenation reference, so a phone joins them with the
    earlier ones; they go out through the earlier segments' modem (same sender address) when it
    is ready, else the whole message is sent again through another modem.
    """

    concat_reference: int | None
    segments: tuple[SegmentSubmission, ...]

    @property
    def modem(self) -> str | None:
        """The modem the earlier segments went through (None if there are none)."""
        return self.segments[0].modem if self.segments else None


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
    state: ReportStatus
    status: int
    discharge_time: datetime

    @property
    def final(self) -> bool:
        return self.state is not ReportStatus.PENDING


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
    unreadable_lines: int  # unsolicited lines (reports) the modem sent that could not be read
    last_error: str | None


@dataclass(frozen=True, slots=True)
class _Expected:
    reference: str
    number: str
    sequence: int
    total: int


class ReportTracker:
    """Match status reports to the segments they are about; not thread-safe (event loop).

    A report nobody expects yet is held for ``early_window`` seconds: long enough for the
    ``+CMGS`` answer it overtook, too short to meet a reused TP-MR. At most ``max_early`` TP-MRs
    are held, ``EARLY_PER_SEGMENT`` reports each; expected segments are keyed by modem and TP-MR
    (8 bits), so neither table grows with the number of reports.
    """

    EARLY_PER_SEGMENT = 4

    def __init__(self, max_early: int = 1024, early_window: float = 30.0) -> None:
        self._expected: dict[tuple[str, int], _Expected] = {}
        self._early: OrderedDict[tuple[str, int], list[tuple[float, StatusReportPdu]]]
        self._early = OrderedDict()
        self._max_early = max_early
        self._early_window = early_window

    def expect(
        self, segment: SegmentSubmission, reference: str, number: str
    ) -> list[DeliveryReport]:
        """Register an accepted segment; return reports that arrived before it, now matched."""
        key = (segment.modem, segment.message_reference)
        self._expected[key] = _Expected(reference, number, segment.sequence, segment.total)
        recent = time.monotonic() - self._early_window
        held = [report for at, report in self._early.pop(key, []) if at >= recent]
        return [delivery for report in held if (delivery := self.match(key[0], report))]

    def forget(self, segment: SegmentSubmission) -> None:
        """Stop matching reports for a segment whose message is being sent again elsewhere."""
        self._expected.pop((segment.modem, segment.message_reference), None)

    def match(self, modem: str, report: StatusReportPdu) -> DeliveryReport | None:
        """The report as a DeliveryReport, or None if no segment expects it (yet)."""
        key = (modem, report.message_reference)
        expected = self._expected.get(key)
        if expected is None or not same_number(expected.number, report.recipient):
            held = self._early.setdefault(key, [])
            held.append((time.monotonic(), report))
            del held[: -self.EARLY_PER_SEGMENT]
            while len(self._early) > self._max_early:
                self._early.popitem(last=False)
            return None
        if report.state is not ReportStatus.PENDING:
            del self._expected[key]
        return DeliveryReport(
            reference=expected.reference,
            number=expected.number,
            sequence=expected.sequence,
            total=expected.total,
            modem=modem,
            message_reference=report.message_reference,
            state=report.state,
            status=report.status,
            discharge_time=report.discharge_time,
        )


def same_number(sent: str, reported: str) -> bool:
    """Networks may report the number in another format: compare the last nine digits."""
    return sent.lstrip("+")[-9:] == reported.lstrip("+")[-9:]
