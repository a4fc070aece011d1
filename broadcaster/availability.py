"""Devices that come back: their waiting retries are brought forward, and what was sent to
them and not confirmed is sent again (:meth:`~broadcaster.store.outbox.Outbox.retry_now`), in
batches.

A channel reports targets whose device is reachable again through
:meth:`~broadcaster.channel.DispatchHooks.targets_available`. When a hub restarts, thousands
of devices come back within a second; one transaction per device would keep the database
thread busy for seconds and, with many deliveries queued, scan the queue once per device.
:class:`RetryForwarder` merges the reports of one channel that arrive while a batch is being
written and writes them as the next batch: one transaction and one pass over the queue each.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from broadcaster.store.db import Database
from broadcaster.store.outbox import Outbox
from broadcaster.tasks import TaskSet


class RetryForwarder:
    """Brings the queued deliveries of returning targets forward to now, per channel."""

    def __init__(
        self,
        database: Database,
        outbox: Outbox,
        clock: Callable[[], float],
        wake: Callable[[str], None],
        tasks: TaskSet,
    ) -> None:
        self._database = database
        self._outbox = outbox
        self._clock = clock
        self._wake = wake
        self._tasks = tasks
        self._waiting: dict[str, list[tuple[Sequence[str], bool, asyncio.Future[int]]]] = {}
        self._writers: dict[str, asyncio.Task[None]] = {}

    async def targets_available(
        self, channel: str, target_ids: Sequence[str], reconnected: bool = True
    ) -> int:
        """Retry the targets' queued deliveries on ``channel`` now, and those they did not
        confirm when they ``reconnected``; returns how many."""
        if not target_ids:
            return 0
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(channel, []).append((target_ids, reconnected, future))
        writer = self._writers.get(channel)
        if writer is None or writer.done():
            self._writers[channel] = self._tasks.spawn(
                self._write(channel), name=f"retry-forward:{channel}"
            )
        return await asyncio.shield(future)

    async def _write(self, channel: str) -> None:
        while reports := self._waiting.pop(channel, None):
            targets = sorted({t for ids, _, _ in reports for t in ids})
            again = sorted({t for ids, reconnected, _ in reports if reconnected for t in ids})
            try:
                counts = await self._database.run(
                    self._outbox.retry_now, channel, targets, self._clock(), again
                )
            except BaseException as exc:
                for _, _, future in reports:
                    if not future.done():
                        future.set_exception(exc)
                        # The reporter may be gone; mark the exception seen for it.
                        future.exception()
                raise
            for ids, _, future in reports:
                if not future.done():
                    future.set_result(sum(counts.get(t, 0) for t in ids))
            if counts:
                self._wake(channel)
