"""The audio side of the publisher: an alert's texts into channel-ready audio, once per alert,
language and channel profile.

Channels that speak (loudspeakers, FM, telephone paging) ask :class:`AudioPublisher` for a
render; ``render_programme`` makes one message of a target's languages in its order (the
alert's recording in that language, else synthesis, else stored clips), leaving out a language
nothing can voice and naming it (``unspoken_warnings``). The first request renders through
:mod:`audio` (speech fallback chain, attention signal, loudness normalisation, export) and
later ones come from its cache. The warning colour
comes from the alert's ``<parameter>`` (the national system's 预警级别/colour, or Ⅰ–Ⅳ) or
else from its severity (Extreme→red, Severe→orange, Moderate→yellow, Minor→blue); the hazard,
used to pick stored clips when every synthesiser is down, from the event's name.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import hashlib
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from audio.assembly import PROFILES, ChannelProfile
from audio.engines import EdgeTtsConfig, EspeakConfig
from audio.errors import NoVoiceError
from audio.export import ExportFormat
from audio.languages import LanguageTagError, parse
from audio.render import Render, Renderer, RendererConfig, RenderRequest
from audio.speechtext import Level, SpeechText
from broadcaster.cap import Info, Severity
from broadcaster.channel import AlertMessage, PreviewAudio, SpokenPart
from broadcaster.config import AudioConfig
from broadcaster.rendition import MessageText
from broadcaster.uploads import UploadStore

_LEVEL_BY_SEVERITY = {
    Severity.EXTREME: Level.RED,
    Severity.SEVERE: Level.ORANGE,
    Severity.MODERATE: Level.YELLOW,
    Severity.MINOR: Level.BLUE,
}
_LEVEL_WORDS = {
    Level.RED: ("红", "red", "Ⅰ", "I级", "1"),
    Level.ORANGE: ("橙", "orange", "Ⅱ", "II级", "2"),
    Level.YELLOW: ("黄", "yellow", "Ⅲ", "III级", "3"),
    Level.BLUE: ("蓝", "blue", "Ⅳ", "IV级", "4"),
}
_HAZARDS = (
    ("rainstorm", ("暴雨", "rain")),
    ("blizzard", ("暴雪", "雪", "snow", "blizzard")),
    ("cold-wave", ("寒潮", "低温", "冰冻", "道路结冰", "cold", "freez")),
    ("gale", ("大风", "冰雹", "wind", "hail", "gale")),
    ("sandstorm", ("沙尘", "dust", "sand")),
    ("wildfire", ("火", "fire")),
    ("earthquake", ("地震", "earthquake")),
    ("flood", ("洪", "山洪", "地质", "滑坡", "泥石流", "flood", "landslide")),
    ("hazmat", ("危化", "泄漏", "化学", "chemical", "hazmat")),
)


_LANGUAGE_NAMES = {"mn": "Mongolian", "zh": "Chinese", "en": "English"}
_CONTENT_TYPES = {
    ExportFormat.MP3: "audio/mpeg",
    ExportFormat.OPUS: "audio/ogg",
    ExportFormat.WAV: "audio/wav",
    ExportFormat.ULAW: "audio/wav",
}


def _info_for(message: AlertMessage, text: MessageText) -> Info | None:
    return next((i for i in message.alert.infos if i.language == text.language), None)


def warning_level(info: Info | None) -> Level:
    """The warning colour of an ``<info>``: from its parameters, else from its severity."""
    if info is None:
        return Level.NONE
    for parameter in info.parameters:
        name = parameter.value_name.lower()
        if any(w in name for w in ("level", "colour", "color", "级别", "颜色")):
            value = parameter.value.strip().lower()
            for level, words in _LEVEL_WORDS.items():
                if any(value.startswith(w.lower()) for w in words):
                    return level
    return _LEVEL_BY_SEVERITY.get(info.severity, Level.NONE)


@functools.lru_cache(maxsize=256)
def hazard_of(event: str) -> str:
    """The clip-library hazard for an event name ("generic" when none fits); cached, since
    channels ask it once per delivery."""
    lowered = event.lower()
    for hazard, words in _HAZARDS:
        if any(word in lowered for word in words):
            return hazard
    return "generic"


def supplied_audio(info: Info | None, uploads: UploadStore | None = None) -> bytes | None:
    """Audio the alert carries itself: a ``<resource>`` of an audio type with ``derefUri``, or
    with a ``uri`` naming the server's own upload store (never any other address; blocking).

    It is the first rung of the speech chain: a recorded announcement beats any synthesiser.
    A resource whose content does not decode, or whose SHA-1 ``digest`` does not match, is
    ignored (the chain falls through to synthesis).
    """
    if info is None:
        return None
    for resource in info.resources:
        if not resource.mime_type.lower().startswith("audio/"):
            continue
        if resource.deref_uri:
            try:
                data = base64.b64decode(resource.deref_uri, validate=False)
            except (binascii.Error, ValueError):
                continue
        elif resource.uri and uploads is not None:
            stored = uploads.read(resource.uri)
            if stored is None:
                continue
            data = stored
        else:
            continue
        if resource.digest and hashlib.sha1(data).hexdigest() != resource.digest.lower():  # noqa: S324 - CAP 1.2 names SHA-1
            continue
        return data
    return None


def speech_text(message: AlertMessage, text: MessageText) -> SpeechText:
    """The plain fields :mod:`audio` needs for one language of an alert."""
    info = _info_for(message, text)
    return SpeechText(
        language=text.language,
        status=str(message.alert.status),
        event=text.event,
        headline=text.headline,
        description=text.description,
        instruction=text.instruction,
        sender_name=text.sender_name,
        level=warning_level(info),
    )


def language_name(tag: str) -> str:
    """The English name of a tag's language (``mn-Mong`` → ``Mongolian``), else the tag."""
    try:
        return _LANGUAGE_NAMES.get(parse(tag).language, tag)
    except LanguageTagError:
        return tag


