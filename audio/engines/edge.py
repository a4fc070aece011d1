"""edge-tts, the online neural engine (for example ``zh-CN-XiaoxiaoNeural``).

The service is unofficial and breaks several times a year, so this engine is never the only
rung. Its settings include an HTTP proxy and a connect timeout so that, when the service or the
proxy is unreachable, it fails within a second or two and the chain moves on. The MP3 stream it
returns is decoded with ffmpeg to master-rate samples.

Two replies that edge_tts does not report as errors fail the engine here: a malformed service
message (the library's parser raises ``ValueError``/``KeyError`` on it), and a connection that
closes before the service's ``turn.end``, which edge_tts ends like a finished turn, with the
speech cut short. edge_tts (7.x) counts a turn's audio bytes as complete only when its
``turn.end`` arrives, so every byte received must be counted there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import aiohttp
import edge_tts
import numpy as np

from audio.engines.base import SpeechEngine, voice_for
from audio.errors import AudioToolError, EngineFailedError
from audio.languages import lookup
from audio.pcm import Samples, decode_async


def _default_voices() -> dict[str, str]:
    return {
        "zh": "zh-CN-XiaoxiaoNeural",
        "zh-Hant": "zh-TW-HsiaoChenNeural",
        "en": "en-GB-SoniaNeural",
    }


@dataclass(frozen=True)
class EdgeTtsConfig:
    """edge-tts settings: voices, optional HTTP proxy URL, timeouts, speaking rate."""

    voices: dict[str, str] = field(default_factory=_default_voices)
    proxy: str | None = None
    connect_timeout_s: int = 3
    timeout_s: float = 10.0
    rate: str = "+0%"


class EdgeTtsEngine(SpeechEngine):
    """Speak through the edge-tts online service."""

    name: ClassVar[str] = "edge-tts"

    def __init__(self, config: EdgeTtsConfig | None = None) -> None:
        self._config = config or EdgeTtsConfig()

    @property
    def timeout_s(self) -> float:
        return self._config.timeout_s

    def identity(self) -> dict[str, object]:
        return {"engine": self.name, "voices": self._config.voices, "rate": self._config.rate}

    def speaks(self, language: str) -> bool:
        return lookup((language,), self._config.voices) is not None

    async def synthesize(self, text: str, language: str) -> Samples:
        voice = voice_for(self._config.voices, language, self.name)
        communicate = edge_tts.Communicate(
            text,
            voice,
            rate=self._config.rate,
            proxy=self._config.proxy,
            connect_timeout=self._config.connect_timeout_s,
            receive_timeout=max(1, round(self._config.timeout_s)),
        )
        mp3 = bytearray()
        try:
            async for chunk in communicate.stream():
                if chunk["type"] == "audio" and "data" in chunk:
                    mp3.extend(chunk["data"])
        except (aiohttp.ClientError, OSError, edge_tts.exceptions.EdgeTTSException) as exc:
            raise EngineFailedError(f"{self.name}: {type(exc).__name__}: {exc}") from exc
        except TimeoutError as exc:
            raise EngineFailedError(f"{self.name}: the service did not answer in time") from exc
        except (ValueError, KeyError) as exc:
            detail = f"{type(exc).__name__}: {exc}"
            raise EngineFailedError(f"{self.name}: malformed service message ({detail})") from exc
        # Absent in edge_tts releases before 7.x (pyproject asks for 7 or later).
        completed = communicate.state.get("cumulative_audio_bytes")
        if completed is not None and completed != len(mp3):
            raise EngineFailedError(
                f"{self.name}: the connection closed before the end of the speech"
                f" ({completed} of {len(mp3)} audio bytes were in finished turns)"
            )
        try:
            samples = await decode_async(bytes(mp3))
        except AudioToolError as exc:
            raise EngineFailedError(f"{self.name} returned audio that cannot be decoded") from exc
        if not np.any(samples):
            raise EngineFailedError(f"{self.name} returned only silence")
        return samples
