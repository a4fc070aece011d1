"""The play command every box of an alert with the same languages gets, built once.

A fan-out to thousands of boxes sends one command that differs from box to box only in its
command id, its ``to`` and its signature (and a group command, :mod:`channels.loudspeaker
.groups`, not even in those: it is signed once per area, :meth:`Programme.signed`).
:func:`build` makes the command at once, before the audio exists: a ``play_url`` without its
SHA-256, naming the URL the audio library reserved for the programme (docs/protocols/speaker.md
section 5.1, sealed audio), so a box can start its stored attention signal the moment it
holds the command while the warning renders (with an MQTT link, naming too the topic the
audio is retained under: :mod:`channels.loudspeaker.retained_audio`); or, when this server
renders no audio, the stored clip for the hazard. What the channel reports with each send
(description, content, warnings: :class:`Told`) follows when the render ends: the audio's
SHA-256 and duration, or, when it could not be rendered, the fallback clip the boxes play
instead. :class:`ProgrammeCache` builds a programme once per alert, set of languages and
expiry, keeps it as a :class:`~drivers.speaker.codec.CommandTemplate`, and hands the same
programme to every send while it is fresh: its ``issued_at`` stays within ``fresh_s`` of the
moment it is sent. A build that fails is forgotten, so the next send tries again. The renders
behind the reports belong to the cache: :meth:`ProgrammeCache.close` (the channel's stop)
stops those still running, so nothing of a stopped channel renders or publishes on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from broadcaster.channel import OutgoingDelivery
from broadcaster.errors import UnsupportedError
from broadcaster.publisher import AudioPublisher, hazard_of
from channels.loudspeaker import commands
from channels.loudspeaker.config import ClipSettings, LoudspeakerChannelConfig
from channels.loudspeaker.media import AudioLibrary, PreparedAudio, PublishedAudio
from channels.loudspeaker.retained_audio import RetainedAudio
from drivers.speaker.codec import CommandTemplate
from drivers.speaker.messages import BroadcastClass, Command, PlayUrl

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Told:
    """What the channel reports with each send of a programme: a description for the log,
    the content the box is told to play, and what the programme lacks."""

    what: str
    content: dict[str, Any]
    warnings: tuple[str, ...]


Built = tuple[Command, Awaitable[Told]]
"""A command, ready to send, and what will be reported with it once its audio is rendered."""


@dataclass(frozen=True, slots=True)
class Programme:
    """One built command and what the channel reports with each send of it."""

    template: CommandTemplate
    told: asyncio.Future[Told]
    made_at: float
    audio_topic: str | None = None
    """Where the command's audio is retained on MQTT (:mod:`channels.loudspeaker
    .retained_audio`), when it is."""
    by_target: dict[tuple[str, str], bytes] = field(default_factory=dict)

    def signed(self, cmd_id: str, target: str, key: bytes) -> bytes:
        """The command as ``cmd_id`` for ``target``, signed once per programme (a group
        command: the same bytes for every box of an area)."""
        data = self.by_target.get((cmd_id, target))
        if data is None:
            data = self.by_target[cmd_id, target] = self.template.sign(cmd_id, target, key)
        return data

    async def report(self) -> Told:
        """What to report with each send, once the audio is rendered (or known not to be)."""
        return await asyncio.shield(self.told)


def programme_key(delivery: OutgoingDelivery) -> tuple[Any, ...]:
    """What makes deliveries share a programme: alert, languages, expiry and part."""
    target = delivery.target
    return (delivery.message.id, tuple(target.languages), delivery.expires_at, delivery.part)


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
        self._reports: set[asyncio.Future[Told]] = set()
        """Reports still awaiting their render, also of programmes no longer kept."""

    async def get(self, delivery: OutgoingDelivery) -> Programme:
        """The programme for ``delivery``; raises what building its command raised."""
        key = programme_key(delivery)
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
            command, told = await self._build(delivery)
        except BaseException as error:
            if self._entries.get(key) is future:
                del self._entries[key]
            future.set_exception(error)
            future.exception()  # retrieved: the waiters get it, there may be none
            raise
        topic = command.audio_topic if isinstance(command, PlayUrl) else None
        template = CommandTemplate(command)
        report = asyncio.ensure_future(told)
        if not report.done():
            self._reports.add(report)
            report.add_done_callback(self._reports.discard)
        programme = Programme(template, report, self._clock(), topic)
        future.set_result(programme)
        return programme

    async def close(self) -> None:
        """Stop the renders still running for reports and forget every programme (the
        core has stopped sending by then)."""
        self._entries.clear()
        reports = list(self._reports)
        for report in reports:
            report.cancel()
        await asyncio.gather(*reports, return_exceptions=True)


class _Sound(NamedTuple):
    """How a delivery's programme plays, whatever the box ends up playing: its first
    language, the hazard's stored clip, the broadcast class, priority, volume and repeats."""

    language: str
    clip: ClipSettings | None
    chosen: BroadcastClass
    priority: int
    volume: int | None
    repeat: int

    def content(self, language: str, audio: str, duration_s: float | None) -> dict[str, Any]:
        """What the box is told to play, as the channel reports it."""
        return {
            "language": language,
            "audio": audio,
            "duration_s": None if duration_s is None else round(duration_s, 1),
            "priority": self.priority,
            "volume": self.volume,
            "repeat": self.repeat,
        }

    def clip_told(self, clip: str, warning: str) -> Told:
        """A stored clip (``clip`` names it) played in place of the warning's audio."""
        audio = f"clip:{self.clip.id}" if self.clip else "clip:fallback"
        what = f"{clip} ({self.chosen}, priority {self.priority})"
        return Told(what, self.content(self.language, audio, None), (warning,))


async def build(
    delivery: OutgoingDelivery,
    settings: LoudspeakerChannelConfig,
    library: AudioLibrary,
    audio: AudioPublisher | None,
    retained: RetainedAudio,
) -> Built:
    """The box's command for ``delivery``, at once, and what the channel will report with
    it: a sealed ``play_url`` of the URL ``library`` reserved, its audio rendered and published
    meanwhile (and retained on MQTT under the command's ``audio_topic`` when ``retained``
    gives one); when this server renders no audio, the stored clip for the hazard (raises
    UnsupportedError when none is configured, or the alert has no text for the target)."""
    message, target = delivery.message, delivery.target
    sound = _sound(delivery, settings, audio)
    if audio is None:
        assert sound.clip is not None
        command = commands.play_clip(delivery, settings, sound.clip)
        return command, _ready(_no_audio(sound))
    languages = tuple(target.languages)
    url = library.reserve(message, languages)
    topic = retained.topic_for(url, message.id, delivery.expires_at)
    play = commands.play_url(delivery, settings, url, sound.clip, topic)
    rendered = library.publish(audio, message, languages)
    if topic is not None:
        rendered = retained.follow(topic, rendered)
    return play, tell(rendered, sound)


async def preview(
    delivery: OutgoingDelivery,
    settings: LoudspeakerChannelConfig,
    library: AudioLibrary,
    audio: AudioPublisher | None,
) -> Told:
    """What :func:`build` reports with ``delivery``'s command, its audio rendered and not
    published (nothing a box can fetch); raises as ``build``."""
    message, target = delivery.message, delivery.target
    sound = _sound(delivery, settings, audio)
    if audio is None:
        return _no_audio(sound)
    prepared = library.prepare(audio, message, tuple(target.languages))
    return await tell(_audio_of(prepared), sound)


def _sound(
    delivery: OutgoingDelivery, settings: LoudspeakerChannelConfig, audio: AudioPublisher | None
) -> _Sound:
    """How ``delivery``'s programme plays; raises UnsupportedError when there is nothing to
    send."""
    target, alert = delivery.target, delivery.message.alert
    texts = delivery.message.rendition.for_languages(target.languages)
    if not texts:
        raise UnsupportedError(f"alert has no text for {target.id}")
    clip = settings.clip_for(hazard_of(texts[0].event))
    if audio is None and clip is None:
        raise UnsupportedError(f"no audio for {target.id}: this server renders no audio")
    chosen = commands.broadcast_class(alert)
    volume = commands.volume_for(alert, settings)
    priority = settings.priorities[chosen]
    return _Sound(texts[0].language, clip, chosen, priority, volume, settings.repeat)


def _no_audio(sound: _Sound) -> Told:
    assert sound.clip is not None
    warning = "the warning itself could not be played: this server renders no audio"
    return sound.clip_told(f"stored clip {sound.clip.id}", warning)


async def _audio_of(prepared: Awaitable[PreparedAudio]) -> PublishedAudio:
    return (await prepared).audio


async def _ready(told: Told) -> Told:
    return told


async def tell(rendered: Awaitable[PublishedAudio], sound: _Sound) -> Told:
    """What a ``play_url`` of the ``rendered`` audio tells the box, once it is rendered; when
    it cannot be, the fallback clip the boxes play instead (the hazard's, or their own)."""
    try:
        published = await rendered
    except Exception as error:
        fallback = f"stored clip {sound.clip.id}" if sound.clip else "their own fallback clip"
        log.warning("%s; the boxes play %s", error, fallback)
        warning = f"the warning itself could not be rendered: {error}; the boxes play {fallback}"
        return sound.clip_told(fallback, warning)
    spoken = "+".join(published.languages)
    what = (
        f"{spoken} audio, {published.duration_s:.0f} s × {sound.repeat}"
        f" ({sound.chosen}, priority {sound.priority})"
    )
    content = sound.content(spoken, published.sha256, published.duration_s)
    return Told(what, content, published.warnings)
