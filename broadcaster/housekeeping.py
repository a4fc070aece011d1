"""Daily upkeep of the data directory while the server runs.

Once at start and then every day: renders unused for ``[audio] keep_days`` are deleted from the
render cache (:meth:`~broadcaster.publisher.AudioPublisher.prune`), and every running channel's
:meth:`~broadcaster.channel.Channel.housekeeping` runs (the loudspeaker channel deletes the audio
files it published that long ago). A failure is logged and retried the next day (an exception
outside :class:`~broadcaster.errors.ChannelError` and ``OSError`` is also recorded as the
channel's fault); it never stops the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping

from broadcaster.channel import Channel
from broadcaster.errors import ChannelError
from broadcaster.faults import ChannelFaults
from broadcaster.publisher import AudioPublisher

log = logging.getLogger(__name__)

DAY_S = 86400.0


class Housekeeping:
    """Runs the daily upkeep in the background."""

    def __init__(
        self,
        audio: AudioPublisher,
        channels: Mapping[str, Channel],
        period_s: float = DAY_S,
        *,
        faults: ChannelFaults | None = None,
    ) -> None:
        self._faults = faults or ChannelFaults()
        self._audio = audio
        self._channels = channels
        self._period_s = period_s
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="housekeeping")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        while True:
            await self.run_once()
            await asyncio.sleep(self._period_s)

    async def run_once(self) -> int:
        """One round of upkeep; returns how many renders were deleted."""
        removed = 0
        try:
            removed = await self._audio.prune()
        except Exception:
            log.exception("housekeeping: the render cache could not be pruned")
        if removed:
            log.info("housekeeping: %d unused renders deleted", removed)
        uploads = self._audio.uploads
        if uploads is not None:
            try:
                dropped = await asyncio.to_thread(uploads.prune, self._audio.keep_s)
            except OSError:
                log.exception("housekeeping: the upload store could not be pruned")
            else:
                if dropped:
                    log.info("housekeeping: %d unused uploaded recordings deleted", dropped)
        for name, channel in self._channels.items():
            try:
                await channel.housekeeping()
            except (ChannelError, OSError):
                log.exception("housekeeping of channel %s failed", name)
            except Exception as exc:
                self._faults.record(name, "housekeeping", exc)
        return removed
