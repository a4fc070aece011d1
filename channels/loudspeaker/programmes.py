"""The play command every box of an alert with the same languages gets, built once.

A fan-out to thousands of boxes sends one command that differs from box to box only in its
command id, its ``to`` and its signature (and a group command, :mod:`channels.loudspeaker
.groups`, not even in those: it is signed once per area, :meth:`Programme.signed`).
:func:`build` makes the command: the audio rendered and published, or the stored clip for
the hazard when none can be rendered. :class:`ProgrammeCache` builds it (audio published,
command, description, reported content) once per alert, set of languages and expiry, keeps
it as a :class:`~drivers.speaker.codec.CommandTemplate`, and hands the same programme to every
send while it is fresh: its ``issued_at`` stays within ``fresh_s`` of the moment it is sent.
Sends that ask while it is being built wait for that one build; a build that fails is
forgotten, so the next send tries again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from audio import AudioError
from broadcaster.channel import OutgoingDelivery
from broadcaster.errors import RetryableError, UnsupportedError
from broadcaster.publisher import AudioPublisher, hazard_of
from channels.loudspeaker import commands
from channels.loudspeaker.config import LoudspeakerChannelConfig
from channels.loudspeaker.media import AudioLibrary
from drivers.speaker.codec import CommandTemplate
from drivers.speaker.messages import Command, PlayClip, PlayUrl

log = logging.getLogger(__name__)

Built = tuple[Command, str, dict[str, Any], tuple[str, ...]]
"""A command, its description for the log, the content reported and the warnings."""


@dataclass(frozen=True, slots=True)
class Programme:
    """One built command and what the channel reports with each send of it."""

    template: CommandTemplate
    what: str
    content: dict[str, Any]
    warnings: tuple[str, ...]
    made_at: float
    by_target: dict[tuple[str, str], bytes] = field(default_factory=dict)

    def signed(self, cmd_id: str, target: str, key: bytes) -> bytes:
        """The command as ``cmd_id`` for ``target``, signed once per programme (a group
        command: the same bytes for every box of an area)."""
        data = self.by_target.get((cmd_id, target))
        if data is None:
            data = self.by_target[cmd_id, target] = self.template.sign(cmd_id, target, key)
        return data


class ProgrammeCache:
    """Programmes by (alert, languages, expiry); see the module docstring."""

    def __init__(
        self,
        build: Callable[[OutgoingDelivery], Awaitable[Built]],
        *,
        fresh_s: float = 1.0,
        kept: int = 256,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._build = build
        self._fresh_s = fresh_s
        self._kept = kept
        self._clock = clock
        self._entries: OrderedDict[tuple[Any, ...], asyncio.Future[Programme]] = OrderedDict()

    async def get(self, delivery: OutgoingDelivery) -> Programme:
        """The programme for ``delivery``; raises what building it raised."""
        target, message = delivery.target, delivery.message
        key = (message.id, tuple(target.languages), delivery.expires_at, delivery.part)
        entry = self._entries.get(key)
        if entry is not None:
            if not entry.done():
                return await asyncio.shield(entry)
            if entry.exception() is None:
                programme = entry.result()
                if self._clock() - programme.made_at < self._fresh_s:
                    return programme
        future: asyncio.Future[Programme] = asyncio.get_running_loop().create_future()
        self._entries[key] = future
        self._entries.move_to_end(key)
        while len(self._entries) > self._kept:
            self._entries.popitem(last=False)
        try:
            command, what, content, warnings = await self._build(delivery)
            programme = Programme(CommandTemplate(command), what, content, warnings, self._clock())
        except BaseException as error:
            if self._entries.get(key) is future:
                del self._entries[key]
            future.set_exception(error)
            future.exception()  # retrieved: the waiters get it, there may be none
            raise
        future.set_result(programme)
        return programme


async def build(
    delivery: OutgoingDelivery,
    settings: LoudspeakerChannelConfig,
    library: AudioLibrary,
    audio: AudioPublisher | None,
    publish: bool = True,
) -> Built:
    """The box's command for ``delivery``, a description for the log, the content the
    channel reports and what the programme lacks (languages no voice, clip or recording
    could speak). The audio is published under ``library`` when ``publish`` (a preview only
    renders it); when it cannot be rendered and a clip is configured for the hazard, the
    stored clip plays instead."""
    message, target = delivery.message, delivery.target
    texts = message.rendition.for_languages(target.languages)
    if not texts:
        raise UnsupportedError(f"alert has no text for {target.id}")
    clip = settings.clip_for(hazard_of(texts[0].event))
    chosen = commands.broadcast_class(message.alert)
    try:
        if audio is None:
            raise UnsupportedError("this server renders no audio")
        languages = tuple(target.languages)
        if publish:
            published = await library.publish(audio, message, languages)
        else:
            published = (await library.prepare(audio, message, languages)).audio
    except (AudioError, UnsupportedError) as error:
        if clip is not None:
            log.warning("%s; playing stored clip %s", error, clip.id)
            command = commands.play_clip(delivery, settings, clip)
            what = f"stored clip {clip.id} ({chosen}, priority {command.priority})"
            warnings = (f"the warning itself could not be played: {error}",)
            return command, what, content_of(texts[0].language, command, None), warnings
        if isinstance(error, UnsupportedError | ValueError):
            raise UnsupportedError(f"no audio for {target.id}: {error}") from error
        raise RetryableError(f"audio for {target.id} could not be rendered: {error}") from error
    play = commands.play_url(
        delivery, settings, published.url, published.sha256, clip, published.speech_start_ms
    )
    spoken = "+".join(published.languages)
    what = (
        f"{spoken} audio, {published.duration_s:.0f} s × {play.repeat}"
        f" ({chosen}, priority {play.priority})"
    )
    return play, what, content_of(spoken, play, published.duration_s), published.warnings


def content_of(
    language: str, command: PlayUrl | PlayClip, duration_s: float | None
) -> dict[str, Any]:
    """What a play command tells the box, as the channel reports it."""
    audio = command.sha256 if isinstance(command, PlayUrl) else f"clip:{command.clip_id}"
    return {
        "language": language,
        "audio": audio,
        "duration_s": None if duration_s is None else round(duration_s, 1),
        "priority": command.priority,
        "volume": command.volume,
        "repeat": command.repeat,
    }
