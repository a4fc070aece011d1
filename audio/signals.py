"""Attention signals played before a spoken warning.

``two-tone``: 853 Hz + 960 Hz summed, the EAS/NOAA attention signal (47 CFR §11.31(a)(2));
``siren``: a sine sweeping up and down between 600 Hz and 1200 Hz, one cycle every 4 s;
``chime``: three struck notes (E5, C5, G4) with exponential decay. All at a fixed peak of
-3 dBFS before loudness normalisation, with 10 ms ramps so nothing clicks.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from audio.errors import AudioConfigError
from audio.pcm import MASTER_RATE, Samples

TWO_TONE_HZ = (853.0, 960.0)
SIREN_LOW_HZ = 600.0
SIREN_HIGH_HZ = 1200.0
SIREN_PERIOD_S = 4.0
CHIME_NOTES_HZ = (659.26, 523.25, 392.0)
PEAK = 10 ** (-3 / 20)
RAMP_S = 0.01


class AttentionKind(StrEnum):
    """Which attention signal to play."""

    TWO_TONE = "two-tone"
    SIREN = "siren"
    CHIME = "chime"
    NONE = "none"


@dataclass(frozen=True)
class AttentionConfig:
    """An attention signal and how long it lasts (the chime's length is fixed by its notes)."""

    kind: AttentionKind = AttentionKind.TWO_TONE
    seconds: float = 3.0

    def __post_init__(self) -> None:
        if not 0 < self.seconds <= 25:
            raise AudioConfigError(f"attention seconds must be in (0, 25], got {self.seconds}")


def attention_signal(config: AttentionConfig, rate: int = MASTER_RATE) -> Samples:
    """Render the configured attention signal."""
    if config.kind is AttentionKind.TWO_TONE:
        return two_tone(config.seconds, rate)
    if config.kind is AttentionKind.SIREN:
        return siren(config.seconds, rate)
    if config.kind is AttentionKind.CHIME:
        return chime(rate)
    return np.zeros(0, dtype=np.float32)


def _ramped(signal: np.ndarray, rate: int) -> Samples:
    ramp = min(round(RAMP_S * rate), len(signal) // 2)
    if ramp:
        shape = np.linspace(0.0, 1.0, ramp)
        signal[:ramp] *= shape
        signal[-ramp:] *= shape[::-1]
    return signal.astype(np.float32)


def two_tone(seconds: float, rate: int = MASTER_RATE) -> Samples:
    """853 Hz + 960 Hz at equal level."""
    t = np.arange(round(seconds * rate)) / rate
    signal = sum(np.sin(2 * np.pi * f * t) for f in TWO_TONE_HZ)
    return _ramped(np.asarray(signal) * (PEAK / 2), rate)


def siren(seconds: float, rate: int = MASTER_RATE) -> Samples:
    """A sine whose frequency follows a triangle between the low and high siren pitch."""
    t = np.arange(round(seconds * rate)) / rate
    position = (t % SIREN_PERIOD_S) / SIREN_PERIOD_S
    triangle = 1 - np.abs(2 * position - 1)
    freq = SIREN_LOW_HZ + (SIREN_HIGH_HZ - SIREN_LOW_HZ) * triangle
    phase = 2 * np.pi * np.cumsum(freq) / rate
    return _ramped(np.sin(phase) * PEAK, rate)


def chime(rate: int = MASTER_RATE) -> Samples:
    """Three decaying notes, 0.6 s apart, the last ringing for 1.2 s."""
    step, tail = 0.6, 1.2
    total = np.zeros(round((step * (len(CHIME_NOTES_HZ) - 1) + tail) * rate))
    for index, freq in enumerate(CHIME_NOTES_HZ):
        t = np.arange(round(tail * rate)) / rate
        note = np.sin(2 * np.pi * freq * t) + 0.3 * np.sin(4 * np.pi * freq * t)
        start = round(index * step * rate)
        total[start : start + len(t)] += note * np.exp(-3.0 * t)
    return _ramped(total / np.max(np.abs(total)) * PEAK, rate)
