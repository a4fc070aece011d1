"""The modem pool's queue: messages waiting for a modem, most urgent first, then by arrival.

A modem that is idle, healthy and within its rate limit takes the next message it may send
(``MessageQueue.take``). A message resumed after a restart (``SmsResume``) is bound to the modem
its earlier segments went through, so the missing ones carry the same sender address and the
phone joins them (TS 23.040 §9.2.3.24.1): other modems pass it over while that modem is ready,
and take it (sending the whole message again) once it is not. A message waits as long as it
takes a busy modem to get to it; one still waiting at its own deadline (``PoolJob.deadline``)
is handed to ``on_expired``. The pool fails what waits when no modem is healthy (``drain``).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from drivers.gsm.errors import GsmPermanentError
from drivers.gsm.pdu import SubmitPdu
from drivers.gsm.results import SegmentSubmission, SmsResume, SmsSubmission

SegmentCallback = Callable[[SegmentSubmission], Awaitable[None]]


@dataclass(eq=False, slots=True)
class PoolJob:
    """One message on its way: its segments, what the network accepted so far, its waiter."""

    reference: str
    number: str
    pdus: list[SubmitPdu]
    future: asyncio.Future[SmsSubmission]
    rank: int  # -priority: heapq pops the smallest
    order: int
    concat_reference: int
    accepted: dict[int, SegmentSubmission] = field(default_factory=dict)
    attempts: int = 0
    expiry: asyncio.TimerHandle | None = None
    affinity: str | None = None  # the modem of segments accepted before a restart
    on_segment: SegmentCallback | None = None
    deadline: float | None = None  # time.time() after which the message is not worth sending

    def resume(self, resume: SmsResume) -> None:
        """Take the earlier segments as accepted; GsmPermanentError if they do not fit."""
        total = len(self.pdus)
        segments = resume.segments
        if len({segment.modem for segment in segments}) > 1 or any(
            segment.total != total or not 1 <= segment.sequence <= total for segment in segments
        ):
            raise GsmPermanentError(f"resume: the earlier segments do not fit a {total}-part SMS")
        self.accepted = {segment.sequence: segment for segment in segments}
        self.affinity = resume.modem


class MessageQueue:
    """Jobs by (-priority, arrival); ``ready(name)`` says whether a modem may take work now."""

    def __init__(
        self,
        ready: Callable[[str], bool],
        on_expired: Callable[[PoolJob], None],
    ) -> None:
        self._ready = ready
        self._on_expired = on_expired
        self._heap: list[tuple[int, int, PoolJob]] = []
        self._order = itertools.count()
        self._work = asyncio.Event()

    def next_order(self) -> int:
        """The arrival number of a new job."""
        return next(self._order)

    @property
    def waiting(self) -> int:
        """Messages waiting for a modem (not counting those being sent)."""
        return sum(not job.future.done() for _, _, job in self._heap)

    def push(self, job: PoolJob) -> None:
        """Queue ``job`` (a retried job keeps its place) until a modem takes it or its
        deadline passes."""
        heapq.heappush(self._heap, (job.rank, job.order, job))
        if job.deadline is not None:
            delay = max(0.0, job.deadline - time.time())
            job.expiry = asyncio.get_running_loop().call_later(delay, self._expire, job)
        self._work.set()

    def wake(self) -> None:
        """Wake modems waiting in ``take`` (a modem changed state)."""
        self._work.set()

    def drain(self) -> list[PoolJob]:
        """Empty the queue; the jobs that were waiting, oldest first."""
        for _, _, job in self._heap:
            self._stop_timer(job)
        jobs = [job for _, _, job in sorted(self._heap) if not job.future.done()]
        self._heap.clear()
        return jobs

    async def take(self, modem: str, wait: float) -> PoolJob | None:
        """The next job ``modem`` may send, or None after ``wait`` s or once it is not ready."""
        deadline = time.monotonic() + wait
        while self._ready(modem):
            job = self._pop_for(modem)
            if job is not None:
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

    def _pop_for(self, modem: str) -> PoolJob | None:
        passed: list[tuple[int, int, PoolJob]] = []
        found: PoolJob | None = None
        while self._heap and found is None:
            entry = heapq.heappop(self._heap)
            job = entry[2]
            bound = job.affinity
            if not job.future.done() and bound not in (None, modem) and self._ready(bound or ""):
                passed.append(entry)  # left to the modem of its earlier segments
                continue
            self._stop_timer(job)
            if not job.future.done():
                found = job
        for entry in passed:
            heapq.heappush(self._heap, entry)
        return found

    def _expire(self, job: PoolJob) -> None:
        job.expiry = None
        self._on_expired(job)

    @staticmethod
    def _stop_timer(job: PoolJob) -> None:
        if job.expiry is not None:
            job.expiry.cancel()
            job.expiry = None
