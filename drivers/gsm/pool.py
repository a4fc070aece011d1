"""An asyncio pool of GSM modems: least-loaded routing, failover, rate limits, status reports.

The async face of the driver. Each modem (``pool_modem.PoolModem``) has one worker thread for
its blocking AT traffic (nothing blocking runs on the event loop) and one supervisor task here
that connects, sends its message one segment at a time (TS 27.005 §3.5.1, one ``AT+CMGS``
per segment), polls health (``AT+CSQ``, ``AT+CREG?``) and reconnects after the port vanished.

Routing: messages wait in one pool queue, by priority then arrival; a modem holds at most one
message at a time and takes the next one as soon as it is idle, healthy and within its rate
limit, so the least loaded healthy modem always takes the next message. When a modem fails
(port gone, stall, garbage), its message in flight goes back into the queue at its old place.
A retry on the same modem keeps the segments already accepted; on another modem (another SIM,
so another sender address: phones join parts by sender and reference) every segment is sent
again, and reports of the abandoned copy are no longer matched. Delivery is at least once per
segment. A new message is refused with GsmNoModemError when no modem is ready. A queued message
waits for a busy healthy modem as long as it takes, up to its own ``deadline`` (the alert's
expiry); once no modem has been ready for ``queue_timeout`` every queued message fails with
GsmNoModemError. A modem that fails again and again backs off. Retryable errors
(``GsmRetryableError``) are retried up to ``GsmPoolConfig.max_attempts`` times; permanent ones
fail the message at once.

Restarts: each accepted segment is handed to the sender's ``on_segment`` before the next one
goes out, so the sender can record it. After a restart, ``watch`` matches reports for recorded
segments again, and a message resumed with ``SmsResume`` sends only its missing segments, with
the earlier concatenation reference, through the earlier modem (``pool_queue``).

Status reports (only when configured) are matched and handed to listeners by
``pool_reports.PoolReports``; a report the modem stored is deleted from it only once the
listeners finished with it, so a crash in between leaves it stored for the next connect.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
from collections.abc import AsyncIterator, Coroutine, Sequence
from datetime import timedelta
from types import TracebackType
from typing import Any

from drivers.gsm.config import GsmPoolConfig
from drivers.gsm.errors import (
    GsmError,
    GsmModemFaultError,
    GsmNoModemError,
    GsmPermanentError,
    GsmPortError,
    GsmProtocolError,
    GsmRetryableError,
    GsmTimeoutError,
)
from drivers.gsm.modem import GsmModemClient
from drivers.gsm.pdu import StatusReportPdu, encode_submit, normalize_number
from drivers.gsm.pool_modem import PoolModem
from drivers.gsm.pool_queue import MessageQueue, PoolJob, SegmentCallback
from drivers.gsm.pool_reports import PoolReports, ReportListener
from drivers.gsm.results import (
    DeliveryReport,
    ModemHealth,
    ModemState,
    SegmentSubmission,
    SmsResume,
    SmsSubmission,
)

log = logging.getLogger(__name__)
_MODEM_FAULTS = (GsmPortError, GsmTimeoutError, GsmProtocolError, GsmModemFaultError)


class GsmModemPool:
    """Send SMS through a pool of modems; see the module docstring for routing and retries.

    ``send`` raises GsmPermanentError subclasses (bad number, text too long, rejected PDU) or
    GsmRetryableError subclasses (no healthy modem, retries exhausted). Reports arrive through
    listeners added with ``add_report_listener`` and through ``reports()`` (one consumer, the
    last ``REPORT_BACKLOG`` reports).
    """

    def __init__(self, config: GsmPoolConfig) -> None:
        self.config = config
        self._slots: dict[str, PoolModem] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        # a random start: after a restart, new messages do not reuse the last run's references
        self._concat = itertools.count(random.randrange(256))
        self._reports = PoolReports(self._spawn)
        self._running = False
        self._queue = MessageQueue(self._is_ready, self._expire)
        self._unfinished: set[PoolJob] = set()
        self._none_ready: asyncio.TimerHandle | None = None

    @property
    def status_reports(self) -> bool:
        """Whether segments get delivery reports; without them acceptance is final."""
        return self.config.status_reports

    async def start(self) -> None:
        """Connect every modem (in parallel) and return once each has tried once."""
        self._loop = asyncio.get_running_loop()
        self._running = True
        for modem in self.config.modems:
            client = GsmModemClient(modem, self._report_from_thread, self._lost_from_thread)
            slot = PoolModem(modem, client, self._watch_readiness)
            self._slots[modem.name] = slot
            self._spawn(self._supervise(slot))
        await asyncio.gather(*(slot.attempted.wait() for slot in self._slots.values()))

    async def stop(self) -> None:
        """Stop sending, close every port and fail queued messages with GsmNoModemError."""
        self._running = False
        self._watch_readiness()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._queue.drain()
        for job in list(self._unfinished):
            self._fail(job, GsmNoModemError("the modem pool stopped"))
        for slot in self._slots.values():
            await slot.close()

    async def __aenter__(self) -> GsmModemPool:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    def health(self) -> list[ModemHealth]:
        """The state of every modem, in configuration order."""
        return [slot.health() for slot in self._slots.values()]

    async def wait_for_state(self, name: str, state: ModemState) -> None:
        """Wait until modem ``name`` is in ``state`` (bound it with ``asyncio.timeout``)."""
        slot = self._slots.get(name)
        if slot is None:
            raise GsmNoModemError(f"no modem named {name!r} in the pool")
        await slot.entered[state].wait()

    def add_report_listener(self, listener: ReportListener) -> None:
        """Call ``listener`` on the event loop for every matched status report; an awaitable
        it returns is awaited before the modem deletes a stored report."""
        self._reports.add_listener(listener)

    async def reports(self) -> AsyncIterator[DeliveryReport]:
        """Matched status reports, per segment, as they arrive (those that came before the
        first read are kept, up to ``REPORT_BACKLOG``; listeners see every one)."""
        async for report in self._reports.reports():
            yield report

    def watch(self, reference: str, number: str, segments: Sequence[SegmentSubmission]) -> None:
        """Match reports for segments accepted before this pool existed (kept by the caller
        across a restart). Call it before ``start``: reports the modems stored meanwhile are
        read at connect. A TP-MR the modem hands out again replaces the older segment."""
        if not self.config.status_reports:
            return
        recipient = normalize_number(number)
        for segment in segments:
            self._reports.expect(segment, reference, recipient)

    def unwatch(self, segments: Sequence[SegmentSubmission]) -> None:
        """Stop matching reports for ``segments`` (their message is settled or abandoned)."""
        for segment in segments:
            self._reports.forget(segment)

    async def send(
        self,
        number: str,
        text: str,
        *,
        reference: str,
        priority: int = 0,
        validity: timedelta | None = None,
        deadline: float | None = None,
        resume: SmsResume | None = None,
        on_segment: SegmentCallback | None = None,
    ) -> SmsSubmission:
        """Send ``text`` to ``number``; return once every segment was accepted by the network.

        ``reference`` is the caller's id for this message; reports carry it back. Higher
        ``priority`` messages leave the queue first. ``validity`` (TP-VP, at least 5 minutes)
        overrides the pool's, e.g. to end when the alert expires. ``deadline`` (a
        ``time.time()`` value, e.g. the alert's expiry) is how long the message may wait for a
        busy modem: GsmNoModemError if no modem took it by then (None: no limit). ``resume``
        names segments accepted before a restart: only the others are sent (GsmPermanentError
        if they do not fit this text). ``on_segment`` is awaited after each segment the network
        accepts and before the next is sent, e.g. to record it durably; its errors are logged,
        not raised.
        """
        if validity is not None and validity < timedelta(minutes=5):
            raise GsmPermanentError("send: validity must be at least 5 minutes")
        if not reference:
            raise GsmPermanentError("send: reference must not be empty")
        concat = next(self._concat) & 0xFF
        if resume is not None and resume.concat_reference is not None:
            concat = resume.concat_reference
        pdus = encode_submit(
            number,
            text,
            concat_reference=concat,
            request_status_report=self.config.status_reports,
            validity=validity or self.config.validity,
            max_segments=self.config.max_segments,
        )
        future: asyncio.Future[SmsSubmission] = asyncio.get_running_loop().create_future()
        order = self._queue.next_order()
        job = PoolJob(reference, normalize_number(number), pdus, future, -priority, order, concat)
        job.on_segment = on_segment
        job.deadline = deadline
        if resume is not None:
            job.resume(resume)
            self.watch(reference, job.number, resume.segments)
        self._dispatch(job, raise_if_none=True)
        self._unfinished.add(job)
        future.add_done_callback(lambda _: self._unfinished.discard(job))
        return await future

    def _ready_slots(self) -> list[PoolModem]:
        return [slot for slot in self._slots.values() if slot.state is ModemState.READY]

    def _is_ready(self, name: str) -> bool:
        slot = self._slots.get(name)
        return slot is not None and slot.state is ModemState.READY

    @property
    def queued_messages(self) -> int:
        """Messages waiting for a modem (not counting those being sent)."""
        return self._queue.waiting

    @property
    def queued_reports(self) -> int:
        """Matched reports waiting for a ``reports()`` reader (at most ``REPORT_BACKLOG``)."""
        return self._reports.queued

    def _modem_states(self) -> str:
        """``m0 ready (busy), m1 failed (+CMS ERROR: 330)``: what each modem is doing."""
        return ", ".join(slot.describe() for slot in self._slots.values())

    def _dispatch(self, job: PoolJob, raise_if_none: bool = False) -> None:
        """Queue ``job`` by priority, then order of arrival (a retried job keeps its place).

        A new message needs a ready modem now; a retried one waits until no modem has been
        ready for ``queue_timeout``.
        """
        if not self._running or (raise_if_none and not self._ready_slots()):
            error = GsmNoModemError(f"no modem is ready: {self._modem_states()}")
            if raise_if_none:
                raise error
            self._fail(job, error)
            return
        self._queue.push(job)
        self._watch_readiness()

    def _expire(self, job: PoolJob) -> None:
        """Fail a message still waiting at its deadline (every ready modem was busy)."""
        waiting = self._queue.waiting
        error = f"its deadline passed with {waiting} message(s) waiting; {self._modem_states()}"
        self._fail(job, GsmNoModemError(f"no modem took the message: {error}"))

    def _watch_readiness(self) -> None:
        """Called on every modem state change: once no modem is ready, fail what waits if
        none is ready again within ``queue_timeout``."""
        if self._ready_slots() or not self._running:
            if self._none_ready is not None:
                self._none_ready.cancel()
                self._none_ready = None
        elif self._none_ready is None and self._loop is not None:
            timeout = self.config.queue_timeout
            self._none_ready = self._loop.call_later(timeout, self._no_modem_came_back)

    def _no_modem_came_back(self) -> None:
        self._none_ready = None
        timeout = self.config.queue_timeout
        error = f"no modem has been ready for {timeout:g} s: {self._modem_states()}"
        for job in self._queue.drain():
            self._fail(job, GsmNoModemError(error))

    def _fail(self, job: PoolJob, error: GsmError) -> None:
        if job.expiry is not None:
            job.expiry.cancel()
            job.expiry = None
        if not job.future.done():
            job.future.set_exception(error)

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("modem pool task failed", exc_info=task.exception())

    async def _supervise(self, slot: PoolModem) -> None:
        while self._running:
            if slot.state is not ModemState.READY:
                if not await slot.connect():
                    return
                continue
            if slot.health_due() <= 0:
                await self._check_health(slot)
                continue
            await slot.pace()
            job = await self._queue.take(slot.name, slot.health_due())
            if job is None:
                continue
            slot.busy = True
            try:
                await self._send_job(slot, job)
            finally:
                slot.busy = False

    async def _check_health(self, slot: PoolModem) -> None:
        error = await slot.check_health()
        if error is not None:
            self._modem_failed(slot, error)
        elif slot.signal is not None and not slot.signal.registered:
            self._modem_failed(slot, None, ModemState.NO_SERVICE)

    def _modem_failed(
        self, slot: PoolModem, error: GsmError | None, state: ModemState = ModemState.FAILED
    ) -> None:
        if not slot.fail(error, state):
            return
        self._queue.wake()  # wake the modem's supervisor out of take() so it reconnects

    async def _send_job(self, slot: PoolModem, job: PoolJob) -> None:
        job.affinity = None  # taken: a retry goes to whichever modem is free
        if any(earlier.modem != slot.name for earlier in job.accepted.values()):
            for abandoned in job.accepted.values():
                self._reports.forget(abandoned)
            job.accepted.clear()
        try:
            for pdu in job.pdus:
                segment = pdu.segment
                if job.future.done():
                    return
                if segment.sequence in job.accepted:
                    continue
                await slot.pace()
                reference = await slot.call(slot.client.send_pdu, pdu)
                slot.sent()
                submitted = SegmentSubmission(
                    segment.sequence,
                    segment.total,
                    slot.config.name,
                    reference,
                    job.concat_reference if segment.total > 1 else None,
                )
                job.accepted[segment.sequence] = submitted
                if self.config.status_reports:
                    self._reports.expect(submitted, job.reference, job.number)
                if job.on_segment is not None:
                    await self._segment_accepted(job, submitted)
        except GsmPermanentError as exc:
            self._fail(job, exc)
            return
        except GsmRetryableError as exc:
            self._retry(slot, job, exc)
            return
        if not job.future.done():
            job.future.set_result(
                SmsSubmission(
                    reference=job.reference,
                    number=job.number,
                    encoding=job.pdus[0].segment.encoding,
                    segments=tuple(job.accepted[s] for s in sorted(job.accepted)),
                    status_reports=self.config.status_reports,
                )
            )

    async def _segment_accepted(self, job: PoolJob, submitted: SegmentSubmission) -> None:
        assert job.on_segment is not None
        try:
            await job.on_segment(submitted)
        except Exception:
            log.exception("message %s: the segment callback failed", job.reference)

    def _retry(self, slot: PoolModem, job: PoolJob, error: GsmRetryableError) -> None:
        job.attempts += 1
        slot.last_error = str(error)
        if isinstance(error, _MODEM_FAULTS):
            self._modem_failed(slot, error)
        if job.attempts >= self.config.max_attempts:
            log.warning("message %s: giving up after %d attempts", job.reference, job.attempts)
            self._fail(job, error)
            return
        self._spawn(self._redispatch(job))

    async def _redispatch(self, job: PoolJob) -> None:
        await asyncio.sleep(self.config.retry_delay)
        if not job.future.done():
            self._dispatch(job)

    def _report_from_thread(self, modem: str, report: StatusReportPdu) -> None:
        """Handle a report on the event loop; GsmPortError when the pool is not running."""
        loop = self._loop
        if loop is None or loop.is_closed() or not self._running:
            raise GsmPortError("the modem pool is not running")
        self._reports.from_thread(loop, modem, report)

    def _lost_from_thread(self, modem: str, error: GsmPortError) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._modem_failed, self._slots[modem], error)
