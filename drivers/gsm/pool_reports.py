"""The modem pool's status reports: matched to their segments, handed to listeners, and kept
for one ``reports()`` reader.

Reports (TS 23.040 §9.2.2.3 SMS-STATUS-REPORT) are matched per (modem, TP-MR, recipient) by
``results.ReportTracker``. Every listener sees each matched report; one may return an awaitable
(recording the report on disk), which ``on_report`` awaits, so the modem deletes a stored report
only after its listeners finished. ``reports()`` keeps at most ``REPORT_BACKLOG`` reports for its
reader, the oldest going first, so a server whose reports nobody reads does not grow.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

from drivers.gsm.pdu import StatusReportPdu
from drivers.gsm.results import DeliveryReport, ReportTracker, SegmentSubmission

log = logging.getLogger(__name__)

REPORT_BACKLOG = 1024
"""Matched reports ``reports()`` holds for a slow or absent reader; beyond it the oldest go."""

REPORT_HANDOFF_TIMEOUT = 30.0
"""Seconds a modem's thread waits for the listeners of one report before keeping it stored."""

ReportListener = Callable[[DeliveryReport], Awaitable[None] | None]


class PoolReports:
    """Matching and fan-out of status reports; ``spawn`` runs a listener's awaitable that
    nothing waits for (reports matched when their segment is registered)."""

    def __init__(self, spawn: Callable[[Coroutine[Any, Any, None]], None]) -> None:
        self._spawn = spawn
        self._tracker = ReportTracker()
        self._listeners: list[ReportListener] = []
        self._backlog: asyncio.Queue[DeliveryReport] = asyncio.Queue(REPORT_BACKLOG)

    def add_listener(self, listener: ReportListener) -> None:
        self._listeners.append(listener)

    async def reports(self) -> AsyncIterator[DeliveryReport]:
        while True:
            yield await self._backlog.get()

    @property
    def queued(self) -> int:
        """Matched reports waiting for a ``reports()`` reader."""
        return self._backlog.qsize()

    def expect(self, segment: SegmentSubmission, reference: str, number: str) -> None:
        """Match reports for ``segment`` from now on (and those that came before it)."""
        for early in self._tracker.expect(segment, reference, number):
            for awaitable in self._publish(early):
                self._spawn(_logged(awaitable))

    def forget(self, segment: SegmentSubmission) -> None:
        self._tracker.forget(segment)

    async def on_report(self, modem: str, report: StatusReportPdu) -> None:
        """Match one report from ``modem`` and return once every listener finished with it."""
        delivery = self._tracker.match(modem, report)
        if delivery is not None:
            for awaitable in self._publish(delivery):
                await _logged(awaitable)

    def from_thread(
        self, loop: asyncio.AbstractEventLoop, modem: str, report: StatusReportPdu
    ) -> None:
        """``on_report`` from a modem's thread: returns once the listeners finished; raises
        TimeoutError after ``REPORT_HANDOFF_TIMEOUT``."""
        handled = asyncio.run_coroutine_threadsafe(self.on_report(modem, report), loop)
        handled.result(REPORT_HANDOFF_TIMEOUT)

    def _publish(self, delivery: DeliveryReport) -> list[Awaitable[None]]:
        """Hand ``delivery`` to every listener; the awaitables they returned."""
        pending: list[Awaitable[None]] = []
        for listener in self._listeners:
            try:
                result = listener(delivery)
            except Exception:
                log.exception("report listener %r failed", listener)
                continue
            if result is not None:
                pending.append(result)
        if self._backlog.full():
            self._backlog.get_nowait()  # nobody reads them: the oldest goes
        self._backlog.put_nowait(delivery)
        return pending


async def _logged(awaitable: Awaitable[None]) -> None:
    try:
        await awaitable
    except Exception:
        log.exception("a report listener failed")
