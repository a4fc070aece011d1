"""Each delivery's SMS submitted once, across restarts: recorded segment by segment, answered
from the record or resumed when the core sends the same delivery again.

``SmsSender`` sits between the channel and the pool. Before anything goes out it reads the
record of the delivery's idempotency key (``channels.sms.submissions``):

- every segment was submitted and the delivery is settled: the recorded outcome is the answer
  (confirmed, or PermanentError with the recorded TP-ST); nothing is sent;
- every segment was submitted and reports may still come (within TP-VP), and the core does not
  yet hold the delivery as accepted in this run (it re-sends what a crash left in ``sending``):
  ``accepted`` with the same provider reference and nothing is sent; the reports still confirm
  the delivery. Without status reports acceptance is final: the recorded acceptance is the
  answer;
- every segment was submitted, the core held the delivery as accepted (``send`` answered it, or
  ``resume`` handed it over after a restart) and re-sends it: its confirmation timeout passed
  without a final report (lost by the network, or reported in ``+CDS`` while the server was
  down): a fresh transmission, once; when that copy's reports also stay away, PermanentError
  (the delivery fails, saying so). No delivery waits for reports until its alert expires;
- some segments were submitted (the server stopped between two): only the missing ones are
  sent, with the same concatenation reference, through the same modem (``SmsResume``), so the
  phone joins them; if that modem is not ready the pool sends the whole message through
  another one, since a phone cannot join parts from two senders (TS 23.040 §9.2.3.24.1);
- no record, another number, another text (for a partial message), or the validity period over
  without a final report: a fresh transmission, recorded anew.

A segment is recorded as soon as the network accepted it, before the next one is sent; only a
stop between ``+CMGS`` and that write can repeat one segment. A report is recorded before the
modem deletes its stored copy (``on_report``). ``restore`` hands the open records to the pool
and the tracker before the modems connect, so reports the modems stored while the server was
down, and later ones, confirm as before; ``resume`` answers the deliveries the core still holds
as accepted whose outcome the record has (the core had not written it when the server
stopped). If the record cannot be written (disk full) SMS still go out: a warning matters more
than a duplicate; health shows the fault.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta

from broadcaster.channel import (
    Confirmation,
    ConfirmationOutcome,
    OutgoingDelivery,
    SendOutcome,
    SendResult,
)
from broadcaster.errors import PermanentError
from channels.sms.submissions import (
    SubmissionRecord,
    SubmissionStore,
    SubmissionStoreError,
    text_digest,
)
from channels.sms.tracking import SegmentTracker, parse_reference, pool_reference, status_text
from drivers.gsm import DeliveryReport, GsmModemPool, ReportStatus, SegmentSubmission, SmsResume

log = logging.getLogger(__name__)

NO_REPORTS_NOTE = "no status reports configured: acceptance by the network is the final state"
REPORT_GRACE = 3600.0
"""Seconds after the validity period in which reports of a record are still matched."""

_STATES = {state.value: state for state in ReportStatus}
MAX_AWAITING = 100_000
"""Idempotency keys remembered as accepted by the core; the oldest are forgotten beyond it."""


class SmsSender:
    """Send through a pool at most once per idempotency key; ``confirm`` gets the outcomes."""

    def __init__(
        self,
        store: SubmissionStore,
        confirm: Callable[[Confirmation], None],
        *,
        reporting: bool,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.reporting = reporting
        self.clock = clock
        self.tracker = SegmentTracker(self._emit)
        self.problem: str | None = None
        self._confirm = confirm
        # keys the core holds as accepted (this run) → copies sent again for lack of reports
        self._awaiting: OrderedDict[str, int] = OrderedDict()

    async def restore(self, pool: GsmModemPool) -> int:
        """Watch the records still waiting for reports; call before the pool starts.

        Raises SubmissionStoreError when the record cannot be read.
        """
        if not self.reporting:
            return 0
        records = await self.store.open_records(self.clock() - REPORT_GRACE)
        for record in records:
            if record.segments:  # none: stopped before the first +CMGS answer
                self._reopen(pool, record)
        return len(records)

    async def resume(self, deliveries: Sequence[OutgoingDelivery]) -> int:
        """The deliveries the core holds as accepted after a restart: those whose outcome the
        record has are confirmed or failed now; a later re-send of the others comes after the
        core's confirmation timeout (see ``send``). Returns how many were settled."""
        settled = 0
        for delivery in deliveries:
            record = await self._load(delivery.idempotency_key)
            if record is None:
                continue
            self._accepted_by_core(record.key)
            outcome = _settled(record) if record.outcome is not None else None
            if outcome is not None:
                self._confirm(outcome)
                settled += 1
        return settled

    def _accepted_by_core(self, key: str, copies: int | None = None) -> None:
        self._awaiting[key] = self._awaiting.get(key, 0) if copies is None else copies
        self._awaiting.move_to_end(key)
        while len(self._awaiting) > MAX_AWAITING:
            self._awaiting.popitem(last=False)

    def _reopen(self, pool: GsmModemPool, record: SubmissionRecord) -> None:
        pool.watch(record.reference, record.number, record.submissions())
        modem = record.segments[0].modem  # one copy: the record keeps one modem's segments
        self.tracker.restore(record.delivery_id, record.attempt, _states(record), modem)
        settled = _settled(record)
        if settled is not None:  # the reports were all in; the outcome was not yet written
            self.tracker.forget(record.delivery_id, record.attempt)
            self._emit(settled)

    async def on_report(self, report: DeliveryReport) -> None:
        """A segment's report from the pool: recorded on disk, then tracked. The pool awaits
        this before the modem deletes its stored copy, so a crash loses no report."""
        key = parse_reference(report.reference)
        if key is not None:
            await self._guard(
                self.store.report(
                    key[0],
                    report.sequence,
                    report.modem,
                    report.message_reference,
                    report.state.value,
                    report.status,
                )
            )
        self.tracker.on_report(report)

    def _emit(self, confirmation: Confirmation) -> None:
        if confirmation.outcome in (ConfirmationOutcome.CONFIRMED, ConfirmationOutcome.FAILED):
            outcome = confirmation.outcome.value
            detail = confirmation.detail
            self.store.settle(confirmation.delivery_id, outcome, detail, self.clock())
        self._confirm(confirmation)

    async def send(
        self,
        pool: GsmModemPool,
        delivery: OutgoingDelivery,
        number: str,
        text: str,
        *,
        segments: int,
        priority: int,
        validity: timedelta,
    ) -> SendResult:
        """Send (or answer from the record); raises PermanentError for a recorded failure and
        the pool's GsmError for a failed transmission."""
        now = self.clock()
        key = delivery.idempotency_key
        digest = text_digest(text)
        record = await self._load(key)
        resume: SmsResume | None = None
        attempt = delivery.attempt
        if record is not None and record.number == number:
            answer = self._answer(pool, record, now)
            if answer is not None:
                return answer
            partial = record.segments and not record.complete
            if partial and record.digest == digest and now < record.valid_until:
                resume, attempt = record.resume(), record.attempt
        if resume is None:
            await self._guard(
                self.store.begin(
                    key,
                    delivery_id=delivery.id,
                    attempt=attempt,
                    number=number,
                    digest=digest,
                    total=segments,
                    now=now,
                    valid_until=now + validity.total_seconds(),
                    expires_at=delivery.expires_at,
                )
            )
        known = _states(record) if record is not None and resume is not None else None
        if self.reporting:
            modem = resume.modem if resume is not None else None
            reference = self.tracker.expect(delivery.id, attempt, known, modem)
        else:
            reference = pool_reference(delivery.id, attempt)

        async def record_segment(segment: SegmentSubmission) -> None:
            # before any await: the segment's own reports are tracked after this
            self.tracker.sent(delivery.id, attempt, segment.modem)
            await self._guard(self.store.segment(key, segment, self.clock()))

        try:
            submission = await pool.send(
                number,
                text,
                reference=reference,
                priority=priority,
                validity=validity,
                deadline=delivery.expires_at,
                resume=resume,
                on_segment=record_segment,
            )
        except BaseException:
            self.tracker.forget(delivery.id, attempt)
            raise
        if self.reporting:
            self.tracker.accepted(delivery.id, attempt)
        sent = submission.segments
        detail = f"{len(sent)} {submission.encoding.name} segment(s) accepted by the network"
        if resume is not None and sent[0].modem == resume.modem:
            detail += f" ({len(resume.segments)} of them before a restart)"
        detail += "; awaiting status reports" if self.reporting else f"; {NO_REPORTS_NOTE}"
        provider_ref = ",".join(f"{s.modem}:{s.message_reference}" for s in sent)
        self._accepted_by_core(key)
        return SendResult(SendOutcome.ACCEPTED, provider_ref=provider_ref, detail=detail)

    def _answer(
        self, pool: GsmModemPool, record: SubmissionRecord, now: float
    ) -> SendResult | None:
        """The answer from the record: settled, or every segment submitted; None: send."""
        settled = _settled(record)
        reference = record.provider_ref
        if settled is not None and settled.outcome is ConfirmationOutcome.FAILED:
            raise PermanentError(f"{settled.detail}; nothing sent again")
        if settled is not None:
            detail = f"{settled.detail}; nothing sent again"
            return SendResult(SendOutcome.CONFIRMED, provider_ref=reference, detail=detail)
        if not record.complete:
            return None
        before = f"all {record.total} segment(s) were accepted by the network before"
        if not self.reporting:
            detail = f"{before}; nothing sent again; {NO_REPORTS_NOTE}"
            return SendResult(SendOutcome.ACCEPTED, provider_ref=reference, detail=detail)
        if now >= record.valid_until:
            return None  # the network gave up on it without a report reaching us
        copies = self._awaiting.get(record.key)
        if copies is not None:  # the core's confirmation timeout passed without a final report
            if copies:
                raise PermanentError(
                    f"no final status report within the confirmation timeout for the"
                    f" {record.total} segment(s) the network accepted, nor for the copy sent"
                    " again; not sent a third time"
                )
            log.info("delivery %d: no final status report; sent again", record.delivery_id)
            self._accepted_by_core(record.key, copies + 1)
            return None
        self._accepted_by_core(record.key)
        if not self.tracker.is_open(record.delivery_id, record.attempt):
            self._reopen(pool, record)
        detail = f"{before}; nothing sent again; awaiting status reports"
        return SendResult(SendOutcome.ACCEPTED, provider_ref=reference, detail=detail)

    async def _load(self, key: str) -> SubmissionRecord | None:
        try:
            return await self.store.load(key)
        except SubmissionStoreError as exc:
            self._failed(exc)
            return None

    async def _guard(self, write: Awaitable[None]) -> None:
        """Await a record write; a failure is logged and shown in health, never raised."""
        try:
            await write
        except SubmissionStoreError as exc:
            self._failed(exc)

    def _failed(self, exc: SubmissionStoreError) -> None:
        if self.problem != str(exc):
            log.error("%s; SMS are sent without a record of them", exc)
        self.problem = str(exc)


