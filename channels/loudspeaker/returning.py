"""Boxes that come (back) online: what waits for them is retried now, not after its backoff.

The channel notes each box that comes online (:meth:`ReturningBoxes.returned`, straight from
the hub's events, so acks never wait behind reconnects); a task reports the targets of the
boxes of a burst of reconnects together through the core's dispatch hooks
(``targets_available``). Boxes that return before the dispatcher can take them (simulated or
nearby boxes connect while the server is still starting) are kept and reported again, soon
and then at growing intervals, until it can.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

from broadcaster.channel import DispatchHooks

log = logging.getLogger(__name__)

RETRY_S = 0.05
RETRY_MAX_S = 5.0
"""How soon, then at most how long after, returned boxes the dispatcher could not take yet
are reported again."""


class ReturningBoxes:
    """Boxes come online, reported to the dispatcher in bursts; see the module docstring."""

    def __init__(self, channel: str, targets_of: Callable[[str], Iterable[str]]) -> None:
        self._channel = channel
        self._targets_of = targets_of
        self.waiting: set[str] = set()
        self.replayed: set[str] = set()
        self._came = asyncio.Event()

    def returned(self, box_id: str, *, replayed: bool = False) -> None:
        """``box_id`` is online: it connected anew, or (``replayed``) the hub read its
        retained hello again; only what waits for it is then retried, as it never left."""
        (self.replayed if replayed else self.waiting).add(box_id)
        self._came.set()

    async def forward(self, dispatch: DispatchHooks) -> None:
        """Report returned boxes' targets to ``dispatch``, forever."""
        pause = RETRY_S
        while True:
            await self._came.wait()
            self._came.clear()
            returning, self.waiting = self.waiting, set()
            replayed, self.replayed = self.replayed - returning, set()
            targets = sorted(t for box in returning for t in self._targets_of(box))
            known = sorted(t for box in replayed for t in self._targets_of(box))
            try:
                await dispatch.targets_available(targets)
                await dispatch.targets_available(known, reconnected=False)
            except Exception as exc:
                self.waiting |= returning
                self.replayed |= replayed
                if pause >= RETRY_MAX_S:
                    log.warning(
                        "channel %s: retries of %d returned boxes not forwarded yet: %s",
                        self._channel,
                        len(returning),
                        exc,
                    )
                await asyncio.sleep(pause)
                pause = min(pause * 2, RETRY_MAX_S)
                self._came.set()
                continue
            pause = RETRY_S
