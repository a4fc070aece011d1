"""Status reports to confirmations: a delivery is confirmed when every segment is delivered.

Follows TS 23.040 §9.2.3.15 (TP-Status) as the driver classifies it: ``00``-``1F`` delivered,
``20``-``3F`` temporary (the network keeps trying: the delivery stays accepted and a
``PROGRESS`` confirmation restarts the core's confirmation timer), ``40``-``6F`` and reserved
values failed for good (``FAILED``).

Each send of a delivery is an attempt with its own pool reference ``<delivery id>/<attempt>``:
the segments of one attempt share a concatenation reference, so a phone joins only those.
Whichever attempt has every segment delivered first confirms the delivery; a failure of an older
attempt is dropped once a newer one is under way. Reports for deliveries already settled are
ignored. The table of open attempts is bounded; the core re-sends what is never confirmed.

Within one attempt only the copy in force counts. When a modem fails mid-message the pool sends
the whole message again through another modem (another sender: a phone never joins parts of
the two copies, TS 23.040 §9.2.3.24.1); the first segment the new modem sends (``sent``) drops
what reports said of the abandoned copy, and later reports of that copy are ignored.

After a restart the channel re-opens the attempts its record (``channels.sms.submissions``)
still waits on, with the segment states reports gave before (``restore``): late reports then
confirm the delivery as if nothing had happened.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from broadcaster.channel import Confirmation, ConfirmationOutcome
from drivers.gsm import DeliveryReport, ReportStatus

log = logging.getLogger(__name__)

TP_STATUS_NAMES = {
    0x20: "congestion",
    0x21: "recipient busy",
    0x22: "no response from recipient",
    0x23: "service rejected",
    0x24: "quality of service not available",
    0x25: "error in recipient",
    0x40: "remote procedure error",
    0x41: "incompatible destination",
    0x42: "connection rejected by recipient",
    0x43: "not obtainable",
    0x44: "quality of service not available",
    0x45: "no interworking available",
    0x46: "validity period expired",
    0x47: "deleted by the sender",
    0x48: "deleted by the service centre",
    0x49: "message does not exist",
}
"""TS 23.040 §9.2.3.15 names of the TP-ST values seen in practice."""


def status_text(status: int) -> str:
    """``TP-ST 0x46 (validity period expired)``."""
    name = TP_STATUS_NAMES.get(status)
    if name is None:
        name = "temporary, no more attempts" if 0x60 <= status <= 0x6F else "unnamed"
    return f"TP-ST 0x{status:02X} ({name})"


def pool_reference(delivery_id: int, attempt: int) -> str:
    """The pool reference of one attempt of a delivery."""
    return f"{delivery_id}/{attempt}"


def parse_reference(reference: str) -> tuple[int, int] | None:
    delivery, _, attempt = reference.partition("/")
    if not (delivery.isdigit() and attempt.isdigit()):
        return None
    return int(delivery), int(attempt)


@dataclass(slots=True)
class _Attempt:
    states: dict[int, ReportStatus] = field(default_factory=dict)
    modem: str | None = None  # the modem of the copy in force (None: none sent yet)
    sent: bool = False  # the pool returned the submission
    held: Confirmation | None = None  # a final outcome that arrived before that
    step: Confirmation | None = None  # the last progress that arrived before that


class SegmentTracker:
    """Open attempts and their segments; ``emit`` receives the confirmations (event loop)."""

    def __init__(self, emit: Callable[[Confirmation], None], max_open: int = 100_000) -> None:
        self._emit = emit
        self._max_open = max_open
        self._open: OrderedDict[tuple[int, int], _Attempt] = OrderedDict()
        self._attempts: dict[int, set[int]] = {}

    @property
    def open_attempts(self) -> int:
        return len(self._open)

    def expect(
        self,
        delivery_id: int,
        attempt: int,
        states: Mapping[int, ReportStatus] | None = None,
        modem: str | None = None,
    ) -> str:
        """Open an attempt before it is sent (reports may overtake ``+CMGS``); its reference.

        ``states``: what reports said of segments ``modem`` sent before a restart (a resumed
        message).
        """
        self._open[(delivery_id, attempt)] = _Attempt(states=dict(states or {}), modem=modem)
        self._attempts.setdefault(delivery_id, set()).add(attempt)
        while len(self._open) > self._max_open:
            self.forget(*next(iter(self._open)))
        return pool_reference(delivery_id, attempt)

    def restore(
        self, delivery_id: int, attempt: int, states: Mapping[int, ReportStatus], modem: str
    ) -> None:
        """Re-open an attempt ``modem`` sent before a restart; its next reports settle it."""
        self.expect(delivery_id, attempt, states, modem)
        self._open[(delivery_id, attempt)].sent = True

    def is_open(self, delivery_id: int, attempt: int) -> bool:
        return (delivery_id, attempt) in self._open

    def accepted(self, delivery_id: int, attempt: int) -> None:
        """The attempt's send returned: release an outcome its reports already decided.

        Holding it until now keeps the core's order: accepted first, then confirmed.
        """
        entry = self._open.get((delivery_id, attempt))
        if entry is None:
            return
        entry.sent = True
        if entry.held is not None:
            self._settle(delivery_id)
            self._emit(entry.held)
        elif entry.step is not None:
            self._emit(entry.step)

    def sent(self, delivery_id: int, attempt: int, modem: str) -> None:
        """A segment of the attempt was accepted through ``modem``. Another modem than before
        starts a new copy: the states, outcome and progress of the abandoned one are dropped."""
        entry = self._open.get((delivery_id, attempt))
        if entry is None or entry.modem == modem:
            return
        if entry.modem is None:  # the first copy: what reports said so far is of it
            entry.modem = modem
            return
        if entry.states:
            log.info(
                "delivery %d: sent again through %s; the reports of the copy %s sent no"
                " longer count",
                delivery_id,
                modem,
                entry.modem,
            )
        entry.modem = modem
        entry.states.clear()
        entry.held = entry.step = None

    def forget(self, delivery_id: int, attempt: int) -> None:
        """Drop one attempt (not sent, superseded, or the oldest when the table is full)."""
        self._open.pop((delivery_id, attempt), None)
        attempts = self._attempts.get(delivery_id)
        if attempts is not None:
            attempts.discard(attempt)
            if not attempts:
                del self._attempts[delivery_id]

    def on_report(self, report: DeliveryReport) -> None:
        """Record one segment's report; confirm, fail or mark progress of its delivery."""
        key = parse_reference(report.reference)
        entry = self._open.get(key) if key is not None else None
        if key is None or entry is None:
            log.debug("status report for %s: no open attempt, ignored", report.reference)
            return
        delivery_id, attempt = key
        if entry.modem is not None and report.modem != entry.modem:
            log.debug(
                "status report for %s via %s: a copy sent again elsewhere, ignored",
                report.reference,
                report.modem,
            )
            return
        entry.states[report.sequence] = report.state
        where = f"segment {report.sequence}/{report.total} via {report.modem}"
        if report.state is ReportStatus.FAILED:
            if attempt < max(self._attempts[delivery_id]):
                self.forget(delivery_id, attempt)  # a newer attempt is under way; it decides
                return
            detail = f"{where} failed: {status_text(report.status)}"
            self._final(entry, Confirmation(delivery_id, ConfirmationOutcome.FAILED, detail))
            return
        delivered = sum(state is ReportStatus.DELIVERED for state in entry.states.values())
        if delivered == report.total:
            detail = f"all {report.total} segment(s) delivered (status reports)"
            self._final(entry, Confirmation(delivery_id, ConfirmationOutcome.CONFIRMED, detail))
            return
        if report.state is ReportStatus.PENDING:
            detail = f"{where}: {status_text(report.status)}, the network keeps trying"
        else:
            detail = f"{where} delivered ({delivered} of {report.total})"
        step = Confirmation(delivery_id, ConfirmationOutcome.PROGRESS, detail)
        if entry.sent:
            self._emit(step)
        else:
            entry.step = step  # shown once the core has recorded the send

    def _final(self, entry: _Attempt, confirmation: Confirmation) -> None:
        if entry.held is not None:
            return
        if not entry.sent:
            entry.held = confirmation
            return
        self._settle(confirmation.delivery_id)
        self._emit(confirmation)

    def _settle(self, delivery_id: int) -> None:
        for attempt in self._attempts.pop(delivery_id, set()):
            self._open.pop((delivery_id, attempt), None)
