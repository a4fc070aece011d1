"""Loudness: the package's normaliser, checked by ffmpeg's independent ebur128 meter."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest
from scipy import signal

from audio.errors import AudioConfigError
from audio.loudness import LoudnessTarget, integrated_loudness, normalize, true_peak_dbtp
from audio.pcm import to_pcm16

from .conftest import ebur128

RATE = 48_000


def _write(path: Path, samples: np.ndarray) -> Path:
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(RATE)
        handle.writeframes(to_pcm16(samples.astype(np.float32)))
    return path


def _speech_like(seconds: float) -> np.ndarray:
    """Noise bursts with syllable-like envelopes and pauses: a high crest factor like speech."""
    rng = np.random.default_rng(7)
    t = np.arange(int(seconds * RATE)) / RATE
    envelope = np.clip(np.sin(2 * np.pi * 3.1 * t), 0, None) ** 3
    envelope *= (np.sin(2 * np.pi * 0.25 * t) > -0.3).astype(float)
    voiced = signal.sosfilt(
        signal.butter(4, [100, 4000], "bandpass", fs=RATE, output="sos"),
        rng.standard_normal(len(t)),
    )
    return (0.3 * envelope * voiced).astype(np.float32)


def test_white_noise_peaks_are_held_under_the_ceiling(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    noise = (0.1 * rng.standard_normal(10 * RATE)).astype(np.float32)
    loud, report = normalize(noise, LoudnessTarget(-14.0, -1.0))
    measured = ebur128(_write(tmp_path / "noise.wav", loud))
    assert measured.true_peak_dbtp <= -1.0 + 0.3
    assert report.true_peak_dbtp <= -1.0


def test_meter_reads_a_full_scale_997_hz_sine_as_minus_3_lufs() -> None:
    t = np.arange(10 * RATE) / RATE
    sine = np.sin(2 * np.pi * 997 * t).astype(np.float32)
    assert integrated_loudness(sine) == pytest.approx(-3.01, abs=0.05)


@pytest.mark.parametrize(("target", "ceiling"), [(-16.0, -1.0), (-23.0, -1.0), (-18.0, -2.0)])
def test_normalised_audio_meets_target_as_ffmpeg_measures_it(
    tmp_path: Path, target: float, ceiling: float
) -> None:
    loud, report = normalize(_speech_like(20.0), LoudnessTarget(target, ceiling))
    measured = ebur128(_write(tmp_path / "out.wav", loud))
    assert measured.integrated_lufs == pytest.approx(target, abs=1.0)
    assert measured.true_peak_dbtp <= ceiling + 0.3
    assert report.integrated_lufs == pytest.approx(measured.integrated_lufs, abs=0.3)


def test_true_peak_finds_an_intersample_peak() -> None:
    n = np.arange(4800)
    # A sine at a quarter of the rate sampled 45 degrees off its peaks: samples at 0.707.
    samples = np.sin(np.pi / 2 * n + np.pi / 4).astype(np.float32)
    assert 20 * np.log10(np.max(np.abs(samples))) == pytest.approx(-3.0, abs=0.1)
    assert true_peak_dbtp(samples) == pytest.approx(0.0, abs=0.3)


def test_silence_and_bad_targets_are_refused() -> None:
    with pytest.raises(AudioConfigError, match="silence"):
        normalize(np.zeros(RATE, dtype=np.float32), LoudnessTarget(-16.0))
    with pytest.raises(AudioConfigError, match="outside"):
        LoudnessTarget(-2.0)
    with pytest.raises(AudioConfigError, match="true-peak"):
        LoudnessTarget(-16.0, 3.0)
