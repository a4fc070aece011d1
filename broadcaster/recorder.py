"""The recorder: one task that writes delivery transitions in batches, one transaction each.

Send outcomes, the sweeper's verdicts and the channels' confirmations all become
:class:`~broadcaster.delivery.Transition` s queued here. While fewer than ``FULL_BATCH`` wait,
the recorder lets more gather for ``LINGER_SECONDS``: news that trickles in, such as boxes
reporting one after another that they finished playing, is written in few large transactions
instead of many small ones. A confirmation of ``RETRY`` queues its delivery again after the
confirmation's ``retry_after`` (or the first backoff). While the disk is full or the store is
away, a batch waits in memory and is written once it fits.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Sequence

from broadcaster.channel import Channel, Confirmation, ConfirmationOutcome
from broadcaster.delivery import DeliveryState, Transition
from broadcaster.errors import DiskFullError, StoreUnavailableError
from broadcaster.faults import ChannelFaults
from broadcaster.store.db import Database
from broadcaster.store.outbox import Outbox

log = logging.getLogger(__name__)

FULL_BATCH = 500
"""Transitions the recorder writes at once, without waiting for more to gather."""
LINGER_SECONDS = 0.05
"""How long the recorder lets transitions gather while fewer than ``FULL_BATCH`` wait: per
transition, a transaction of 20 costs the database thread about twice what one of 500 does
(``bench/bench_outbox.py``), and a state shown 50 ms later changes nothing for an officer."""
MOST_AT_ONCE = 5000
"""The most transitions written in one transaction."""
DISK_FULL_PAUSE_SECONDS = 1.0
"""How long claims, records and sweeps wait before trying again when the disk is full."""


class Recorder:
    """Queues transitions and writes them; ``on_written`` hears of each batch written."""

    def __init__(
        self,
        database: Database,
        outbox: Outbox,
        clock: Callable[[], float],
        faults: ChannelFaults,
        *,
        first_backoff: float,
        on_written: Callable[[Sequence[Transition]], None],
    ) -> None:
        self.database = database
        self.outbox = outbox
        self.clock = clock
        self.faults = faults
        self.first_backoff = first_backoff
        self.on_written = on_written
        self._queued: deque[Transition] = deque()
        self._waiting = asyncio.Event()
        self._confirmed: list[Confirmation] = []

    def add(self, transition: Transition) -> None:
        """Queue ``transition``, to be written with those queued together."""
        self._queued.append(transition)
        self._waiting.set()

    def sink(self, channel: str) -> Callable[[Confirmation], None]:
        """What takes the confirmations of a channel with the default ``confirmations()``
        as it reports them: no queue and task switch each. They are recorded once the code
        that reported them has run to its next pause, as they would through the queue: a
        channel releases the acks that came during a send when the send returns, and the
        core queues the send's result before them."""

        def record(confirmation: Confirmation) -> None:
            if not isinstance(confirmation, Confirmation):
                error = TypeError(f"confirm() was given {type(confirmation).__name__}")
                self.faults.record(channel, "confirmations", error)
                return
            if not self._confirmed:
                asyncio.get_running_loop().call_soon(self._take_confirmed)
            self._confirmed.append(confirmation)

        return record

    def _take_confirmed(self) -> None:
        now = self.clock()
        for confirmation in self._confirmed:
            self._queued.append(confirmation_transition(confirmation, now, self.first_backoff))
        self._confirmed.clear()
        self._waiting.set()

    async def read(self, name: str, channel: Channel) -> None:
        """Record the confirmations of a channel with its own ``confirmations()``; if its
        stream raises, read it again after a pause."""
        while True:
            try:
                async for confirmation in channel.confirmations():
                    if not isinstance(confirmation, Confirmation):
                        raise TypeError(f"confirmations() gave {type(confirmation).__name__}")
                    now = self.clock()
                    self.add(confirmation_transition(confirmation, now, self.first_backoff))
                return
            except Exception as exc:
                self.faults.record(name, "confirmations", exc)
            await asyncio.sleep(self.first_backoff)

    async def run(self) -> None:
        """Write what is queued, batch after batch, until cancelled."""
        while True:
            while not self._queued:
                self._waiting.clear()
                await self._waiting.wait()
            if len(self._queued) < FULL_BATCH:
                await asyncio.sleep(LINGER_SECONDS)
            batch = [self._queued.popleft()]
            while True:
                try:
                    await self._write(batch)
                    break
                except (DiskFullError, StoreUnavailableError):  # keep the batch until it fits
                    await asyncio.sleep(DISK_FULL_PAUSE_SECONDS)

    async def drain(self) -> None:
        """Write everything reported and queued (once :meth:`run` is stopped)."""
        self._take_confirmed()
        try:
            while self._queued:
                await self._write([])
        except DiskFullError:  # deliveries left "sending" are resumed at the next start
            log.error("disk full: the last delivery states were not recorded")

    async def _write(self, batch: list[Transition]) -> None:
        queued = self._queued
        while queued and len(batch) < MOST_AT_ONCE:
            batch.append(queued.popleft())
        if not batch:
            return
        await self.database.run(self.outbox.apply, batch, self.clock())
        self.on_written(batch)


def confirmation_transition(
    confirmation: Confirmation, now: float, first_backoff: float
) -> Transition:
    """What a device's ``confirmation`` makes of its delivery at ``now``."""
    if confirmation.outcome is ConfirmationOutcome.RETRY:
        # Past the alert's expiry the sweeper expires it; a Cancel cancels it while queued.
        delay = confirmation.retry_after if confirmation.retry_after is not None else first_backoff
        error = confirmation.detail or "the device asked to send again"
        return Transition(
            confirmation.delivery_id,
            DeliveryState.QUEUED,
            last_error=error,
            next_attempt_at=now + delay,
            detail=f"{error}; sent again in {delay:.1f} s",
        )
    if confirmation.outcome is ConfirmationOutcome.CONFIRMED:
        return Transition(
            confirmation.delivery_id,
            DeliveryState.CONFIRMED,
            detail=confirmation.detail or "confirmed",
        )
    if confirmation.outcome is ConfirmationOutcome.FAILED:
        return Transition(
            confirmation.delivery_id,
            DeliveryState.FAILED,
            last_error=confirmation.detail or "failed",
            detail=confirmation.detail,
        )
    return Transition(
        confirmation.delivery_id, DeliveryState.ACCEPTED, detail=confirmation.detail, progress=True
    )