def _states(record: SubmissionRecord) -> dict[int, ReportStatus]:
    """What reports said of each segment (segments without a report are left out)."""
    return {s.sequence: _STATES[s.state] for s in record.segments if s.state in _STATES}


def _settled(record: SubmissionRecord) -> Confirmation | None:
    """The delivery's outcome by its record: written, or decided by its segments' reports."""
    if record.outcome == ConfirmationOutcome.CONFIRMED:
        return Confirmation(record.delivery_id, ConfirmationOutcome.CONFIRMED, record.detail or "")
    if record.outcome == ConfirmationOutcome.FAILED:
        return Confirmation(record.delivery_id, ConfirmationOutcome.FAILED, record.detail or "")
    failed = [s for s in record.segments if s.state == ReportStatus.FAILED.value]
    if failed:
        segment = failed[0]
        detail = (
            f"segment {segment.sequence}/{record.total} via {segment.modem} failed:"
            f" {status_text(segment.status or 0)}"
        )
        return Confirmation(record.delivery_id, ConfirmationOutcome.FAILED, detail)
    delivered = sum(s.state == ReportStatus.DELIVERED.value for s in record.segments)
    if record.complete and delivered == record.total:
        detail = f"all {record.total} segment(s) delivered (status reports)"
        return Confirmation(record.delivery_id, ConfirmationOutcome.CONFIRMED, detail)
    return None
