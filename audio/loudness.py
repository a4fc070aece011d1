"""Loudness measurement and normalisation to an integrated-loudness target (EBU R128).

``integrated_loudness`` follows ITU-R BS.1770-4 for mono 48 kHz: K-weighting (the standard's
48 kHz pre-filter and RLB high-pass coefficients), 400 ms blocks with 75 % overlap, absolute gate
at -70 LUFS, relative gate 10 LU below the ungated level. ``true_peak_dbtp`` oversamples four
times (Annex 2). ``normalize`` applies gain to reach the target and a look-ahead limiter that
keeps the sample peak under the ceiling, corrects the gain the limiter took away, and limits
harder when the oversampled (true) peak still exceeds the ceiling. It K-weights its input once
and, for each gain it tries, weights again only what the limiter changed (``_Levelling``);
``laid_out_loudness`` measures a message from its distinct parts, each weighted once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
HOP = round(STEP_S * MASTER_RATE)
ABSOLUTE_GATE = -70.0
RELATIVE_GATE = -10.0
SILENT = -120.0
LIMITER_WINDOW_S = 0.003
BLOCK = 1024
LIMITER_SIZE = 2 * round(LIMITER_WINDOW_S * MASTER_RATE) + 1
LIMITER_TAIL_BLOCKS = 1
TRUE_PEAK_SEARCH_DB = 3.0
TRUE_PEAK_STRETCH = 64
TRUE_PEAK_REACH = 16
# The sample-peak limiter aims this far under the true-peak ceiling, leaving room for the
# inter-sample overshoot that appears when the signal is reconstructed.
INTERSAMPLE_MARGIN_DB = 0.3
NORMALIZE_TOLERANCE_LU = 0.2
NORMALIZE_MAX_PASSES = 6
# The four-times interpolator of ``signal.resample_poly(x, 4, 1)`` (Kaiser-windowed, 81 taps):
# each of its three phases between two samples as a correlation over the input. The fourth
# phase gives the samples themselves, taken as they are (it scales them by 1.0006: ripple).
_INTERPOLATOR = signal.firwin(81, 1 / 4, window=("kaiser", 5.0)) * 4
_BETWEEN_SAMPLES = [_INTERPOLATOR[phase::4][::-1].copy() for phase in (1, 2, 3)]


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


def _squares(rows: Samples) -> npt.NDArray[np.float64]:
    """Sum of squares of each row, summed in single precision (a relative error of about 1e-6,
    1e-5 dB) at a third of the cost of summing in double."""
    return np.einsum("ij,ij->i", rows, rows).astype(np.float64)  # type: ignore[no-any-return]


def _hop_energy(weighted: Samples, step: int) -> npt.NDArray[np.float64]:
    """Sum of squares of the K-weighted signal per 100 ms hop (a block is four hops)."""
    hops = len(weighted) // step
    by_hop = weighted[: hops * step].reshape(hops, step)
    energy: npt.NDArray[np.float64] = _squares(by_hop)
    return energy


def _gated_loudness(hop_energy: npt.NDArray[np.float64], step: int) -> float:
    per_block = round(BLOCK_S / STEP_S)
    if len(hop_energy) < per_block:
        return SILENT
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


def k_weighted(samples: Samples) -> Samples:
    """The K-weighted signal (single precision) the meter sums per hop."""
    return signal.sosfilt(_SOS_F32, samples.astype(np.float32, copy=False))  # type: ignore[no-any-return]


def integrated_loudness(samples: Samples, rate: int = MASTER_RATE) -> float:
    """Gated integrated loudness in LUFS; ``SILENT`` for silence or very short input."""
    if rate != MASTER_RATE:
        raise AudioConfigError(f"the loudness meter works at {MASTER_RATE} Hz, not {rate}")
    return _gated_loudness(_hop_energy(k_weighted(samples), HOP), HOP)


def ringing(part: Samples) -> Samples:
    """The K-weighted ``part`` and one hop after it, where its weighting rings on (by then
    less than 1e-19 of the filter's impulse energy is left): what ``laid_out_loudness``
    adds at the part's place."""
    return k_weighted(np.concatenate([part, np.zeros(HOP, dtype=np.float32)]))


def laid_out_loudness(
    parts: Sequence[Samples], known: Mapping[int, Samples] | None = None
) -> float:
    """Integrated loudness of ``np.concatenate(parts)``, K-weighting each distinct part once;
    ``known`` holds the ``ringing`` of parts weighted before, by the part's ``id``.

    A message repeats its parts (the body, the marker) and is mostly silence between them.
    The weighting is linear and starts from rest, so the weighted message is the sum of each
    part's ``ringing`` laid at its place; silent parts add nothing. Equal to measuring the
    whole message, to float rounding.
    """
    length = sum(len(part) for part in parts)
    weighted = np.zeros(length + HOP, dtype=np.float32)
    done = dict(known or {})
    at = 0
    for part in parts:
        if len(part) and (id(part) in done or np.any(part)):
            if id(part) not in done:
                done[id(part)] = ringing(part)
            weighted[at : at + len(part) + HOP] += done[id(part)]
        at += len(part)
    return _gated_loudness(_hop_energy(weighted[:length], HOP), HOP)


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

    Only stretches of ``TRUE_PEAK_STRETCH`` samples whose sample peak is within
    ``TRUE_PEAK_SEARCH_DB`` of the loudest sample are oversampled, with ``TRUE_PEAK_REACH``
    samples either side: a reconstructed peak that far above every sample near it needs
    pathological content near a quarter of the sample rate.
    """
    if not np.any(samples):
        return SILENT
    sample_peak = float(np.max(np.abs(samples)))
    level = sample_peak * 10 ** (-TRUE_PEAK_SEARCH_DB / 20)
    stretch, reach = TRUE_PEAK_STRETCH, TRUE_PEAK_REACH
    # The interpolator reaches 10 samples either side: each run of loud stretches is cut out
    # with that much more, and the runs are oversampled as one signal; a run's edges read its
    # neighbour, which only touches samples outside what is kept.
    pad = reach + 16
    n = -(-len(samples) // stretch)
    padded = np.zeros(n * stretch + 2 * pad, dtype=np.float32)
    padded[pad : pad + len(samples)] = samples
    core = padded[pad : pad + n * stretch].reshape(n, stretch)
    loud = np.maximum(core.max(axis=1), -core.min(axis=1)) >= level
    edges = np.diff(np.concatenate([[False], loud, [False]]).astype(np.int8))
    runs = list(
        zip(
            (np.flatnonzero(edges == 1) * stretch).tolist(),
            (np.flatnonzero(edges == -1) * stretch).tolist(),
            strict=True,
        )
    )
    joined = np.concatenate([padded[a : b + 2 * pad] for a, b in runs])
    keep = np.zeros(len(joined), dtype=bool)
    at = 0
    for a, b in runs:
        keep[at + pad - reach : at + pad + b - a + reach] = True
        at += b - a + 2 * pad
    peak = sample_peak
    for taps in _BETWEEN_SAMPLES:
        between = ndimage.correlate1d(joined, taps, mode="constant", origin=-1)[keep]
        peak = max(peak, float(np.max(np.abs(between))))
    return float(20 * np.log10(peak))


def _smooth_gain(windows: Samples, threshold: float, size: int) -> Samples:
    """The limiter's gain for the ``BLOCK`` samples in the middle of each padded window."""
    # threshold / max(|x|, threshold): 1 under the threshold, what brings a sample to it above.
    needed = np.abs(windows)
    np.maximum(needed, np.float32(threshold), out=needed)
    np.divide(np.float32(threshold), needed, out=needed)
    # The minimum over a window, then its moving average over the same window, is a smooth
    # gain curve that is never above the gain a sample needs (the average only sees minima
    # that include that sample). Blocks without a sample over the threshold keep unit gain.
    floor = ndimage.minimum_filter1d(needed, size=size, axis=1, mode="nearest")
    smooth = ndimage.uniform_filter1d(floor, size=size, axis=1, mode="nearest")
    return smooth[:, size : size + BLOCK]  # type: ignore[no-any-return]


def limit(samples: Samples, threshold: float) -> Samples:
    """A look-ahead limiter (a few milliseconds) keeping the sample peak under ``threshold``."""
    windows, starts = _blocks_over(samples, threshold, LIMITER_SIZE)
    if not len(starts):
        return samples
    gain = np.ones(-(-len(samples) // BLOCK) * BLOCK, dtype=np.float32)
    gain[starts[:, None] + np.arange(BLOCK)[None, :]] = _smooth_gain(
        windows, threshold, LIMITER_SIZE
    )
    return (samples * gain[: len(samples)]).astype(np.float32)


class _Levelling:
    """A signal measured once, so that its loudness after a gain and the limiter is found
    from the blocks the limiter changes only.

    K-weighting is linear: the weighted signal of ``gain * x`` is ``gain`` times that of
    ``x``, and what the limiter takes away (non-zero only in the blocks it touches) is
    weighted on its own and added. The filter carries a change on after it: the change is
    weighted over its blocks and ``LIMITER_TAIL_BLOCKS`` blocks after them, beyond which
    less than 5e-7 of the impulse response's energy is left. What is left out is under 7e-4
    of the weighted change in amplitude, so a hop's energy moves by under 0.0015 times the
    change's amplitude relative to the signal's: far less than the normaliser's tolerance
    (``tests/audio/test_levelling.py`` holds it to 0.01 LU against measuring again).
    """

    def __init__(self, samples: Samples) -> None:
        self.samples = samples.astype(np.float32, copy=False)
        self.n_blocks = -(-len(samples) // BLOCK)
        pad = LIMITER_SIZE
        self.padded = np.zeros(self.n_blocks * BLOCK + 2 * pad, dtype=np.float32)
        self.padded[pad : pad + len(samples)] = samples
        core = self.padded[pad : pad + self.n_blocks * BLOCK].reshape(self.n_blocks, BLOCK)
        self.peaks = np.maximum(core.max(axis=1), -core.min(axis=1))
        self.windows = np.lib.stride_tricks.sliding_window_view(self.padded, BLOCK + 2 * pad)[
            ::BLOCK
        ]
        weighted = k_weighted(samples)
        self.hop_energy = _hop_energy(weighted, HOP)
        self.hops = len(self.hop_energy)
        self.by_hop = weighted[: self.hops * HOP].reshape(self.hops, HOP)
        self.measured = _gated_loudness(self.hop_energy, HOP)
        self.sample_peak = float(self.peaks.max(initial=0.0))
        # Each hop's weighted energy over its plain energy: how ``estimate`` weights a change.
        plain = _hop_energy(samples, HOP)
        self.weighting = self.hop_energy / np.maximum(plain, np.finfo(np.float64).tiny)

    def _limited(
        self, gain: float, threshold: float
    ) -> tuple[npt.NDArray[np.int64], Samples, Samples]:
        """The blocks the limiter touches at ``gain``, their samples scaled, and its gain."""
        touched = np.flatnonzero(self.peaks * gain >= threshold).astype(np.int64)
        windows = (self.windows[touched] * gain).astype(np.float32)
        smooth = _smooth_gain(windows, threshold, LIMITER_SIZE)
        return touched, windows[:, LIMITER_SIZE : LIMITER_SIZE + BLOCK], smooth

    def estimate(self, gain: float, threshold: float) -> float:
        """About what ``loudness`` finds (0.03 LU off on speech) for half its work: the energy
        the limiter takes from each touched block, weighted as its hop's signal is. It only
        steers the gain: what the normaliser reports and keeps is measured by ``loudness``."""
        touched, scaled, smooth = self._limited(gain, threshold)
        limited = scaled * smooth
        taken = np.einsum("ij,ij->i", scaled, scaled, dtype=np.float64)
        taken -= np.einsum("ij,ij->i", limited, limited, dtype=np.float64)
        hop = np.minimum(touched * BLOCK // HOP, self.hops - 1)
        energy = self.hop_energy * gain**2
        np.subtract.at(energy, hop, taken * self.weighting[hop])
        return _gated_loudness(np.maximum(energy, 0.0), HOP)

    def loudness(
        self, gain: float, threshold: float
    ) -> tuple[float, npt.NDArray[np.int64], Samples]:
        """Integrated loudness of ``limit(samples * gain, threshold)``; also the blocks the
        limiter touches and the gain it gives their samples."""
        touched, scaled, smooth = self._limited(gain, threshold)
        if not len(touched):
            return _gated_loudness(self.hop_energy * gain**2, HOP), touched, smooth
        change = np.zeros((self.n_blocks + LIMITER_TAIL_BLOCKS, BLOCK), dtype=np.float32)
        change[touched] = scaled * (smooth - 1)
        # The blocks a change reaches: each touched block and the tail after it; what a
        # stretch still carries into the next after its tail is left out (the bound above).
        reached = np.zeros(len(change), dtype=bool)
        for after in range(LIMITER_TAIL_BLOCKS + 1):
            reached[touched + after] = True
        rows = np.flatnonzero(reached)
        change[rows] = signal.sosfilt(_SOS_F32, change[rows].ravel()).reshape(len(rows), BLOCK)
        hops = np.unique(np.concatenate([rows * BLOCK // HOP, ((rows + 1) * BLOCK - 1) // HOP]))
        hops = hops[hops < self.hops]
        level = self.by_hop[hops] * np.float32(gain)
        level += change.reshape(-1)[: self.hops * HOP].reshape(self.hops, HOP)[hops]
        energy = self.hop_energy * gain**2
        energy[hops] = _squares(level)
        return _gated_loudness(energy, HOP), touched, smooth

    def output(self, gain: float, touched: npt.NDArray[np.int64], smooth: Samples) -> Samples:
        """``limit(samples * gain, threshold)`` from what ``loudness`` found."""
        out: Samples = self.samples * np.float32(gain)
        whole = len(out) // BLOCK
        blocks = out[: whole * BLOCK].reshape(whole, BLOCK)
        inside = touched < whole
        blocks[touched[inside]] *= smooth[inside]
        if not inside.all():  # the last, partial block
            out[whole * BLOCK :] *= smooth[-1, : len(out) - whole * BLOCK]
        return out


def _first_step(
    levelling: _Levelling, target: float, threshold: float, gain_db: float, achieved: float
) -> float:
    """The gain after the first. What the limiter takes away grows about with the square of
    the gain past the gain where it starts to act: fitted to where the first gain landed
    (``achieved``), the gain where that loss and the target meet usually needs no other."""
    onset_db = 20 * np.log10(threshold / levelling.sample_peak)
    past = gain_db - onset_db
    loss = levelling.measured + gain_db - achieved
    room = target - levelling.measured - onset_db
    if past > 0 and loss > 0:
        curve = loss / past**2
        reach = 1 - 4 * curve * room
        if reach >= 0:
            return float(onset_db + (1 - np.sqrt(reach)) / (2 * curve))
    return gain_db + (target - achieved)


def _gain_passes(
    levelling: _Levelling, target: float, gain_db: float, threshold: float
) -> tuple[Samples, float, float]:
    previous: tuple[float, float] | None = None
    achieved = SILENT
    estimate = levelling.estimate(10 ** (gain_db / 20), threshold)
    if abs(target - estimate) >= NORMALIZE_TOLERANCE_LU:
        # The first step needs only about where the first gain lands.
        previous = (gain_db, estimate)
        gain_db = _first_step(levelling, target, threshold, gain_db, estimate)
    for _ in range(NORMALIZE_MAX_PASSES):
        gain = 10 ** (gain_db / 20)
        achieved, touched, smooth = levelling.loudness(gain, threshold)
        if abs(target - achieved) < NORMALIZE_TOLERANCE_LU:
            break
        if previous is None:
            previous = (gain_db, achieved)
            gain_db = _first_step(levelling, target, threshold, gain_db, achieved)
            continue
        # Limiting makes loudness grow slower than gain; the slope between the last two passes
        # says by how much (a secant step), bounded so a flat stretch cannot blow the gain up.
        slope = 1.0
        if gain_db != previous[0]:
            slope = float(np.clip((achieved - previous[1]) / (gain_db - previous[0]), 0.2, 1.0))
        previous = (gain_db, achieved)
        gain_db += (target - achieved) / slope
    return levelling.output(gain, touched, smooth), achieved, gain_db


def normalize(samples: Samples, target: LoudnessTarget) -> tuple[Samples, LoudnessReport]:
    """Bring ``samples`` to ``target``: gain and limiting until the loudness is within
    ``NORMALIZE_TOLERANCE_LU``; if the true peak still exceeds the ceiling, limit harder."""
    levelling = _Levelling(samples)
    measured = levelling.measured
    if measured <= SILENT:
        raise AudioConfigError("cannot normalise silence")
    threshold_db = target.true_peak_dbtp - INTERSAMPLE_MARGIN_DB
    gain_db = target.lufs - measured
    for _ in range(3):
        out, achieved, gain_db = _gain_passes(
            levelling, target.lufs, gain_db, 10 ** (threshold_db / 20)
        )
        peak = true_peak_dbtp(out)
        if peak <= target.true_peak_dbtp:
            return out, LoudnessReport(achieved, peak, gain_db)
        threshold_db -= peak - target.true_peak_dbtp
    trim_db = target.true_peak_dbtp - peak
    out = (out * 10 ** (trim_db / 20)).astype(np.float32)
    return out, LoudnessReport(achieved + trim_db, peak + trim_db, gain_db + trim_db)
