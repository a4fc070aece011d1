"""The loudness shortcuts against the exact computation, on speech and on hostile signals:
loudness after gain and limiter found from the changed blocks only, the true peak searched
near the loudest samples only, a message's loudness from each distinct part weighted once."""

from __future__ import annotations

import asyncio
import functools

import numpy as np
import pytest
from scipy import signal

from audio.engines import EspeakEngine
from audio.loudness import (
    LoudnessTarget,
    _Levelling,
    integrated_loudness,
    laid_out_loudness,
    limit,
    normalize,
    true_peak_dbtp,
)
from audio.pcm import Samples

RATE = 48_000
SECONDS = 6


def _speech() -> Samples:
    """Syllable-like noise bursts, the crest factor of speech (as in test_loudness)."""
    rng = np.random.default_rng(7)
    t = np.arange(SECONDS * RATE) / RATE
    envelope = np.clip(np.sin(2 * np.pi * 3.1 * t), 0, None) ** 3
    voiced = signal.sosfilt(
        signal.butter(4, [100, 4000], "bandpass", fs=RATE, output="sos"),
        rng.standard_normal(len(t)),
    )
    return (0.3 * envelope * voiced).astype(np.float32)


def _hostile() -> dict[str, Samples]:
    n = np.arange(SECONDS * RATE)
    click = np.zeros(SECONDS * RATE, dtype=np.float32)
    click[123_457] = 0.9
    return {
        "clipping square": (np.sign(np.sin(2 * np.pi * 441 * n / RATE)) * 0.99).astype(np.float32),
        "near-Nyquist tone": (0.5 * np.sin(np.pi * 0.999 * n + 0.3)).astype(np.float32),
        "quarter-rate tone off its peaks": (0.5 * np.sin(np.pi / 2 * n + np.pi / 4)).astype(
            np.float32
        ),
        "silence with one click": click,
        "loud bursts in quiet noise": _bursts(),
    }


def _bursts() -> Samples:
    rng = np.random.default_rng(11)
    out = 0.001 * rng.standard_normal(SECONDS * RATE)
    for start in range(RATE // 2, SECONDS * RATE - RATE, RATE):
        out[start : start + 2000] = 0.95 * np.sign(rng.standard_normal(2000))
    return out.astype(np.float32)


SIGNALS = {"speech": _speech(), **_hostile()}
ESPEAK = "espeak-ng speech"
WARNING = "乌兰察布市气象台发布暴雪橙色预警：预计未来12小时内降雪量将达10毫米以上，请减少外出。"


@functools.cache
def _signal(name: str) -> Samples:
    if name == ESPEAK:
        return asyncio.run(EspeakEngine().synthesize(WARNING, "zh-CN"))
    return SIGNALS[name]


@pytest.mark.parametrize("name", [ESPEAK, *SIGNALS])
def test_loudness_from_changed_blocks_matches_measuring_again(name: str) -> None:
    samples = _signal(name)
    levelling = _Levelling(samples)
    for gain_db in (-12.0, 0.0, 6.0, 14.0):
        for threshold in (0.2, 0.68):
            gain = 10 ** (gain_db / 20)
            found, touched, smooth = levelling.loudness(gain, threshold)
            exact_out = limit((samples * gain).astype(np.float32), threshold)
            assert found == pytest.approx(integrated_loudness(exact_out), abs=0.01)
            assert np.array_equal(levelling.output(gain, touched, smooth), exact_out)


@pytest.mark.parametrize("name", [ESPEAK, *SIGNALS])
def test_true_peak_search_matches_oversampling_everything(name: str) -> None:
    samples = _signal(name)
    everything = signal.resample_poly(samples.astype(np.float64), 4, 1)
    exact = 20 * np.log10(max(np.max(np.abs(everything)), np.max(np.abs(samples))))
    assert true_peak_dbtp(samples) == pytest.approx(exact, abs=0.01)


@pytest.mark.parametrize("name", [ESPEAK, "speech", "clipping square", "near-Nyquist tone"])
def test_normalised_output_meets_target_and_ceiling_measured_whole(name: str) -> None:
    target = LoudnessTarget(-16.0, -3.0)
    out, report = normalize(_signal(name), target)
    assert integrated_loudness(out) == pytest.approx(report.integrated_lufs, abs=0.01)
    assert abs(integrated_loudness(out) - target.lufs) < 0.2
    everything = signal.resample_poly(out.astype(np.float64), 4, 1)
    assert 20 * np.log10(np.max(np.abs(everything))) <= target.true_peak_dbtp


def test_laid_out_loudness_matches_measuring_the_whole_message() -> None:
    speech, square = _signal(ESPEAK), SIGNALS["clipping square"][: RATE // 3]
    pause = np.zeros(RATE // 2, dtype=np.float32)
    layouts = [
        [square, pause, speech, pause, speech, pause, square],
        # Parts back to back: one part's ringing runs into the next.
        [speech, speech, SIGNALS["near-Nyquist tone"], SIGNALS["silence with one click"]],
        [pause, SIGNALS["loud bursts in quiet noise"][:1000], pause],
        [pause, pause],
    ]
    for parts in layouts:
        whole = integrated_loudness(np.concatenate(parts))
        assert laid_out_loudness(parts) == pytest.approx(whole, abs=0.001)


@pytest.mark.parametrize("name", [ESPEAK, "speech"])
def test_estimate_that_steers_the_gain_is_near_the_measured_loudness(name: str) -> None:
    samples = _signal(name)
    levelling = _Levelling(samples)
    for gain_db in (-6.0, 0.0, 3.0, 6.0):
        gain = 10 ** ((gain_db - 20 * np.log10(np.max(np.abs(samples)))) / 20)
        found = levelling.loudness(gain, 0.68)[0]
        assert levelling.estimate(gain, 0.68) == pytest.approx(found, abs=0.1)
