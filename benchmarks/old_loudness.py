"""The loudness normalization that `zray.media.loudness` and `zray.media.limiter` replaced, kept
verbatim (zray/media/audio.py at commit a69fa1c) as the baseline `benchmarks/mastering.py` times
the new code against: true peak oversampled 4x everywhere, a secant search that meters the whole
signal each try, and a final static trim. Not used by zray itself.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np
import pyloudnorm
from scipy.ndimage import minimum_filter1d, uniform_filter1d
from scipy.signal import lfilter, resample_poly

SAMPLE_RATE = 48_000
_LOUDNESS_BLOCK_S = 0.4
_LIMITER_LOOKAHEAD_S = 0.010
_OVERSAMPLE = 4
_PEAK_CHUNK, _PEAK_CHUNK_PAD = 1 << 18, 64
_SEARCH_STEPS = 8
_LOUDNESS_TOLERANCE_DB = 0.1
_MAX_MAKEUP_DB = 9.0


def _as_planar(samples: np.ndarray) -> np.ndarray:
    return np.asarray(samples).astype(np.float32, copy=False)


def _true_peak(audio: np.ndarray) -> np.ndarray:
    """Per-sample peak, over channels, of the 4x oversampled signal (BS.1770 true peak), shape (n,).

    Done in chunks so a long episode never holds a 4x copy of itself; each chunk carries enough
    neighbouring samples that the interpolation filter sees the same input as on the whole signal.
    """
    n = audio.shape[1]
    peaks = np.empty(n, dtype=np.float32)
    for start in range(0, n, _PEAK_CHUNK):
        stop = min(start + _PEAK_CHUNK, n)
        lo, hi = max(0, start - _PEAK_CHUNK_PAD), min(n, stop + _PEAK_CHUNK_PAD)
        upsampled = np.abs(resample_poly(audio[:, lo:hi], _OVERSAMPLE, 1, axis=1))
        per_sample = upsampled.max(axis=0).reshape(-1, _OVERSAMPLE).max(axis=1)
        peaks[start:stop] = per_sample[start - lo : stop - lo]
    return peaks


def _limiter_gain(peaks: np.ndarray, *, ceiling: float, sample_rate: int) -> np.ndarray | None:
    """Look-ahead limiter gain for a true-peak envelope, or None when nothing is over ``ceiling``.

    The gain each peak needs is spread by a min filter, then smoothed by a box filter half as wide,
    which can only lower it, so every peak keeps at least its reduction and the gain ramps over the look-ahead time.
    """
    needed = np.minimum(1.0, ceiling / np.maximum(peaks, 1e-12))
    if needed.min() >= 1.0:
        return None
    half = max(1, round(_LIMITER_LOOKAHEAD_S * sample_rate))
    spread = minimum_filter1d(needed, size=2 * half + 1)
    return uniform_filter1d(spread, size=half + 1).astype(np.float32)


def _loudness(meter: pyloudnorm.Meter, audio: np.ndarray) -> float:
    return float(meter.integrated_loudness(audio.T.astype(np.float64)))


def _k_weighted(audio: np.ndarray, *, sample_rate: int) -> np.ndarray:
    """The BS.1770 K-weighting pyloudnorm applies (shelf then high-pass), on all channels at once."""
    weighted = audio.astype(np.float64)
    for stage in (
        pyloudnorm.IIRfilter(4.0, 1 / np.sqrt(2), 1500.0, sample_rate, "high_shelf"),
        pyloudnorm.IIRfilter(0.0, 0.5, 38.0, sample_rate, "high_pass"),
    ):
        weighted = lfilter(stage.b, stage.a, weighted, axis=1)
    return weighted


def _secant_search(
    measure: Callable[[float], float], *, start_db: float, target: float, max_db: float
) -> float:
    """The gain (dB) at which ``measure`` reads ``target``; measure(gain) rises with slope <= 1 dB/dB
    (exactly 1 until the limiter engages), so secant steps from a slope of 1 converge in a few tries."""
    gain_db, previous = start_db, None
    for _ in range(_SEARCH_STEPS):
        achieved = measure(gain_db)
        error = target - achieved
        if abs(error) < _LOUDNESS_TOLERANCE_DB / 4:
            break
        slope = 1.0
        if previous is not None and gain_db != previous[0]:
            slope = min(1.0, max(0.1, (achieved - previous[1]) / (gain_db - previous[0])))
        previous = (gain_db, achieved)
        next_db = min(gain_db + error / slope, max_db)
        if next_db == gain_db:  # pinned at max_db
            break
        gain_db = next_db
    return gain_db


def normalize_loudness(
    samples: np.ndarray,
    *,
    sample_rate: int = SAMPLE_RATE,
    target_lufs: float = -14.0,
    peak_dbfs: float = -1.0,
) -> np.ndarray:
    """Integrated loudness (BS.1770, pyloudnorm) to ``target_lufs``, true peak (4x oversampled) <= ``peak_dbfs``.

    Peaks that the gain pushes over the ceiling go through a look-ahead limiter; the make-up gain that
    wins back the loudness the limiter takes is capped at 9 dB, so a signal made of little but peaks
    ends quieter than the target rather than crushed. Silent input, or input shorter than one 400 ms
    gating block, is returned unchanged.
    """
    audio = _as_planar(samples)
    if audio.shape[0] > 5:
        raise ValueError(f"loudness is measured for up to 5 channels, got {audio.shape[0]}")
    if audio.shape[1] < _LOUDNESS_BLOCK_S * sample_rate:
        return audio.copy()
    # Searching the make-up gain measures loudness many times. K-weighting is the costly part of a
    # measurement and the limiter's 10 ms gain ramps barely change what it does, so the search meters
    # the once-weighted signal times the gain curve (pyloudnorm's own gating, its "custom" filter class);
    # a stock pyloudnorm meter on the real output has the last word.
    weighted = _k_weighted(audio, sample_rate=sample_rate)
    gated_meter = pyloudnorm.Meter(sample_rate, filter_class="custom", block_size=_LOUDNESS_BLOCK_S)
    loudness = _loudness(gated_meter, weighted)
    if not math.isfinite(loudness):  # silence, or everything under BS.1770's -70 LUFS gate
        return audio.copy()

    # A hair under the ceiling so resampling error in the final measurement stays inside it.
    ceiling = 10 ** ((peak_dbfs - 0.02) / 20)
    peaks = _true_peak(audio)  # gain commutes with oversampling: computed once, scaled per try

    def limiter_curve(gain_db: float) -> np.ndarray | None:
        return _limiter_gain(peaks * 10 ** (gain_db / 20), ceiling=ceiling, sample_rate=sample_rate)

    def estimate(gain_db: float, bias: float) -> float:
        curve = limiter_curve(gain_db)
        return bias + gain_db + _loudness(gated_meter, weighted if curve is None else weighted * curve)

    plain_db = target_lufs - loudness
    max_db = plain_db + _MAX_MAKEUP_DB
    meter = pyloudnorm.Meter(sample_rate, block_size=_LOUDNESS_BLOCK_S)
    bias, out = 0.0, audio
    for _ in range(2):
        gain_db = _secant_search(
            functools.partial(estimate, bias=bias), start_db=plain_db, target=target_lufs, max_db=max_db
        )
        curve = limiter_curve(gain_db)
        out = audio * np.float32(10 ** (gain_db / 20))
        if curve is None:
            break  # a plain gain: the estimate is exact
        out *= curve
        # The gain curve slightly reshapes the oversampled waveform; a static trim makes the ceiling hard.
        peak = float(_true_peak(out).max())
        if peak > ceiling:
            out *= np.float32(ceiling / peak)
        error = target_lufs - _loudness(meter, out)
        if abs(error) < _LOUDNESS_TOLERANCE_DB or gain_db >= max_db:
            break
        bias -= error  # the estimate was off by this much: search again with it corrected
    return out.astype(np.float32, copy=False)
