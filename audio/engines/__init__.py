"""Speech engines behind one interface: online neural (edge-tts), offline (espeak-ng, piper)."""

from audio.engines.base import SpeechEngine, voice_for
from audio.engines.edge import EdgeTtsConfig, EdgeTtsEngine
from audio.engines.espeak import EspeakConfig, EspeakEngine
from audio.engines.piper import PiperConfig, PiperEngine

__all__ = [
    "EdgeTtsConfig",
    "EdgeTtsEngine",
    "EspeakConfig",
    "EspeakEngine",
    "PiperConfig",
    "PiperEngine",
    "SpeechEngine",
    "voice_for",
]
