"""The renderer: one call from plain warning fields to channel-ready audio files.

``Renderer.render(request, profile)`` builds the speech script, gets the spoken phrases from
the speech cache or the fallback chain (supplied audio, engines, stored clips), assembles and
normalises them for the channel profile, exports every format the profile wants, and returns a
``Render``: file and SHA-256 per format, duration, measured loudness and true peak, the rung
that spoke, the attempts before it, and whether the test/exercise marker is present.
``Renderer.render_programme(requests, profile)`` does the same for one message in several
languages, in the order given, under one attention signal: a language nothing can voice is
left out and named in ``Render.unspoken``; only when no language can be voiced does it raise
(``NoVoiceError``, saying what to supply). Renders that leave a language out are, like renders
spoken from clips, kept in memory only, so a voice or clip added later is used at once. Speech is
made once per text and language and shared by every profile; a finished render is cached per
profile. Renders spoken from stored clips are kept in memory only, so the next render after the
synthesisers recover uses them again.

A profile with one format is rendered streamed (``audio.stream``): its encoder starts with the
attention signal while the engines speak. Blocking work runs in subprocesses (engines,
encoders) and worker threads (assembly, files); the coroutine never blocks the event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import weakref
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from audio.assembly import AssembledAudio, ChannelProfile, assemble_programme
from audio.cache import RenderCache, cache_key, load_speech, save_speech
from audio.chain import CLIP_RUNG, SpeechChain, SpeechResult
from audio.clips import DEFAULT_LIBRARY, ClipLibrary
from audio.engines import (
    EdgeTtsConfig,
    EdgeTtsEngine,
    EspeakConfig,
    EspeakEngine,
    PiperConfig,
    PiperEngine,
    SpeechEngine,
)
from audio.errors import (
    AudioConfigError,
    NoSpeechError,
    NoVoiceError,
    SpeechTextError,
)
from audio.export import ExportFormat, export_all
from audio.pcm import MASTER_RATE
from audio.renders import (
    Render as Render,
)
from audio.renders import (
    UnspokenLanguage as UnspokenLanguage,
)
from audio.renders import (
    digest,
    files_present,
    render_from_meta,
)
from audio.same import parse_header
from audio.speechtext import SpeechScript, SpeechText, build_script, parse_level
from audio.stream import StreamedRender

RENDER_LAYOUT_VERSION = 3
ENGINE_NAMES = ("edge-tts", "espeak-ng", "piper")


@dataclass(frozen=True)
class RendererConfig:
    """Cache location, engine order and per-engine settings, clip library directory."""

    cache_dir: Path
    engine_order: tuple[str, ...] = ("edge-tts", "espeak-ng", "piper")
    edge_tts: EdgeTtsConfig = field(default_factory=EdgeTtsConfig)
    espeak: EspeakConfig = field(default_factory=EspeakConfig)
    piper: PiperConfig = field(default_factory=PiperConfig)
    clips_dir: Path | None = DEFAULT_LIBRARY

    def __post_init__(self) -> None:
        unknown = [name for name in self.engine_order if name not in ENGINE_NAMES]
        if unknown:
            raise AudioConfigError(f"unknown speech engines {unknown}; known: {ENGINE_NAMES}")

    def build_chain(self) -> SpeechChain:
        """The fallback chain this configuration describes."""
        makers: dict[str, SpeechEngine] = {
            "edge-tts": EdgeTtsEngine(self.edge_tts),
            "espeak-ng": EspeakEngine(self.espeak),
            "piper": PiperEngine(self.piper),
        }
        clips = ClipLibrary(self.clips_dir) if self.clips_dir is not None else None
        return SpeechChain([makers[name] for name in self.engine_order], clips)


@dataclass(frozen=True)
class RenderRequest:
    """What to render: the warning text, its hazard code (for stored clips), a SAME header,
    and audio that came with the warning (any format ffmpeg reads), spoken instead of the body."""

    speech: SpeechText
    hazard: str = "generic"
    same_header: str | None = None
    supplied_audio: bytes | None = field(default=None, repr=False)
    places: tuple[str, ...] = ()
    """Codes of the places the warning is for (county or banner), named by a warning
    assembled from phrase clips."""


class Renderer:
    """Renders warnings through one chain and one cache; safe to share between tasks."""

    def __init__(self, config: RendererConfig, chain: SpeechChain | None = None) -> None:
        self.config = config
        self.chain = chain or config.build_chain()
        self.cache = RenderCache(config.cache_dir)
        self._chain_identity = self.chain.identity()
        # Held only while a render of that key is in progress or awaited.
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self._clip_speech: dict[str, SpeechResult] = {}
        self._clip_renders: dict[str, Render] = {}

    async def render(self, request: RenderRequest, profile: ChannelProfile) -> Render:
        """Render ``request`` for ``profile``, from the cache when possible; raises what the
        speech chain raised when it cannot be spoken."""
        return await self._render((request,), profile, single=True)

    async def render_programme(
        self, requests: Sequence[RenderRequest], profile: ChannelProfile
    ) -> Render:
        """One message in the languages of ``requests``, in their order, under one attention
        signal (and the SAME header of the first request); languages nothing can voice are left
        out and listed in ``Render.unspoken``. Raises NoVoiceError when none can be voiced."""
        return await self._render(requests, profile, single=False)

    async def _render(
        self, requests: Sequence[RenderRequest], profile: ChannelProfile, *, single: bool
    ) -> Render:
        if not requests:
            raise AudioConfigError("a programme needs at least one language")
        same_header = requests[0].same_header if profile.same else None
        if same_header is not None:
            parse_header(same_header)
        scripts: list[tuple[RenderRequest, SpeechScript, str]] = []
        unspoken: list[UnspokenLanguage] = []
        for request in requests:
            try:
                script = build_script(request.speech)
            except SpeechTextError as exc:
                if single:
                    raise
                unspoken.append(UnspokenLanguage(request.speech.language, str(exc)))
                continue
            scripts.append((request, script, self._speech_key(script, request)))
        key = cache_key(
            {
                "speech": [speech_key for _, _, speech_key in scripts],
                "unspoken": [asdict(u) for u in unspoken],
                "profile": profile.identity(),
                "same": same_header,
                "layout": RENDER_LAYOUT_VERSION,
            }
        )
        async with self._lock(key):
            if key in self._clip_renders:
                return self._clip_renders[key]
            meta = await asyncio.to_thread(self.cache.read_meta, "renders", key)
            if meta is not None and files_present(self.cache.entry_dir("renders", key), meta):
                return render_from_meta(key, self.cache.entry_dir("renders", key), meta, True)
            await asyncio.to_thread(self.cache.discard, "renders", key)
            order = [r.speech.language for r in requests]
            if len(profile.formats) == 1:
                return await self._render_streamed(
                    key, scripts, unspoken, order, profile, same_header, single
                )
            spoken = await self._programme_speech(scripts, unspoken, order, single=single)
            programme = _Programme(spoken, tuple(unspoken), same_header)
            return await self._store(key, programme, lambda d: _build(d, programme, profile))

    async def _render_streamed(
        self,
        key: str,
        scripts: list[tuple[RenderRequest, SpeechScript, str]],
        unspoken: list[UnspokenLanguage],
        order: list[str],
        profile: ChannelProfile,
        same_header: str | None,
        single: bool,
    ) -> Render:
        """Encode the opening while the speech is synthesised, then the rest as it is laid
        out (``audio.stream``)."""
        work = await asyncio.to_thread(self.cache.work_dir)
        try:
            opening = asyncio.ensure_future(
                asyncio.to_thread(StreamedRender, profile, same_header, work)
            )
            try:
                spoken = await self._programme_speech(scripts, unspoken, order, single=single)
            except BaseException:
                await _abandon(opening)
                raise
            streamed = await opening
            programme = _Programme(spoken, tuple(unspoken), same_header)

            def build(directory: Path) -> dict[str, Any]:
                assembled, files = streamed.finish(_speeches(programme), directory)
                encoder = streamed.encoder
                timing = {
                    "first_audio_s": encoder.first_audio_s,
                    "speech_audio_s": encoder.speech_audio_s,
                }
                return _meta(programme, profile, assembled, files) | timing

            return await self._store(key, programme, build)
        finally:
            await asyncio.to_thread(shutil.rmtree, work, True)

    async def _store(
        self, key: str, programme: _Programme, build: Callable[[Path], dict[str, Any]]
    ) -> Render:
        """Build the render into the cache, or in memory only when it leaves a language out or
        speaks from clips (so a voice or clip added later is used at once)."""
        if programme.unspoken or any(
            speech.engine == CLIP_RUNG for _, _, speech in programme.spoken
        ):
            directory = self.cache.directory / "renders" / f"clip-{key}"
            await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True)
            meta = await asyncio.to_thread(build, directory)
            render = render_from_meta(key, directory, meta, False)
            self._clip_renders[key] = render
            return render
        meta = await asyncio.to_thread(self.cache.store, "renders", key, build)
        return render_from_meta(key, self.cache.entry_dir("renders", key), meta, False)

    async def _programme_speech(
        self,
        scripts: list[tuple[RenderRequest, SpeechScript, str]],
        unspoken: list[UnspokenLanguage],
        order: list[str],
        *,
        single: bool,
    ) -> list[tuple[RenderRequest, SpeechScript, SpeechResult]]:
        results = await asyncio.gather(
            *(self._speech(script, key, request) for request, script, key in scripts),
            return_exceptions=True,
        )
        spoken = []
        for (request, script, _), result in zip(scripts, results, strict=True):
            if isinstance(result, NoSpeechError) and not single:
                unspoken.append(UnspokenLanguage(request.speech.language, str(result)))
            elif isinstance(result, BaseException):
                raise result
            else:
                spoken.append((request, script, result))
        unspoken.sort(key=lambda u: order.index(u.language))
        if not spoken:
            raise NoVoiceError(_nothing_voiced(unspoken), tuple(unspoken))
        return spoken

    def _lock(self, key: str) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[key] = lock
        return lock

    def _speech_key(self, script: SpeechScript, request: RenderRequest) -> str:
        supplied = request.supplied_audio
        supplied_digest = hashlib.sha256(supplied).hexdigest() if supplied is not None else None
        return cache_key(
            {
                "script": asdict(script),
                "chain": self._chain_identity,
                "supplied": supplied_digest,
                "places": list(request.places),
            }
        )

    async def _speech(self, script: SpeechScript, key: str, request: RenderRequest) -> SpeechResult:
        async with self._lock("speech:" + key):
            if key in self._clip_speech:
                return self._clip_speech[key]
            stored = await asyncio.to_thread(load_speech, self.cache, key)
            if stored is not None:
                return stored
            await asyncio.to_thread(self.cache.discard, "speech", key)
            level = parse_level(request.speech.level).value
            speech = await self.chain.speak(
                script, request.hazard, level, request.supplied_audio, request.places
            )
            if speech.engine == CLIP_RUNG:
                self._clip_speech[key] = speech
            else:
                await asyncio.to_thread(
                    self.cache.store, "speech", key, lambda d: save_speech(d, speech)
                )
            return speech


async def _abandon(opening: asyncio.Future[StreamedRender]) -> None:
    """Stop a streamed render whose speech failed, once its encoder has started."""
    try:
        streamed = await asyncio.shield(opening)
    except Exception:
        return
    await asyncio.to_thread(streamed.abort)


@dataclass(frozen=True)
class _Programme:
    """What one render is made of: the spoken languages in order, those left out."""

    spoken: list[tuple[RenderRequest, SpeechScript, SpeechResult]]
    unspoken: tuple[UnspokenLanguage, ...]
    same_header: str | None


def _nothing_voiced(unspoken: Sequence[UnspokenLanguage]) -> str:
    reasons = "; ".join(f"{u.language}: {u.reason}" for u in unspoken)
    return (
        f"no language of the message can be voiced ({reasons}); supply recorded audio in one"
        " of them, a speech engine voice for it, or its phrases in the clip library"
    )


def _speeches(programme: _Programme) -> list[tuple[str, SpeechResult]]:
    return [(script.language, speech) for _, script, speech in programme.spoken]


def _build(directory: Path, programme: _Programme, profile: ChannelProfile) -> dict[str, Any]:
    assembled = assemble_programme(_speeches(programme), profile, programme.same_header)
    files = export_all(assembled.samples, profile.formats, directory)
    return _meta(programme, profile, assembled, files)


def _meta(
    programme: _Programme,
    profile: ChannelProfile,
    assembled: AssembledAudio,
    files: dict[ExportFormat, Path],
) -> dict[str, Any]:
    speeches = _speeches(programme)
    engines = list(dict.fromkeys(speech.engine for _, speech in speeches))
    return {
        "profile": profile.name,
        "files": {fmt.value: path.name for fmt, path in files.items()},
        "duration_s": len(assembled.samples) / MASTER_RATE,
        "loudness_lufs": assembled.loudness.integrated_lufs,
        "true_peak_dbtp": assembled.loudness.true_peak_dbtp,
        "engine": "+".join(engines),
        "fallback": any(speech.fallback for _, speech in speeches),
        "attempts": [asdict(a) for _, speech in speeches for a in speech.attempts],
        "marker": next((s.marker for _, s, _ in programme.spoken if s.marker), None),
        "segments": [asdict(s) for s in assembled.segments],
        "sha256": {fmt.value: digest(path) for fmt, path in files.items()},
        "languages": [language for language, _ in speeches],
        "unspoken": [asdict(u) for u in programme.unspoken],
    }


async def render_warning(
    request: RenderRequest, profile: ChannelProfile, config: RendererConfig
) -> Render:
    """One-shot helper: build a ``Renderer`` for ``config`` and render ``request``."""
    return await Renderer(config).render(request, profile)
