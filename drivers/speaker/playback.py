"""The play queue of a box: priorities, preemption, stops, media resolution and playback
(docs/protocols/speaker.md, sections 3.3 and 5.1).

One command plays at a time. A new command with a strictly higher priority preempts the one
playing: an ``emergency``-class command goes back to the queue (acknowledged ``accepted`` with
``preempted``) and plays again after it, any other class fails with ``preempted``. Otherwise a
new command waits, highest priority first, then in arrival order. Expiry is checked when a
command leaves the queue and again before anything of it starts to play (its attention clip,
its audio, each repeat): past ``expires_at`` it plays nothing more and fails with ``expired``.
A ``play_url`` naming an attention clip the box holds starts that clip at once, downloads
while it plays, and continues with the audio after its attention signal (section 5.1). A
``play_url`` without a SHA-256 is fetched sealed, with the target and key of the command that
asked for it, and plays only when its seal matches; one naming an ``audio_topic`` is first
awaited there when the box's uplink gives it an ``AudioTopicSource`` (section 4.3). Every
stage is reported through the ``report`` callback, which journals it and sends the ack.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

from drivers.speaker.errors import MediaDownloadError, MediaIntegrityError, SpeakerError
from drivers.speaker.messages import (
    ALL_ALERTS,
    PREEMPTED,
    AckStage,
    BroadcastClass,
    PlayClip,
    PlayCommand,
    PlayUrl,
)
from drivers.speaker.player import PlaybackRequest, Player
from drivers.speaker.sealed_audio import CommandTarget
from drivers.speaker.store import AudioTopicSource, ClipStore, JournalEntry, MediaFetcher

log = logging.getLogger(__name__)

#: A ``play_url`` whose attention clip ended for the same alert at most this long ago goes
#: straight to the speech: the listener has just heard the signal.
ATTENTION_HEARD_S = 5.0

Report = Callable[
    [JournalEntry, AckStage, str | None, str | None], Coroutine[Any, Any, JournalEntry]
]
"""``report(entry, stage, reason, source)`` journals a stage and acknowledges it."""


@dataclass(slots=True)
class PlayJob:
    """A play command on its way through the queue."""

    command: PlayCommand
    entry: JournalEntry
    to: CommandTarget
    order: int
    stop_reason: str | None = None
    source: str = "url"
    note: str | None = None


class CommandExpiredError(Exception):
    """A play command reached its ``expires_at`` before its next playback could start."""


class Media(NamedTuple):
    """What a play command plays: the file, its ``source`` for the acks, the ``reason`` of a
    fallback, and where the speech starts after the file's attention signal (None: at 0)."""

    path: Path
    source: str
    note: str | None
    speech_start_ms: int | None


