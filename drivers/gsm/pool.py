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
segment. A new message is refused with GsmNoModemError when no modem is ready; a queued one
fails so after ``queue_timeout``. A modem that fails again and again backs off. Retryable errors
(``GsmRetryableError``) are retried up to ``GsmPoolConfig.max_attempts`` times; permanent ones
fail the message at once.

Status reports (only when configured) are matched to segments by ``results.ReportTracker``.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
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
from drivers.gsm.pdu import StatusReportPdu, SubmitPdu, encode_submit, normalize_number
from drivers.gsm.pool_modem import PoolModem
from drivers.gsm.results import (
    DeliveryReport,
    ModemHealth,
    ModemState,
    ReportTracker,
    SegmentSubmission,
    SmsSubmission,
)

log = logging.getLogger(__name__)
_MODEM_FAULTS = (GsmPortError, GsmTimeoutError, GsmProtocolError, GsmModemFaultError)


@dataclass(eq=False, slots=True)
class _Job:
    reference: str
    number: str
    pdus: list[SubmitPdu]
    future: asyncio.Future[SmsSubmission]
    rank: int  # -priority: heapq pops the smallest
    order: int
    accepted: dict[int, SegmentSubmission] = field(default_factory=dict)
    attempts: int = 0
    expiry: asyncio.TimerHandle | None = None


