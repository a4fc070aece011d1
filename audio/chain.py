"""The speech fallback chain: supplied audio, engines in a configured order, the clip library.

Audio that came with the warning (CAP ``<resource>``) is the first rung: when it decodes, it is
the body and the engines speak only the marker and the closing phrase.

Each engine gets the whole script (marker, body, closing) within its own timeout; the first
engine that speaks every phrase wins. Every attempt is recorded (engine, outcome, elapsed time,
reason), so a render says which rung produced its speech and why the rungs above it failed.
When every engine fails the stored clips for the hazard and level are used, with the stored
test/exercise marker for non-Actual messages. The chain never returns silence: if no clip can
speak the warning (or its marker) either, it raises ``NoSpeechError``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from audio.clips import ClipLibrary
from audio.engines.base import SpeechEngine
from audio.errors import (
    AudioToolError,
    ClipLibraryError,
    EngineError,
    EngineUnavailableError,
    NoSpeechError,
)
from audio.loudness import integrated_loudness
from audio.pcm import Samples, decode_async, silence
from audio.speechtext import SpeechScript

CLIP_RUNG = "clip"
SUPPLIED_RUNG = "supplied"
# Quieter than this, supplied audio is taken for silence rather than amplified into noise.
SUPPLIED_MIN_LUFS = -50.0
SUPPLIED_MAX_S = 600.0
"""Supplied audio is at most this long (decoded no further: a small file may hold hours)."""
#: Between the phrases of a warning assembled from clips.
PHRASE_PAUSE_S = 0.3


@dataclass(frozen=True)
class EngineAttempt:
    """One rung tried: ``outcome`` is ok, unavailable, failed or timeout."""

    engine: str
    outcome: str
    elapsed_s: float
    detail: str = ""


@dataclass(frozen=True)
class SpeechResult:
    """The spoken phrases of one script and the rung that produced them."""

    engine: str
    fallback: bool
    attempts: tuple[EngineAttempt, ...]
    body: Samples
    marker: Samples | None
    closing: Samples | None


class SpeechChain:
    """Try ``engines`` in order, then ``clips``; record every attempt."""

    def __init__(self, engines: Sequence[SpeechEngine], clips: ClipLibrary | None) -> None:
        self.engines = tuple(engines)
        self.clips = clips

    def identity(self) -> dict[str, object]:
        """The chain's settings for the cache key: engines in order and the clip library."""
        return {
            "engines": [e.identity() for e in self.engines],
            "clips": self.clips.identity() if self.clips else None,
        }

    def has_voice(self, language: str) -> bool:
        """Whether an engine of the chain has a voice for ``language`` (the clips, which say
        only fixed phrases, do not count: they cannot speak an officer's text)."""
        return any(engine.speaks(language) for engine in self.engines)

    async def speak(
        self,
        script: SpeechScript,
        hazard: str,
        level: str,
        supplied: bytes | None = None,
        places: tuple[str, ...] = (),
    ) -> SpeechResult:
        """Speak ``script``; fall back to stored clips for ``hazard`` and ``level`` (a warning
        clip, else one assembled from phrase clips naming ``places``).

        ``supplied`` is audio that came with the warning (CAP ``<resource>``): when it decodes
        to sound it is the body, and the engines only speak the marker and closing phrase.
        """
        attempts: list[EngineAttempt] = []
        body = await _decode_supplied(supplied, attempts) if supplied is not None else None
        for engine in self.engines:
            started = time.monotonic()
            try:
                phrases = await asyncio.wait_for(
                    _speak_all(engine, script, with_body=body is None), timeout=engine.timeout_s
                )
            except TimeoutError:
                detail = f"no audio within {engine.timeout_s:g} s"
                attempts.append(_attempt(engine.name, "timeout", started, detail))
                continue
            except EngineUnavailableError as exc:
                attempts.append(_attempt(engine.name, "unavailable", started, str(exc)))
                continue
            except EngineError as exc:
                attempts.append(_attempt(engine.name, "failed", started, str(exc)))
                continue
            attempts.append(_attempt(engine.name, "ok", started))
            marker, spoken, closing = phrases
            return _result(engine.name, attempts, body, spoken, marker, closing)
        return await self._speak_from_clips(script, (hazard, level, places), attempts, body)

    async def _speak_from_clips(
        self,
        script: SpeechScript,
        warning: tuple[str, str, tuple[str, ...]],
        attempts: list[EngineAttempt],
        body: Samples | None,
    ) -> SpeechResult:
        started = time.monotonic()
        if self.clips is None:
            attempts.append(_attempt(CLIP_RUNG, "unavailable", started, "no clip library"))
            raise NoSpeechError(_summary(attempts))
        try:
            marker, stored, closing = await asyncio.to_thread(
                _load_clips, self.clips, script, warning, body is None
            )
        except ClipLibraryError as exc:
            attempts.append(_attempt(CLIP_RUNG, "failed", started, str(exc)))
            raise NoSpeechError(_summary(attempts)) from exc
        attempts.append(_attempt(CLIP_RUNG, "ok", started))
        return _result(CLIP_RUNG, attempts, body, stored, marker, closing)


