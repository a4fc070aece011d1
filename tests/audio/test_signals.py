"""Attention signals: the tones are where they should be in the spectrum."""

from __future__ import annotations

import numpy as np
import pytest

from audio.errors import AudioConfigError
from audio.signals import AttentionConfig, AttentionKind, attention_signal, chime, siren, two_tone

from .conftest import spectrum_peaks

RATE = 48_000


def test_two_tone_peaks_at_853_and_960_hz() -> None:
    samples = two_tone(2.0, RATE)
    assert len(samples) == 2 * RATE
    low, high = spectrum_peaks(samples, RATE, 2)
    assert abs(low - 853) < 2 and abs(high - 960) < 2
    assert np.max(np.abs(samples)) <= 10 ** (-3 / 20) + 1e-6


def test_siren_sweeps_between_600_and_1200_hz() -> None:
    samples = siren(4.0, RATE)
    frame = RATE // 10
    tops = [spectrum_peaks(samples[i : i + frame], RATE, 1)[0] for i in range(0, 4 * RATE, frame)]
    assert min(tops) < 700 and max(tops) > 1100
    assert all(550 < f < 1250 for f in tops)


def test_chime_rings_three_notes() -> None:
    samples = chime(RATE)
    step = int(0.6 * RATE)
    firsts = [
        spectrum_peaks(samples[i * step : i * step + step // 2], RATE, 1)[0] for i in range(3)
    ]
    assert [round(f / 10) * 10 for f in firsts] == [660, 520, 390]


def test_none_is_empty_and_bad_length_is_refused() -> None:
    assert len(attention_signal(AttentionConfig(AttentionKind.NONE))) == 0
    with pytest.raises(AudioConfigError, match="attention seconds"):
        AttentionConfig(AttentionKind.TWO_TONE, 30.0)
