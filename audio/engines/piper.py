"""piper, an optional local neural engine: used only when a voice model file is configured.

Runs the ``piper`` program (its command line: ``--model``, ``--output_file``) as a subprocess,
text on stdin, WAV into a temporary file. Without a model, or without the program, it reports
itself unavailable and the chain moves on.
"""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

from audio.engines.base import SpeechEngine, run_engine_process
from audio.errors import AudioFormatError, EngineFailedError, EngineUnavailableError
from audio.languages import lookup
from audio.pcm import Samples, wav_to_samples


@dataclass(frozen=True)
class PiperConfig:
    """piper settings: one ``.onnx`` voice model per language, program name, timeout."""

    models: dict[str, Path] = field(default_factory=dict)
    binary: str = "piper"
    timeout_s: float = 20.0


class PiperEngine(SpeechEngine):
    """Speak through a local piper voice model."""

    name: ClassVar[str] = "piper"

    def __init__(self, config: PiperConfig | None = None) -> None:
        self._config = config or PiperConfig()

    @property
    def timeout_s(self) -> float:
        return self._config.timeout_s

    def identity(self) -> dict[str, object]:
        models = {lang: _file_digest(path) for lang, path in sorted(self._config.models.items())}
        return {"engine": self.name, "models": models}

    def speaks(self, language: str) -> bool:
        return lookup((language,), self._config.models) is not None

    def _model(self, language: str) -> Path:
        key = lookup((language,), self._config.models)
        if key is None:
            raise EngineUnavailableError(f"{self.name}: no voice model configured for {language!r}")
        model = self._config.models[key]
        if not model.is_file():
            raise EngineUnavailableError(f"{self.name}: voice model {model} does not exist")
        return model

    async def synthesize(self, text: str, language: str) -> Samples:
        model = self._model(language)
        binary = shutil.which(self._config.binary)
        if binary is None:
            raise EngineUnavailableError(f"{self.name}: program {self._config.binary!r} not found")
        with tempfile.TemporaryDirectory(prefix="piper-") as scratch:
            output = Path(scratch) / "speech.wav"
            argv = [binary, "--model", str(model), "--output_file", str(output)]
            await run_engine_process(self.name, argv, text.encode(), expect_output=False)
            try:
                samples = await asyncio.to_thread(_read_wav, output)
            except (OSError, AudioFormatError) as exc:
                raise EngineFailedError(f"{self.name} wrote no usable WAV file") from exc
        if not np.any(samples):
            raise EngineFailedError(f"{self.name} produced only silence")
        return samples


def _file_digest(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return f"missing:{path}"


def _read_wav(path: Path) -> Samples:
    return wav_to_samples(path.read_bytes())