def _result(
    rung: str,
    attempts: list[EngineAttempt],
    supplied: Samples | None,
    spoken: Samples | None,
    marker: Samples | None,
    closing: Samples | None,
) -> SpeechResult:
    body = supplied if supplied is not None else spoken
    if body is None:
        raise NoSpeechError(_summary(attempts))
    return SpeechResult(
        engine=SUPPLIED_RUNG if supplied is not None else rung,
        fallback=any(a.outcome != "ok" for a in attempts) or rung == CLIP_RUNG,
        attempts=tuple(attempts),
        body=body,
        marker=marker,
        closing=closing,
    )


async def _decode_supplied(supplied: bytes, attempts: list[EngineAttempt]) -> Samples | None:
    started = time.monotonic()
    try:
        body = await decode_async(supplied, max_seconds=SUPPLIED_MAX_S)
    except AudioToolError as exc:
        attempts.append(_attempt(SUPPLIED_RUNG, "failed", started, str(exc).strip()))
        return None
    if integrated_loudness(body) < SUPPLIED_MIN_LUFS:
        detail = f"supplied audio is quieter than {SUPPLIED_MIN_LUFS:g} LUFS"
        attempts.append(_attempt(SUPPLIED_RUNG, "failed", started, detail))
        return None
    attempts.append(_attempt(SUPPLIED_RUNG, "ok", started))
    return body


async def _speak_all(
    engine: SpeechEngine, script: SpeechScript, with_body: bool
) -> tuple[Samples | None, Samples | None, Samples | None]:
    texts = (script.marker, script.body if with_body else None, script.closing)
    tasks = {
        index: asyncio.ensure_future(engine.synthesize(text, script.language))
        for index, text in enumerate(texts)
        if text
    }
    try:
        if tasks:
            await asyncio.wait(tasks.values(), return_when=asyncio.FIRST_EXCEPTION)
    finally:
        # One failed phrase fails the engine: stop its siblings (and their subprocesses) now,
        # also when the chain's timeout cancels this coroutine.
        for task in tasks.values():
            task.cancel()
        await asyncio.gather(*tasks.values(), return_exceptions=True)
    for task in tasks.values():
        error = None if task.cancelled() else task.exception()
        if error is not None:
            raise error
    marker, body, closing = (tasks[i].result() if i in tasks else None for i in range(3))
    return marker, body, closing


def _load_clips(
    clips: ClipLibrary,
    script: SpeechScript,
    warning: tuple[str, str, tuple[str, ...]],
    with_body: bool,
) -> tuple[Samples | None, Samples | None, Samples | None]:
    body = _warning_from_clips(clips, script.language, *warning) if with_body else None
    marker = None
    if script.marker_kind is not None:
        marker = clips.load(clips.find_phrase(f"marker-{script.marker_kind}", script.language))
    try:
        closing: Samples | None = clips.load(clips.find_phrase("closing", script.language))
    except ClipLibraryError:
        closing = None
    return marker, body, closing


def _warning_from_clips(
    clips: ClipLibrary, language: str, hazard: str, level: str, places: tuple[str, ...]
) -> Samples:
    """The stored warning clip, else the warning assembled from phrase clips with short pauses;
    raises ClipLibraryError naming what neither has."""
    try:
        return clips.load(clips.find_warning(hazard, level, language))
    except ClipLibraryError as whole:
        try:
            phrases = [
                clips.load(e) for e in clips.assembled_warning(hazard, level, language, places)
            ]
        except ClipLibraryError as parts:
            raise ClipLibraryError(f"{whole}; {parts}") from parts
    pause = silence(PHRASE_PAUSE_S)
    return np.concatenate([p for phrase in phrases for p in (phrase, pause)][:-1])


def _attempt(engine: str, outcome: str, started: float, detail: str = "") -> EngineAttempt:
    return EngineAttempt(engine, outcome, round(time.monotonic() - started, 4), detail)


def _summary(attempts: list[EngineAttempt]) -> str:
    tried = "; ".join(f"{a.engine}: {a.outcome} {a.detail}".strip() for a in attempts)
    return f"no engine or clip could speak the warning ({tried})"
