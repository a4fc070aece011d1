"""Changes made by other nodes: a node sharing the store learns of them by polling a counter.

A node's own dispatcher tells its listeners (console streams, run reports) when delivery
state changes; a change another node made would go unseen. :class:`ChangeWatcher` reads the
newest delivery and alert event ids once per period and calls ``on_change`` when they moved, so
a console on node B follows an alert that node A delivers. Only a shared store needs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from broadcaster.errors import StoreError
from broadcaster.store.db import Database

log = logging.getLogger(__name__)


def change_mark(database: Database) -> tuple[int, int]:
    """The newest delivery event and alert event ids (call on the database thread)."""
    row = database.conn.execute(
        "SELECT (SELECT coalesce(max(id), 0) FROM delivery_events),"
        " (SELECT coalesce(max(id), 0) FROM alert_events)"
    ).fetchone()
    return int(row[0]), int(row[1])


class ChangeWatcher:
    """Calls ``on_change`` within about ``period`` seconds of any node's change."""

    def __init__(
        self, database: Database, on_change: Callable[[], None], period: float = 0.5
    ) -> None:
        self._database = database
        self._on_change = on_change
        self._period = period
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        mark = await self._database.run(change_mark, self._database)
        self._task = asyncio.get_running_loop().create_task(self._loop(mark), name="changes")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self, mark: tuple[int, int]) -> None:
        while True:
            await asyncio.sleep(self._period)
            try:
                now = await self._database.run(change_mark, self._database)
            except StoreError as exc:  # unreachable for a moment: look again next period
                log.warning("cannot read the store's change mark: %s", exc)
                continue
            if now != mark:
                mark = now
                self._on_change()
