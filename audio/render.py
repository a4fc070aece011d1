"""The renderer: one call from plain warning fields to channel-ready audio files.

``Renderer.render(request, profile)`` builds the speech script, gets the spoken phrases from
the speech cache or the fallback chain (supplied audio, engines, stored clips), assembles and
normalises them for the channel profile, exports every format the profile wants, and returns a
``Render``: file and SHA-256 per format, duration, measured loudness and true peak, the rung
that spoke, the attempts before it, and whether the test/exercise marker is present. Speech is
made once per text and language and shared by every profile; a finished render is cached per
profile. Renders spoken from stored clips are kept in memory only, so the next render after the
synthesisers recover uses them again.

Blocking work runs in subprocesses (engines, encoders) and worker threads (assembly, files);
the coroutine never blocks the event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import weakref
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from audio.assembly import ChannelProfile, SegmentSpan, assemble
from audio.cache import RenderCache, cache_key
from audio.chain import CLIP_RUNG, EngineAttempt, SpeechChain, SpeechResult
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
from audio.errors import AudioConfigError, RenderCacheError
from audio.export import ExportFormat, export_all
from audio.pcm import MASTER_RATE
from audio.same import parse_header
from audio.speechtext import SpeechScript, SpeechText, build_script, parse_level

RENDER_LAYOUT_VERSION = 2
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


@dataclass(frozen=True)
class Render:
    """A finished render for one channel profile."""

    key: str
    profile: str
    files: dict[ExportFormat, Path]
    duration_s: float
    loudness_lufs: float
    true_peak_dbtp: float
    engine: str
    fallback: bool
    attempts: tuple[EngineAttempt, ...]
    marker: str | None
    segments: tuple[SegmentSpan, ...]
    sha256: dict[ExportFormat, str]
    cached: bool = False

    @property
    def has_marker(self) -> bool:
        """Whether the spoken test/exercise marker is in the audio."""
        return self.marker is not None


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
        """Render ``request`` for ``profile``, from the cache when possible."""
        script = build_script(request.speech)
        if profile.same and request.same_header is not None:
            parse_header(request.same_header)
        speech_key = self._speech_key(script, request.supplied_audio)
        key = cache_key(
            {
                "speech": speech_key,
                "profile": profile.identity(),
                "same": request.same_header if profile.same else None,
                "layout": RENDER_LAYOUT_VERSION,
            }
        )
        async with self._lock(key):
            if key in self._clip_renders:
                return self._clip_renders[key]
            meta = await asyncio.to_thread(self.cache.read_meta, "renders", key)
            if meta is not None and _files_present(self.cache.entry_dir("renders", key), meta):
                return _render_from_meta(key, self.cache.entry_dir("renders", key), meta, True)
            await asyncio.to_thread(self.cache.discard, "renders", key)
            speech = await self._speech(script, speech_key, request)
            if speech.engine == CLIP_RUNG:
                render = await asyncio.to_thread(
                    self._build_in_memory, key, speech, profile, request
                )
                self._clip_renders[key] = render
                return render
            meta = await asyncio.to_thread(
                self.cache.store, "renders", key, lambda d: _build(d, speech, profile, request)
            )
            return _render_from_meta(key, self.cache.entry_dir("renders", key), meta, False)

    def _lock(self, key: str) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[key] = lock
        return lock

    def _speech_key(self, script: SpeechScript, supplied: bytes | None) -> str:
        supplied_digest = hashlib.sha256(supplied).hexdigest() if supplied is not None else None
        return cache_key(
            {"script": asdict(script), "chain": self._chain_identity, "supplied": supplied_digest}
        )

    async def _speech(self, script: SpeechScript, key: str, request: RenderRequest) -> SpeechResult:
        async with self._lock("speech:" + key):
            if key in self._clip_speech:
                return self._clip_speech[key]
            stored = await asyncio.to_thread(_load_speech, self.cache, key)
            if stored is not None:
                return stored
            await asyncio.to_thread(self.cache.discard, "speech", key)
            level = parse_level(request.speech.level).value
            speech = await self.chain.speak(script, request.hazard, level, request.supplied_audio)
            if speech.engine == CLIP_RUNG:
                self._clip_speech[key] = speech
            else:
                await asyncio.to_thread(
                    self.cache.store, "speech", key, lambda d: _save_speech(d, speech)
                )
            return speech

    def _build_in_memory(
        self, key: str, speech: SpeechResult, profile: ChannelProfile, request: RenderRequest
    ) -> Render:
        directory = self.cache.directory / "renders" / f"clip-{key}"
        directory.mkdir(parents=True, exist_ok=True)
        meta = _build(directory, speech, profile, request)
        return _render_from_meta(key, directory, meta, False)


def _build(
    directory: Path, speech: SpeechResult, profile: ChannelProfile, request: RenderRequest
) -> dict[str, Any]:
    assembled = assemble(speech, profile, request.same_header)
    files = export_all(assembled.samples, profile.formats, directory)
    return {
        "profile": profile.name,
        "files": {fmt.value: path.name for fmt, path in files.items()},
        "duration_s": len(assembled.samples) / MASTER_RATE,
        "loudness_lufs": assembled.loudness.integrated_lufs,
        "true_peak_dbtp": assembled.loudness.true_peak_dbtp,
        "engine": speech.engine,
        "fallback": speech.fallback,
        "attempts": [asdict(a) for a in speech.attempts],
        "marker": _marker_text(request),
        "segments": [asdict(s) for s in assembled.segments],
        "sha256": {fmt.value: _digest(path) for fmt, path in files.items()},
    }


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _marker_text(request: RenderRequest) -> str | None:
    return build_script(request.speech).marker


def _files_present(directory: Path, meta: dict[str, Any]) -> bool:
    files = meta.get("files")
    return isinstance(files, dict) and all((directory / str(n)).is_file() for n in files.values())


def _render_from_meta(key: str, directory: Path, meta: dict[str, Any], cached: bool) -> Render:
    try:
        return Render(
            key=key,
            profile=str(meta["profile"]),
            files={ExportFormat(f): directory / str(n) for f, n in meta["files"].items()},
            duration_s=float(meta["duration_s"]),
            loudness_lufs=float(meta["loudness_lufs"]),
            true_peak_dbtp=float(meta["true_peak_dbtp"]),
            engine=str(meta["engine"]),
            fallback=bool(meta["fallback"]),
            attempts=tuple(EngineAttempt(**a) for a in meta["attempts"]),
            marker=meta["marker"],
            segments=tuple(SegmentSpan(**s) for s in meta["segments"]),
            sha256={ExportFormat(f): str(d) for f, d in meta["sha256"].items()},
            cached=cached,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise RenderCacheError(f"render metadata in {directory} is damaged: {exc}") from exc


def _save_speech(directory: Path, speech: SpeechResult) -> dict[str, Any]:
    arrays: dict[str, Any] = {"body": speech.body}
    if speech.marker is not None:
        arrays["marker"] = speech.marker
    if speech.closing is not None:
        arrays["closing"] = speech.closing
    np.savez(directory / "speech.npz", **arrays)
    return {
        "engine": speech.engine,
        "fallback": speech.fallback,
        "attempts": [asdict(a) for a in speech.attempts],
    }


def _load_speech(cache: RenderCache, key: str) -> SpeechResult | None:
    meta = cache.read_meta("speech", key)
    if meta is None:
        return None
    try:
        with np.load(cache.entry_dir("speech", key) / "speech.npz") as arrays:
            phrases = {name: arrays[name].astype(np.float32) for name in arrays.files}
        return SpeechResult(
            engine=str(meta["engine"]),
            fallback=bool(meta["fallback"]),
            attempts=tuple(EngineAttempt(**a) for a in meta["attempts"]),
            body=phrases["body"],
            marker=phrases.get("marker"),
            closing=phrases.get("closing"),
        )
    except (OSError, KeyError, TypeError, ValueError):
        return None


async def render_warning(
    request: RenderRequest, profile: ChannelProfile, config: RendererConfig
) -> Render:
    """One-shot helper: build a ``Renderer`` for ``config`` and render ``request``."""
    return await Renderer(config).render(request, profile)