class PlaybackScheduler:
    """Runs the play queue of one box; ``audio_topics``, when its uplink gives one, is where
    sealed audio retained under a command's ``audio_topic`` is taken from."""

    def __init__(
        self,
        box_id: str,
        player: Player,
        clips: ClipStore,
        fetcher: MediaFetcher,
        report: Report,
        clock: Callable[[], datetime],
        default_volume: Callable[[], int],
        fallback_clip: str | None = None,
    ) -> None:
        self._box_id = box_id
        self._player = player
        self._clips = clips
        self._fetcher = fetcher
        self._report = report
        self._clock = clock
        self._default_volume = default_volume
        self._fallback_clip = fallback_clip
        self._queue: list[PlayJob] = []
        self._order = itertools.count()
        self._current: PlayJob | None = None
        self._current_task: asyncio.Task[None] | None = None
        self._wakeup = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._clips_heard: dict[tuple[str, str], float] = {}
        self.audio_topics: AudioTopicSource | None = None

    @property
    def current(self) -> PlayCommand | None:
        """The command playing now."""
        return self._current.command if self._current else None

    def schedule(self, command: PlayCommand, entry: JournalEntry, to: CommandTarget) -> None:
        """Queue a play command that came for ``to`` (its target and the key that verified
        it, with which sealed audio is fetched), preempting a lower-priority one playing."""
        current = self._current
        if current is not None and command.priority > current.command.priority:
            self._cancel_current(PREEMPTED)
        self._queue.append(PlayJob(command, entry, to, next(self._order)))
        self._wakeup.set()
        if isinstance(command, PlayUrl):
            # Download now, so the audio is ready when its turn comes.
            self._spawn(self._prefetch(command, to))

    async def _prefetch(self, command: PlayUrl, to: CommandTarget) -> None:
        try:
            await self._download(command, to)
        except (MediaDownloadError, MediaIntegrityError) as exc:
            log.info("box %s: prefetch of %s failed: %s", self._box_id, command.cmd_id, exc)

    def stop_alert(self, alert_id: str, reason: str) -> None:
        """Stop ``alert_id`` (everything for ``"*"``) whether playing or waiting."""

        def matches(job: PlayJob) -> bool:
            return alert_id == ALL_ALERTS or job.command.alert_id == alert_id

        for job in [j for j in self._queue if matches(j)]:
            self._queue.remove(job)
            self._spawn(self._report(job.entry, AckStage.FAILED, reason, None))
        if self._current is not None and matches(self._current):
            self._cancel_current(reason)

    def _cancel_current(self, reason: str) -> None:
        if self._current is not None and self._current_task is not None:
            self._current.stop_reason = reason
            self._current_task.cancel()

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def run(self) -> None:
        """Play queued commands one at a time until cancelled."""
        try:
            while True:
                await self._wakeup.wait()
                self._wakeup.clear()
                while self._queue:
                    job = max(self._queue, key=lambda j: (j.command.priority, -j.order))
                    self._queue.remove(job)
                    if job.command.expires_at <= self._clock():
                        await self._report(job.entry, AckStage.FAILED, "expired", None)
                        continue
                    await self._run_job(job)
        finally:
            await self.close()

    async def close(self) -> None:
        """Cancel the work scheduled beside the queue (downloads ahead, reports) and wait
        for it to end. :meth:`run` does this as it stops; the agent does it too, since work
        scheduled while it resumed a restart's commands exists before ``run`` starts, and a
        task cancelled before its first step never runs its ``finally``."""
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks)

    async def _run_job(self, job: PlayJob) -> None:
        self._current = job
        task = asyncio.get_running_loop().create_task(self._play(job))
        self._current_task = task
        try:
            await asyncio.wait([task])
        finally:
            if not task.done():
                task.cancel()
                await asyncio.wait([task])
            self._current = None
            self._current_task = None

    async def _play(self, job: PlayJob) -> None:
        command = job.command
        try:
            await self._play_media(job)
        except asyncio.CancelledError:
            if job.stop_reason == PREEMPTED and command.broadcast_class is BroadcastClass.EMERGENCY:
                # A warning cut off by a more urgent one plays again after it.
                job.stop_reason = None
                job.entry = await self._report(job.entry, AckStage.ACCEPTED, PREEMPTED, None)
                self._queue.append(job)
                self._wakeup.set()
            elif job.stop_reason is not None:
                await self._report(job.entry, AckStage.FAILED, job.stop_reason, None)
            raise
        except CommandExpiredError:
            log.warning("box %s: %s expired before it could play", self._box_id, command.cmd_id)
            await self._report(job.entry, AckStage.FAILED, "expired", None)
        except (MediaDownloadError, MediaIntegrityError) as exc:
            log.warning("box %s: %s cannot play: %s", self._box_id, command.cmd_id, exc)
            await self._report(job.entry, AckStage.FAILED, "media_unavailable", None)
        except SpeakerError as exc:
            log.error("box %s: player failed for %s: %s", self._box_id, command.cmd_id, exc)
            await self._report(job.entry, AckStage.FAILED, "player_error", None)
        else:
            await self._report(job.entry, AckStage.FINISHED, job.note, job.source)

    async def _play_media(self, job: PlayJob) -> None:
        """Play the command's audio ``repeat`` times; with an attention clip on the box, play
        the clip first while the audio downloads, then the audio from where its speech starts."""
        command = job.command
        heard = isinstance(command, PlayUrl) and self._heard(command)
        attention = None if heard else await self._attention(command)
        if attention is None:
            media = await self._resolve(command, job.to)
            job.source, job.note = media.source, media.note
            self._check_unexpired(command)
            job.entry = await self._report(job.entry, AckStage.STARTED, job.note, job.source)
        else:
            resolving = asyncio.get_running_loop().create_task(self._resolve(command, job.to))
            try:
                source = f"attention:{attention.name}"
                self._check_unexpired(command)
                job.entry = await self._report(job.entry, AckStage.STARTED, None, source)
                await self._player.play(self._request(command, attention, source))
                media = await resolving
                job.source, job.note = media.source, media.note
            finally:
                if not resolving.done():
                    resolving.cancel()
                    await asyncio.wait([resolving])
        start_s = 0.0
        if (heard or attention is not None) and job.source == "url":
            # The attention signal has just played as a clip: go on where the speech starts.
            start_s = (media.speech_start_ms or 0) / 1000
        request = self._request(command, media.path, job.source)
        for repeat in range(command.repeat):
            self._check_unexpired(command)
            await self._player.play(replace(request, start_s=start_s if repeat == 0 else 0.0))
        if isinstance(command, PlayClip):
            clips = self._clips_heard
            now = asyncio.get_running_loop().time()
            for key in [k for k, ended in clips.items() if now - ended > ATTENTION_HEARD_S]:
                del clips[key]
            clips[command.alert_id, command.clip_id] = now

    def _check_unexpired(self, command: PlayCommand) -> None:
        """Raise CommandExpiredError once ``command`` has expired: after ``expires_at`` nothing
        of it may start (section 2.3), though a playback already under way ends normally."""
        if command.expires_at <= self._clock():
            raise CommandExpiredError(command.cmd_id)

    def _heard(self, command: PlayUrl) -> bool:
        """Whether this box just played the command's attention clip for its alert."""
        if command.attention_clip is None or not self._player.starts_mid_file:
            return False
        ended = self._clips_heard.get((command.alert_id, command.attention_clip))
        return ended is not None and asyncio.get_running_loop().time() - ended <= ATTENTION_HEARD_S

    def _request(self, command: PlayCommand, path: Path, source: str) -> PlaybackRequest:
        return PlaybackRequest(
            box_id=self._box_id,
            cmd_id=command.cmd_id,
            alert_id=command.alert_id,
            path=path,
            volume=self._default_volume() if command.volume is None else command.volume,
            priority=command.priority,
            source=source,
        )

    async def _attention(self, command: PlayCommand) -> Path | None:
        """The stored attention clip a ``play_url`` names, when this box holds it (with the
        right hash) and its player can then start the audio mid-file; else None."""
        if not isinstance(command, PlayUrl) or command.attention_clip is None:
            return None
        if not self._player.starts_mid_file:
            return None
        try:
            return await self._clips.verified_clip(command.attention_clip, command.attention_sha256)
        except MediaIntegrityError as exc:
            log.info("box %s: no attention clip, playing the audio whole: %s", self._box_id, exc)
            return None

    async def _resolve(self, command: PlayCommand, to: CommandTarget) -> Media:
        """The file to play, where it came from, a note when a fallback was used, and where
        the speech starts in it."""
        if isinstance(command, PlayClip):
            path = await self._clips.verified_clip(command.clip_id, command.sha256)
            return Media(path, "clip", None, None)
        try:
            path, speech_start_ms = await self._download(command, to)
            return Media(path, "url", None, speech_start_ms)
        except (MediaDownloadError, MediaIntegrityError) as exc:
            fallback = command.fallback_clip or self._fallback_clip
            if fallback is None:
                raise
            log.warning("box %s: download failed (%s), playing %s", self._box_id, exc, fallback)
            note = "download_failed" if isinstance(exc, MediaDownloadError) else "hash_mismatch"
            path = await self._clips.verified_clip(fallback, None)
            return Media(path, f"fallback:{fallback}", note, None)

    async def _download(self, command: PlayUrl, to: CommandTarget) -> tuple[Path, int | None]:
        """The verified audio of ``command`` and where its speech starts: checked by its
        SHA-256, or sealed for ``to`` when it names none, taken from its ``audio_topic``
        when it can be (section 5.1)."""
        if command.sha256 is not None:
            return await self._fetcher.fetch(command.url, command.sha256), command.speech_start_ms
        return await self._fetcher.fetch_sealed(
            command.url, to, command.audio_topic, self.audio_topics
        )