def unspoken_warnings(render: Render) -> tuple[str, ...]:
    """One warning per language a render had to leave out, for the delivery's record."""
    return tuple(
        f"{language_name(u.language)} speech not available ({u.language}): {u.reason}"
        for u in render.unspoken
    )


def preview_audio(render: Render, fmt: ExportFormat, targets: int) -> PreviewAudio:
    """A render as a channel's preview hands it to the console (``ChannelPreview.audio``): its
    file in ``fmt`` (in the render cache, where no device fetches it), that file's SHA-256, where
    each language is spoken, and the languages it left out."""
    spans = [s for s in render.segments if s.language]
    spoken = tuple(
        SpokenPart(
            language,
            min(s.start_s for s in spans if s.language == language),
            max(s.end_s for s in spans if s.language == language),
        )
        for language in render.languages
        if any(s.language == language for s in spans)
    )
    return PreviewAudio(
        path=render.files[fmt],
        content_type=_CONTENT_TYPES[fmt],
        sha256=render.sha256[fmt],
        duration_s=render.duration_s,
        spoken=spoken,
        targets=targets,
        engine=render.engine,
        has_marker=render.has_marker,
        warnings=unspoken_warnings(render),
    )


def programme_requests(
    message: AlertMessage,
    languages: Sequence[str],
    same_header: str | None = None,
    uploads: UploadStore | None = None,
) -> list[RenderRequest]:
    """The render requests for a target's languages, in its order, each with the recording the
    alert carries in that language (blocking: it may read the upload store)."""
    return [
        RenderRequest(
            speech=speech_text(message, t),
            hazard=hazard_of(t.event),
            same_header=same_header,
            supplied_audio=supplied_audio(_info_for(message, t), uploads),
            places=places_of(_info_for(message, t)),
        )
        for t in message.rendition.for_languages(tuple(languages))
    ]


def places_of(info: Info | None) -> tuple[str, ...]:
    """The county and banner codes (6 digits) an ``<info>``'s geocodes name, in order: a
    warning assembled from phrase clips names these places."""
    if info is None:
        return ()
    codes = [g.value.strip()[:6] for a in info.areas for g in a.geocodes]
    return tuple(dict.fromkeys(c for c in codes if len(c) == 6 and c.isdigit()))


class AudioPublisher:
    """Renders alerts for channel profiles (``loudspeaker``, ``fm``, ``telephone``)."""

    def __init__(
        self,
        cache_dir: Path,
        config: AudioConfig | None = None,
        uploads: UploadStore | None = None,
    ) -> None:
        config = config or AudioConfig()
        self.uploads = uploads
        """Where recordings an alert names by ``uri`` are read from (nothing else is fetched)."""
        self.keep_s = config.keep_days * 86400
        """How long renders, and the audio files channels publish from them, are kept unused."""
        self.renderer = Renderer(
            RendererConfig(
                cache_dir=cache_dir,
                engine_order=tuple(config.engine_order),
                edge_tts=EdgeTtsConfig(
                    proxy=config.edge_tts_proxy, timeout_s=config.edge_tts_timeout_seconds
                ),
                espeak=EspeakConfig(),
            )
        )

    def has_voice(self, language: str) -> bool:
        """Whether a synthesiser can speak ``language`` (else only a recording voices it)."""
        return self.renderer.chain.has_voice(language)

    async def prune(self) -> int:
        """Delete renders unused for ``keep_s``; returns how many."""
        return await asyncio.to_thread(self.renderer.cache.prune, self.keep_s)

    async def render(
        self,
        message: AlertMessage,
        profile: str | ChannelProfile,
        languages: Sequence[str] = ("zh-CN",),
    ) -> list[Render]:
        """One render per language of the target that the alert has (at least one)."""
        chosen = profile if isinstance(profile, ChannelProfile) else PROFILES[profile]
        requests = await asyncio.to_thread(
            programme_requests, message, languages, None, self.uploads
        )
        return list(await asyncio.gather(*(self.renderer.render(r, chosen) for r in requests)))

    async def render_programme(
        self,
        message: AlertMessage,
        profile: str | ChannelProfile,
        languages: Sequence[str] = ("zh-CN",),
        same_header: str | None = None,
    ) -> Render:
        """One message in the target's languages that the alert has, in the target's order;
        languages nothing can voice are left out (``unspoken_warnings``). When none of them
        can be voiced the alert's other languages are spoken instead, so the target is not
        silent; NoVoiceError only when no language of the alert can be voiced."""
        chosen = profile if isinstance(profile, ChannelProfile) else PROFILES[profile]
        requests = await asyncio.to_thread(
            programme_requests, message, languages, same_header, self.uploads
        )
        try:
            return await self.renderer.render_programme(requests, chosen)
        except NoVoiceError as error:
            tried = {r.speech.language for r in requests}
            others = [t.language for t in message.rendition.texts if t.language not in tried]
            if not others:
                raise
            unspoken = error.unspoken
        fallback = await asyncio.to_thread(
            programme_requests, message, others, same_header, self.uploads
        )
        render = await self.renderer.render_programme(fallback, chosen)
        return replace(render, unspoken=(*unspoken, *render.unspoken))
