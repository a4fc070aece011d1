"""Loudness measurement and normalisation to an integrated-loudness target (EBU R128).

``integrated_loudness`` follows ITU-R BS.1770-4 for mono 48 kHz: K-weighting (the standard's
48 kHz pre-filter and RLB high-pass coefficients), 400 ms blocks with 75 % overlap, absolute gate
at -70 LUFS, relative gate 10 LU below the ungated level. ``true_peak_dbtp`` oversamples four
times (Annex 2). ``normalize`` applies gain to reach the target and a look-ahead limiter that
keeps the sample peak under the ceiling, corrects the gain the limiter took away, and limits
harder when the oversampled (true) peak still exceeds the ceiling.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import ndimage, signal  # type: ignore[import-untyped]

from audio.errors import AudioConfigError
from audio.pcm import MASTER_RATE, Samples

_PRE_B = np.array([1.53512485958697, -2.69169618940638, 1.19839281085285])
_PRE_A = np.array([1.0, -1.69065929318241, 0.73248077421585])
_RLB_B = np.array([1.0, -2.0, 1.0])
_RLB_A = np.array([1.0, -1.99004745483398, 0.99007225036621])
_SOS = np.vstack([np.concatenate([_PRE_B, _PRE_A]), np.concatenate([_RLB_B, _RLB_A])])
# Single precision is enough here: against float64 the result differs by under 0.001 LU.
_SOS_F32 = _SOS.astype(np.float32)

BLOCK_S = 0.4
STEP_S = 0.1
ABSOLUTE_GATE = -70.0
RELATIVE_GATE = -10.0
SILENT = -120.0
LIMITER_WINDOW_S = 0.003
BLOCK = 1024
TRUE_PEAK_SEARCH_DB = 3.0
# The sample-peak limiter aims this far under the true-peak ceiling, leaving room for the
# inter-sample overshoot that appears when the signal is reconstructed.
INTERSAMPLE_MARGIN_DB = 0.3
NORMALIZE_TOLERANCE_LU = 0.2
NORMALIZE_MAX_PASSES = 6


@dataclass(frozen=True)
class LoudnessTarget:
    """Integrated loudness target (LUFS) and true-peak ceiling (dBTP)."""

    lufs: float
    true_peak_dbtp: float = -1.0

    def __post_init__(self) -> None:
        if not -40.0 <= self.lufs <= -5.0:
            raise AudioConfigError(f"loudness target {self.lufs} LUFS is outside [-40, -5]")
        if not -12.0 <= self.true_peak_dbtp <= 0.0:
            raise AudioConfigError(f"true-peak ceiling {self.true_peak_dbtp} is outside [-12, 0]")


@dataclass(frozen=True)
class LoudnessReport:
    """What the normaliser measured after its work."""

    integrated_lufs: float
    true_peak_dbtp: float
    gain_db: float


def integrated_loudness(samples: Samples, rate: int = MASTER_RATE) -> float:
    """Gated integrated loudness in LUFS; ``SILENT`` for silence or very short input."""
    if rate != MASTER_RATE:
        raise AudioConfigError(f"the loudness meter works at {MASTER_RATE} Hz, not {rate}")
    weighted = signal.sosfilt(_SOS_F32, samples.astype(np.float32))
    step = round(STEP_S * rate)
    hops = len(weighted) // step
    per_block = round(BLOCK_S / STEP_S)
    if hops < per_block:
        return SILENT
    # Blocks are four 100 ms hops: sum squares per hop once, then add four neighbours.
    by_hop = weighted[: hops * step].reshape(hops, step)
    hop_energy = np.einsum("ij,ij->i", by_hop, by_hop, dtype=np.float64)
    window = np.lib.stride_tricks.sliding_window_view(hop_energy, per_block)
    mean_square = window.sum(axis=1) / (per_block * step)
    with np.errstate(divide="ignore"):
        block_lufs = -0.691 + 10 * np.log10(mean_square)
    gated = mean_square[block_lufs > ABSOLUTE_GATE]
    if not len(gated):
        return SILENT
    relative = -0.691 + 10 * np.log10(np.mean(gated)) + RELATIVE_GATE
    final = mean_square[(block_lufs > ABSOLUTE_GATE) & (block_lufs > relative)]
    return float(-0.691 + 10 * np.log10(np.mean(final)))


def _blocks_over(samples: Samples, level: float, pad: int) -> tuple[Samples, npt.NDArray[np.int64]]:
    """For every block of ``BLOCK`` samples whose sample peak reaches ``level``: the block with
    ``pad`` samples either side, and the block's start index."""
    n_blocks = -(-len(samples) // BLOCK)
    padded = np.pad(samples, (pad, pad + n_blocks * BLOCK - len(samples)))
    peaks = np.abs(padded[pad : pad + n_blocks * BLOCK]).reshape(n_blocks, BLOCK).max(axis=1)
    starts = np.flatnonzero(peaks >= level).astype(np.int64) * BLOCK
    index = starts[:, None] + np.arange(BLOCK + 2 * pad)[None, :]
    return padded[index], starts


def true_peak_dbtp(samples: Samples) -> float:
    """Peak of the four-times oversampled signal, in dBTP.

    Only blocks whose sample peak is within ``TRUE_PEAK_SEARCH_DB`` of the loudest sample are
    oversampled: a reconstructed peak that far above its samples needs pathological content
    near a quarter of the sample rate.
    """
    if not np.any(samples):
        return SILENT
    sample_peak = float(np.max(np.abs(samples)))
    pad = 32
    windows, _ = _blocks_over(samples, sample_peak * 10 ** (-TRUE_PEAK_SEARCH_DB / 20), pad)
    upsampled = signal.resample_poly(windows, 4, 1, axis=1)[:, 4 * pad : -4 * pad]
    peak = max(float(np.max(np.abs(upsampled))), sample_peak)
    return float(20 * np.log10(peak))


def limit(samples: Samples, threshold: float) -> Samples:
    """A look-ahead limiter (a few milliseconds) keeping the sample peak under ``threshold``."""
    size = 2 * round(LIMITER_WINDOW_S * MASTER_RATE) + 1
    windows, starts = _blocks_over(samples, threshold, size)
    if not len(starts):
        return samples
    needed = np.minimum(1.0, threshold / np.maximum(np.abs(windows), 1e-12)).astype(np.float32)
    # The minimum over a window, then its moving average over the same window, is a smooth
    # gain curve that is never above the gain a sample needs (the average only sees minima
    # that include that sample). Blocks without a sample over the threshold keep unit gain.
    floor = ndimage.minimum_filter1d(needed, size=size, axis=1, mode="nearest")
    smooth = ndimage.uniform_filter1d(floor, size=size, axis=1, mode="nearest")
    gain = np.ones(-(-len(samples) // BLOCK) * BLOCK, dtype=np.float32)
    gain[starts[:, None] + np.arange(BLOCK)[None, :]] = smooth[:, size : size + BLOCK]
    return (samples * gain[: len(samples)]).astype(np.float32)


def _gain_passes(
    samples: Samples, target: float, gain_db: float, threshold: float
) -> tuple[Samples, float, float]:
    previous: tuple[float, float] | None = None
    out, achieved = samples, SILENT
    for _ in range(NORMALIZE_MAX_PASSES):
        out = limit((samples * 10 ** (gain_db / 20)).astype(np.float32), threshold)
        achieved = integrated_loudness(out)
        if abs(target - achieved) < NORMALIZE_TOLERANCE_LU:
            break
        # Limiting makes loudness grow slower than gain; the slope between the last two passes
        # says by how much (a secant step), bounded so a flat stretch cannot blow the gain up.
        slope = 1.0
        if previous is not None and gain_db != previous[0]:
            slope = float(np.clip((achieved - previous[1]) / (gain_db - previous[0]), 0.2, 1.0))
        previous = (gain_db, achieved)
        gain_db += (target - achieved) / slope
    return out, achieved, gain_db


def normalize(samples: Samples, target: LoudnessTarget) -> tuple[Samples, LoudnessReport]:
    """Bring ``samples`` to ``target``: gain and limiting until the loudness is within
    ``NORMALIZE_TOLERANCE_LU``; if the true peak still exceeds the ceiling, limit harder."""
    measured = integrated_loudness(samples)
    if measured <= SILENT:
        raise AudioConfigError("cannot normalise silence")
    threshold_db = target.true_peak_dbtp - INTERSAMPLE_MARGIN_DB
    gain_db = target.lufs - measured
    for _ in range(3):
        out, achieved, gain_db = _gain_passes(
            samples, target.lufs, gain_db, 10 ** (threshold_db / 20)
        )
        peak = true_peak_dbtp(out)
        if peak <= target.true_peak_dbtp:
            return out, LoudnessReport(achieved, peak, gain_db)
        threshold_db -= peak - target.true_peak_dbtp
    trim_db = target.true_peak_dbtp - peak
    out = (out * 10 ** (trim_db / 20)).astype(np.float32)
    return out, LoudnessReport(achieved + trim_db, peak + trim_db, gain_db + trim_db)
