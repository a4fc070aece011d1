"""Audio players for the box agent: a configurable external command (ALSA ``aplay`` by default)
and a recording player used by the fleet simulator and tests.

A player plays one file once, from its start or (for a player that ``starts_mid_file``) from
``start_s``; repeats, priorities and preemption belong to the agent, which cancels ``play`` to
stop it. Cancelling a CommandPlayer kills its process group.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from drivers.speaker.errors import SpeakerConfigError, SpeakerPermanentError

DEFAULT_PLAYER_COMMAND = ("aplay", "-q", "{path}")


@dataclass(frozen=True, slots=True)
class PlaybackRequest:
    """What to play, and on whose behalf."""

    box_id: str
    cmd_id: str
    alert_id: str
    path: Path
    volume: int
    priority: int
    source: str
    start_s: float = 0.0


class Player(ABC):
    """Plays one audio file to the end; raises SpeakerPermanentError when the player fails."""

    starts_mid_file: bool = False
    """Whether ``play`` honours ``PlaybackRequest.start_s`` (else the box never asks it to)."""

    @abstractmethod
    async def play(self, request: PlaybackRequest) -> None:
        """Play ``request.path`` once; returns when playback ends. Cancel to stop early."""


class PlayerError(SpeakerPermanentError):
    """The player command failed (not found, or a non-zero exit status)."""


class CommandPlayer(Player):
    """Runs an external command per playback; ``{path}``, ``{volume}`` (0-100), ``{gain}``
    (0.00-1.00) and ``{start}`` (seconds into the file) in the arguments are filled in. A
    command that names ``{start}`` can start mid-file."""

    def __init__(self, argv: Sequence[str] = DEFAULT_PLAYER_COMMAND) -> None:
        if not argv or not any("{path}" in arg for arg in argv):
            raise SpeakerConfigError("player command must name the file with {path}")
        self._argv = tuple(argv)
        self.starts_mid_file = any("{start}" in arg for arg in argv)

    async def play(self, request: PlaybackRequest) -> None:
        values = {
            "path": str(request.path),
            "volume": str(request.volume),
            "gain": f"{request.volume / 100:.2f}",
            "start": f"{request.start_s:.3f}",
        }
        argv = [arg.format(**values) for arg in self._argv]
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            raise PlayerError(f"cannot start player {argv[0]!r}: {exc}") from exc
        try:
            _, stderr = await process.communicate()
        except asyncio.CancelledError:
            # The player may be a wrapper script: stop its whole process group.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.communicate()
            raise
        if process.returncode != 0:
            tail = stderr.decode(errors="replace").strip()[-200:]
            raise PlayerError(f"player exited with status {process.returncode}: {tail}")


@dataclass(slots=True)
class PlaybackRecord:
    """One playback seen by a RecordingPlayer; ``ended_at`` is None while it plays."""

    request: PlaybackRequest
    started_at: datetime
    ended_at: datetime | None = None
    interrupted: bool = False


class PlaybackLog:
    """Playback records shared by many RecordingPlayers, with a way to await a condition."""

    def __init__(self) -> None:
        self.records: list[PlaybackRecord] = []
        self._waiters: list[asyncio.Future[None]] = []

    def changed(self) -> None:
        """Wake every ``wait_for``; called after each change to ``records``."""
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()

    async def wait_for(
        self, predicate: Callable[[list[PlaybackRecord]], bool], within_s: float
    ) -> None:
        """Wait until ``predicate(records)`` holds; raises TimeoutError after ``within_s``."""
        async with asyncio.timeout(within_s):
            while not predicate(self.records):
                waiter = asyncio.get_running_loop().create_future()
                self._waiters.append(waiter)
                await waiter

    def completed(
        self, box_id: str | None = None, alert_id: str | None = None
    ) -> list[PlaybackRecord]:
        """Playbacks that ran to the end, optionally filtered by box and alert."""
        return [
            r
            for r in self.records
            if r.ended_at is not None
            and not r.interrupted
            and box_id in (None, r.request.box_id)
            and alert_id in (None, r.request.alert_id)
        ]


class RecordingPlayer(Player):
    """Records what would have played and when; each playback lasts ``duration_s``."""

    starts_mid_file = True

    def __init__(self, log: PlaybackLog, duration_s: float = 0.0) -> None:
        self._log = log
        self.duration_s = duration_s

    async def play(self, request: PlaybackRequest) -> None:
        record = PlaybackRecord(request=request, started_at=datetime.now(UTC))
        self._log.records.append(record)
        self._log.changed()
        try:
            await asyncio.sleep(self.duration_s)
        except asyncio.CancelledError:
            record.interrupted = True
            raise
        finally:
            record.ended_at = datetime.now(UTC)
            self._log.changed()
