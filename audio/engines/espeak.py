"""espeak-ng, the offline engine: a subprocess per phrase, text on stdin, WAV on stdout.

Mandarin uses the ``cmn-latn-pinyin`` voice: Debian's small ``cmn`` dictionary spells the
pinyin of characters it lacks, and only that voice reads such pinyin as Mandarin rather than
as English letters.
"""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from audio.engines.base import SpeechEngine, run_engine_process, voice_for
from audio.errors import AudioFormatError, EngineFailedError, EngineUnavailableError
from audio.languages import lookup
from audio.pcm import Samples, wav_to_samples


def _default_voices() -> dict[str, str]:
    # Mandarin from Simplified or Traditional characters (zh-Hant: Taiwan, Hong Kong, Macao).
    return {"zh": "cmn-latn-pinyin", "zh-Hant": "cmn-latn-pinyin", "en": "en-gb"}


@dataclass(frozen=True)
class EspeakConfig:
    """espeak-ng settings: voice per language, speed in words per minute, timeout."""

    voices: dict[str, str] = field(default_factory=_default_voices)
    words_per_minute: int = 165
    timeout_s: float = 15.0
    binary: str = "espeak-ng"


class EspeakEngine(SpeechEngine):
    """Speak through the espeak-ng command-line program."""

    name: ClassVar[str] = "espeak-ng"

    def __init__(self, config: EspeakConfig | None = None) -> None:
        self._config = config or EspeakConfig()
        self._installed_voices: frozenset[str] | None = None

    @property
    def timeout_s(self) -> float:
        return self._config.timeout_s

    def identity(self) -> dict[str, object]:
        c = self._config
        return {"engine": self.name, "voices": c.voices, "wpm": c.words_per_minute}

    def speaks(self, language: str) -> bool:
        return lookup((language,), self._config.voices) is not None

    async def synthesize(self, text: str, language: str) -> Samples:
        voice = voice_for(self._config.voices, language, self.name)
        binary = shutil.which(self._config.binary)
        if binary is None:
            raise EngineUnavailableError(f"{self._config.binary} is not installed")
        await self._check_voice(binary, voice)
        argv = [binary, "-v", voice, "-s", str(self._config.words_per_minute), "--stdin"]
        wav = await run_engine_process(self.name, [*argv, "--stdout"], text.encode())
        try:
            samples = await asyncio.to_thread(wav_to_samples, wav)
        except AudioFormatError as exc:
            raise EngineFailedError(f"{self.name} output could not be decoded") from exc
        if not np.any(samples):
            raise EngineFailedError(f"{self.name} produced only silence")
        return samples

    async def _check_voice(self, binary: str, voice: str) -> None:
        # espeak-ng silently falls back to its default voice for an unknown name, which would
        # read Chinese text with English rules; so a configured voice must exist.
        if self._installed_voices is None:
            listing = await run_engine_process(self.name, [binary, "--voices"], None)
            self._installed_voices = _voice_names(listing.decode(errors="replace"))
        if voice.lower() not in self._installed_voices:
            raise EngineUnavailableError(f"{self.name} has no voice named {voice!r}")


def _voice_names(listing: str) -> frozenset[str]:
    """Language tags and voice file names from ``espeak-ng --voices``."""
    names = set()
    for line in listing.splitlines()[1:]:
        columns = line.split()
        if len(columns) >= 5:
            names.add(columns[1].lower())
            names.add(columns[4].rsplit("/", 1)[-1].lower())
    return frozenset(names)
