"""Which node executes a scheduled run: the run's lease, renewed while the run goes on.

Several nodes share one store, and a run is executed by the node that started it. That node
renews the leases of its runs three times per ``[store] lease_seconds``; a node resumes only
runs whose lease ran out (their node stopped or died), at start and at each renewal, and a
node that finds it lost a run's lease (another node took the run over while this one could
not reach the store) stops executing it. On a store no other node shares, a start resumes
every run still marked running.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from broadcaster.errors import StoreError
from broadcaster.store.interface import ScheduleStore

log = logging.getLogger(__name__)


class RunLeases:
    """The runs this node executes, their leases, and the runs it takes over."""

    def __init__(
        self,
        store: ScheduleStore,
        clock: Callable[[], float],
        lease_seconds: float,
        resume: Callable[[dict[str, Any]], None],
    ) -> None:
        self.store = store
        self.clock = clock
        self.period = lease_seconds / 3
        self._resume = resume
        self._executing: dict[int, asyncio.Task[None]] = {}

    def track(self, run_id: int, task: asyncio.Task[None]) -> None:
        """``task`` executes run ``run_id`` (under this node's lease) until it ends."""
        self._executing[run_id] = task
        task.add_done_callback(lambda _: self._executing.pop(run_id, None))

    async def take_over(self, *, starting: bool = False) -> None:
        """Resume the runs no live node executes."""
        for run in await self.store.take_over_runs(self.clock(), starting=starting):
            if int(run["id"]) not in self._executing:
                log.info("scheduled run %d of %s: resumed on this node", run["id"], run["schedule"])
                self._resume(run)

    async def keep(self) -> None:
        """Renew this node's leases, stop the runs it lost, take over abandoned ones; forever."""
        while True:
            await asyncio.sleep(self.period)
            try:
                mine = set(await self.store.renew_runs(self.clock(), list(self._executing)))
                for run_id, task in list(self._executing.items()):
                    if run_id not in mine:
                        log.warning("scheduled run %d: taken over by another node", run_id)
                        task.cancel()
                await self.take_over()
            except StoreError as exc:  # unreachable for now: the next round tries again
                log.warning("scheduler: cannot renew the leases of its runs: %s", exc)
