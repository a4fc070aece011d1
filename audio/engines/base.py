"""The speech engine contract: one coroutine that turns text into master-rate samples.

An engine raises only ``EngineError`` subclasses: ``EngineUnavailableError`` when it cannot run
at all (not installed, no model, language unsupported), ``EngineFailedError`` when it ran and
failed. The chain enforces ``timeout_s`` from outside and reports ``EngineTimeoutError``; an
engine must therefore release its subprocesses and sockets when cancelled.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Mapping
from typing import ClassVar

from audio.errors import EngineFailedError, EngineUnavailableError
from audio.languages import lookup
from audio.pcm import Samples


class SpeechEngine(abc.ABC):
    """One text-to-speech engine; ``name`` is the rung recorded in every render."""

    name: ClassVar[str]

    @property
    @abc.abstractmethod
    def timeout_s(self) -> float:
        """Seconds the chain waits for one phrase before moving to the next engine."""

    @abc.abstractmethod
    async def synthesize(self, text: str, language: str) -> Samples:
        """Speak ``text`` in ``language`` (BCP 47) and return mono samples at the master rate."""

    @abc.abstractmethod
    def identity(self) -> dict[str, object]:
        """Every setting that changes the audio; part of the render cache key."""

    def speaks(self, language: str) -> bool:
        """Whether a voice is configured for ``language``; an engine that does not say
        speaks none."""
        return False


def voice_for(voices: Mapping[str, str], language: str, engine: str) -> str:
    """The configured voice for ``language`` (:func:`audio.languages.lookup`)."""
    key = lookup((language,), voices)
    if key is not None:
        return voices[key]
    raise EngineUnavailableError(f"{engine} has no voice configured for {language!r}")


async def run_engine_process(
    engine: str, argv: list[str], stdin: bytes | None, *, expect_output: bool = True
) -> bytes:
    """Run an engine subprocess, return its stdout; kill it if the caller is cancelled."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except FileNotFoundError as exc:
        raise EngineUnavailableError(f"{engine}: executable {argv[0]!r} not found") from exc
    try:
        out, err = await proc.communicate(stdin)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    if proc.returncode != 0:
        detail = err.decode(errors="replace").strip()
        raise EngineFailedError(f"{engine} exited with {proc.returncode}: {detail}")
    if expect_output and not out:
        raise EngineFailedError(f"{engine} produced no audio")
    return out
