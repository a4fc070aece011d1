"""When a lean box (:mod:`drivers.speaker.simulator_lean`) has played a command
(docs/protocols/speaker.md 3.2, 5.1): :class:`Playing` sends each ``finished`` ``play_s`` after
the box started, those due together from one timer's call (no task or timer per box);
:class:`Fetching` first fetches and verifies the command's sealed audio
(:mod:`drivers.speaker.lean_download`), as a real box must before it plays, and says
``failed`` with ``download_failed`` or ``hash_mismatch`` when it cannot. A box on MQTT whose
command names an ``audio_topic`` first waits there for the retained audio
(:mod:`drivers.speaker.lean_topic_audio`, ``topic_wait_s`` at most) and downloads only when
it does not verify in time.
"""

from __future__ import annotations

import asyncio
from collections import deque
from time import time
from typing import TYPE_CHECKING

from drivers.speaker.errors import MediaDownloadError, MediaIntegrityError
from drivers.speaker.lean_download import Downloads
from drivers.speaker.messages import AckStage
from drivers.speaker.sealed_audio import CommandTarget
from drivers.speaker.store import TOPIC_WAIT_S

if TYPE_CHECKING:
    from drivers.speaker.simulator_lean import LeanBox


class Playing:
    """The play commands a fleet's boxes are playing: each one's ``finished`` goes ``play_s``
    after it started, those due together sent by one timer's call (no task or timer per box)."""

    def __init__(self, play_s: float) -> None:
        self.play_s = play_s
        self._due: deque[tuple[float, LeanBox, str, str, str]] = deque()
        self._timer: asyncio.TimerHandle | None = None

    def start(self, box: LeanBox, cmd_id: str, alert_id: str, source: str) -> None:
        """``box`` started playing ``cmd_id``."""
        loop = asyncio.get_running_loop()
        self._due.append((loop.time() + self.play_s, box, cmd_id, alert_id, source))
        if self._timer is None:
            self._timer = loop.call_at(self._due[0][0], self._end)

    def _end(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        while self._due and self._due[0][0] <= now:
            _, box, cmd_id, alert_id, source = self._due.popleft()
            box.seen[cmd_id] = AckStage.FINISHED
            box.send([box.ack(cmd_id, alert_id, AckStage.FINISHED, source)])
        self._timer = loop.call_at(self._due[0][0], self._end) if self._due else None


class Fetching:
    """The sealed audio of a fleet's play commands: a box plays (``playing``, or at once)
    once its audio is verified; ``failures`` counts those that were not, ``downloads.bytes``
    the audio received (downloaded or retained)."""

    def __init__(self, playing: Playing | None, topic_wait_s: float = TOPIC_WAIT_S) -> None:
        self.downloads = Downloads()
        self._playing = playing
        self._topic_wait_s = topic_wait_s
        self._tasks: set[asyncio.Task[None]] = set()
        self.failures = 0

    def start(
        self,
        box: LeanBox,
        cmd_id: str,
        alert_id: str,
        source: str,
        url: str,
        to: CommandTarget,
        audio_topic: str | None = None,
    ) -> None:
        task = asyncio.get_running_loop().create_task(
            self._fetch(box, cmd_id, alert_id, source, url, to, audio_topic)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _fetch(
        self,
        box: LeanBox,
        cmd_id: str,
        alert_id: str,
        source: str,
        url: str,
        to: CommandTarget,
        audio_topic: str | None,
    ) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.downloads.timeout_s
        try:
            sealed = None
            if audio_topic is not None and box.topics is not None:
                wait_s = min(self._topic_wait_s, self.downloads.timeout_s)
                sealed, received = await box.topics.take(audio_topic, url, to, wait_s)
                self.downloads.bytes += received
            if sealed is None:
                await self.downloads.fetch_sealed(url, to, deadline - loop.time())
        except (MediaDownloadError, MediaIntegrityError) as exc:
            self.failures += 1
            reason = "hash_mismatch" if isinstance(exc, MediaIntegrityError) else "download_failed"
            box.seen[cmd_id] = AckStage.FAILED
            box.send([box.ack(cmd_id, alert_id, AckStage.FAILED, source, reason)])
            return
        box.fetched_at = time()
        if self._playing is not None:
            self._playing.start(box, cmd_id, alert_id, source)
            return
        box.seen[cmd_id] = AckStage.FINISHED
        box.send([box.ack(cmd_id, alert_id, AckStage.FINISHED, source)])

    def cancel(self) -> None:
        for task in self._tasks:
            task.cancel()