class GsmModemPool:
    """Send SMS through a pool of modems; see the module docstring for routing and retries.

    ``send`` raises GsmPermanentError subclasses (bad number, text too long, rejected PDU) or
    GsmRetryableError subclasses (no healthy modem, retries exhausted). Reports arrive through
    ``reports()`` (one consumer) and through listeners added with ``add_report_listener``.
    """

    def __init__(self, config: GsmPoolConfig) -> None:
        self.config = config
        self._slots: dict[str, PoolModem] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._concat = itertools.count()
        self._tracker = ReportTracker()
        self._listeners: list[Callable[[DeliveryReport], None]] = []
        self._reports: asyncio.Queue[DeliveryReport] = asyncio.Queue()
        self._running = False
        self._queue: list[tuple[int, int, _Job]] = []  # heap of (-priority, order, job)
        self._order = itertools.count()
        self._work = asyncio.Event()
        self._unfinished: set[_Job] = set()

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
            slot = PoolModem(modem, client)
            self._slots[modem.name] = slot
            self._spawn(self._supervise(slot))
        await asyncio.gather(*(slot.attempted.wait() for slot in self._slots.values()))

    async def stop(self) -> None:
        """Stop sending, close every port and fail queued messages with GsmNoModemError."""
        self._running = False
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for job in list(self._unfinished):
            self._fail(job, GsmNoModemError("the modem pool stopped"))
        self._queue.clear()
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

    def add_report_listener(self, listener: Callable[[DeliveryReport], None]) -> None:
        """Call ``listener`` on the event loop for every matched status report."""
        self._listeners.append(listener)

    async def reports(self) -> AsyncIterator[DeliveryReport]:
        """Matched status reports, per segment, as they arrive."""
        while True:
            yield await self._reports.get()

    async def send(
        self,
        number: str,
        text: str,
        *,
        reference: str,
        priority: int = 0,
        validity: timedelta | None = None,
    ) -> SmsSubmission:
        """Send ``text`` to ``number``; return once every segment was accepted by the network.

        ``reference`` is the caller's id for this message; reports carry it back. Higher
        ``priority`` messages leave the queue first. ``validity`` (TP-VP, at least 5 minutes)
        overrides the pool's, e.g. to end when the alert expires.
        """
        if validity is not None and validity < timedelta(minutes=5):
            raise GsmPermanentError("send: validity must be at least 5 minutes")
        if not reference:
            raise GsmPermanentError("send: reference must not be empty")
        pdus = encode_submit(
            number,
            text,
            concat_reference=next(self._concat) & 0xFF,
            request_status_report=self.config.status_reports,
            validity=validity or self.config.validity,
            max_segments=self.config.max_segments,
        )
        future: asyncio.Future[SmsSubmission] = asyncio.get_running_loop().create_future()
        job = _Job(reference, normalize_number(number), pdus, future, -priority, next(self._order))
        self._dispatch(job, raise_if_none=True)
        self._unfinished.add(job)
        future.add_done_callback(lambda _: self._unfinished.discard(job))
        return await future

    def _ready_slots(self) -> list[PoolModem]:
        return [slot for slot in self._slots.values() if slot.state is ModemState.READY]

    @property
    def queued_messages(self) -> int:
        """Messages waiting for a modem (not counting those being sent)."""
        return sum(not job.future.done() for _, _, job in self._queue)

    def _no_modem(self) -> GsmNoModemError:
        states = ", ".join(f"{s.config.name} {s.state.value}" for s in self._slots.values())
        return GsmNoModemError(f"no modem is ready: {states}")

    def _dispatch(self, job: _Job, raise_if_none: bool = False) -> None:
        """Queue ``job`` by priority, then order of arrival (a retried job keeps its place).

        A new message needs a ready modem now; a retried one waits up to ``queue_timeout``
        for a modem to come back.
        """
        if not self._running or (raise_if_none and not self._ready_slots()):
            error = self._no_modem()
            if raise_if_none:
                raise error
            self._fail(job, error)
            return
        heapq.heappush(self._queue, (job.rank, job.order, job))
        timeout = self.config.queue_timeout
        job.expiry = asyncio.get_running_loop().call_later(timeout, self._expire, job)
        self._work.set()

    def _expire(self, job: _Job) -> None:
        """Fail a message that no modem took within ``queue_timeout``."""
        job.expiry = None
        waited = f"no modem took the message within {self.config.queue_timeout:g} s"
        self._fail(job, GsmNoModemError(f"{waited}; {self._no_modem()}"))

    async def _take(self, slot: PoolModem, wait: float) -> _Job | None:
        """The next live job for an idle modem, or None after ``wait`` seconds."""
        deadline = time.monotonic() + wait
        while slot.state is ModemState.READY:
            while self._queue:
                _, _, job = heapq.heappop(self._queue)
                if job.expiry is not None:
                    job.expiry.cancel()
                    job.expiry = None
                if not job.future.done():
                    return job
            self._work.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            # asyncio.timeout, not wait_for: 3.11's wait_for loses a cancel racing a wake-up
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await self._work.wait()
        return None

    def _fail(self, job: _Job, error: GsmError) -> None:
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
            job = await self._take(slot, slot.health_due())
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
        self._work.set()  # wake the modem's supervisor out of _take so it reconnects

    async def _send_job(self, slot: PoolModem, job: _Job) -> None:
        if any(earlier.modem != slot.name for earlier in job.accepted.values()):
            for abandoned in job.accepted.values():
                self._tracker.forget(abandoned)
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
                    segment.sequence, segment.total, slot.config.name, reference
                )
                job.accepted[segment.sequence] = submitted
                if self.config.status_reports:
                    for early in self._tracker.expect(submitted, job.reference, job.number):
                        self._publish(early)
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

    def _retry(self, slot: PoolModem, job: _Job, error: GsmRetryableError) -> None:
        job.attempts += 1
        slot.last_error = str(error)
        if isinstance(error, _MODEM_FAULTS):
            self._modem_failed(slot, error)
        if job.attempts >= self.config.max_attempts:
            log.warning("message %s: giving up after %d attempts", job.reference, job.attempts)
            self._fail(job, error)
            return
        self._spawn(self._redispatch(job))

    async def _redispatch(self, job: _Job) -> None:
        await asyncio.sleep(self.config.retry_delay)
        if not job.future.done():
            self._dispatch(job)

    def _publish(self, delivery: DeliveryReport) -> None:
        for listener in self._listeners:
            try:
                listener(delivery)
            except Exception:
                log.exception("report listener %r failed", listener)
        self._reports.put_nowait(delivery)

    def _on_report(self, modem: str, report: StatusReportPdu) -> None:
        delivery = self._tracker.match(modem, report)
        if delivery is not None:
            self._publish(delivery)

    def _report_from_thread(self, modem: str, report: StatusReportPdu) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._on_report, modem, report)

    def _lost_from_thread(self, modem: str, error: GsmPortError) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._modem_failed, self._slots[modem], error)
