"""The speech fallback chain: engines in a configured order, then the clip library.

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

from audio.clips import ClipLibrary
from audio.engines.base import SpeechEngine
from audio.errors import (
    ClipLibraryError,
    EngineError,
    EngineUnavailableError,
    NoSpeechError,
)
from audio.pcm import Samples
from audio.speechtext import SpeechScript

CLIP_RUNG = "clip"


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

    async def speak(self, script: SpeechScript, hazard: str, level: str) -> SpeechResult:
        """Speak ``script``; fall back to stored clips for ``hazard`` and ``level``."""
        attempts: list[EngineAttempt] = []
        for engine in self.engines:
            started = time.monotonic()
            try:
                phrases = await asyncio.wait_for(
                    _speak_all(engine, script), timeout=engine.timeout_s
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
            marker, body, closing = phrases
            return SpeechResult(
                engine=engine.name,
                fallback=len(attempts) > 1,
                attempts=tuple(attempts),
                body=body,
                marker=marker,
                closing=closing,
            )
        return await self._speak_from_clips(script, hazard, level, attempts)

    async def _speak_from_clips(
        self, script: SpeechScript, hazard: str, level: str, attempts: list[EngineAttempt]
    ) -> SpeechResult:
        started = time.monotonic()
        if self.clips is None:
            attempts.append(_attempt(CLIP_RUNG, "unavailable", started, "no clip library"))
            raise NoSpeechError(_summary(attempts))
        try:
            marker, body, closing = await asyncio.to_thread(
                _load_clips, self.clips, script, hazard, level
            )
        except ClipLibraryError as exc:
            attempts.append(_attempt(CLIP_RUNG, "failed", started, str(exc)))
            raise NoSpeechError(_summary(attempts)) from exc
        attempts.append(_attempt(CLIP_RUNG, "ok", started))
        return SpeechResult(
            engine=CLIP_RUNG,
            fallback=True,
            attempts=tuple(attempts),
            body=body,
            marker=marker,
            closing=closing,
        )


async def _speak_all(
    engine: SpeechEngine, script: SpeechScript
) -> tuple[Samples | None, Samples, Samples | None]:
    texts = (script.marker, script.body, script.closing)
    tasks = {
        index: asyncio.ensure_future(engine.synthesize(text, script.language))
        for index, text in enumerate(texts)
        if text
    }
    try:
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
    marker = tasks[0].result() if 0 in tasks else None
    closing = tasks[2].result() if 2 in tasks else None
    return marker, tasks[1].result(), closing


def _load_clips(
    clips: ClipLibrary, script: SpeechScript, hazard: str, level: str
) -> tuple[Samples | None, Samples, Samples | None]:
    body = clips.load(clips.find_warning(hazard, level, script.language))
    marker = None
    if script.marker_kind is not None:
        marker = clips.load(clips.find_phrase(f"marker-{script.marker_kind}", script.language))
    try:
        closing: Samples | None = clips.load(clips.find_phrase("closing", script.language))
    except ClipLibraryError:
        closing = None
    return marker, body, closing


def _attempt(engine: str, outcome: str, started: float, detail: str = "") -> EngineAttempt:
    return EngineAttempt(engine, outcome, round(time.monotonic() - started, 4), detail)


def _summary(attempts: list[EngineAttempt]) -> str:
    tried = "; ".join(f"{a.engine}: {a.outcome} {a.detail}".strip() for a in attempts)
    return f"no engine or clip could speak the warning ({tried})"
