"""zray.media.limiter: true peaks only where they matter, equal to oversampling everything; a limiter
that holds its ceiling and acts locally."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.ndimage import minimum_filter1d
from scipy.signal import resample_poly
from speech_like import speech_like

from zray.media.limiter import (
    LOOKAHEAD_S,
    TruePeaks,
    gain_curve,
    limit,
    limiter_reach,
    true_peak_dbtp,
)

SR = 48_000
PROPERTY = settings(deadline=None, max_examples=40, database=None)


def full_true_peaks(audio: np.ndarray) -> np.ndarray:
    """The path the fast one replaces: every sample oversampled 4x, max over channels and phases."""
    upsampled = np.abs(resample_poly(audio, 4, 1, axis=1))
    return upsampled.max(axis=0).reshape(-1, 4).max(axis=1)


def dense_limiter_gain(audio: np.ndarray, ceiling: float) -> np.ndarray:
    """The limiter gain computed the old way, on the whole signal: needed gain from the full true
    peaks, a min filter over the look-ahead either side, then a box half as wide."""
    half = round(LOOKAHEAD_S * SR)
    box = half // 2
    needed = np.minimum(1.0, ceiling / np.maximum(full_true_peaks(audio).astype(np.float64), 1e-12))
    spread = minimum_filter1d(needed, size=2 * half + 1, mode="constant", cval=1.0)
    sums = np.concatenate([[0.0], np.cumsum(np.pad(spread, box, constant_values=1.0))])
    return (sums[2 * box + 1 :] - sums[: -2 * box - 1]) / (2 * box + 1)


@pytest.fixture(scope="module")
def loud() -> np.ndarray:
    """Ten seconds of narration 15 dB too loud for a -1 dBTP ceiling at its peaks."""
    audio = speech_like(10.0, seed=3)
    return (audio * np.float32(10 ** ((-1.0 + 15.0) / 20) / np.abs(audio).max())).astype(np.float32)


@pytest.mark.parametrize("level_db", [-12.0, -6.0, -1.0, 3.0])
def test_true_peaks_are_those_of_oversampling_everything_where_they_exceed_the_level(
    loud: np.ndarray, level_db: float
) -> None:
    full = full_true_peaks(loud)
    level = 10 ** (level_db / 20)
    index, peaks = TruePeaks(loud).over(level)
    assert np.array_equal(index, np.flatnonzero(full > level))
    np.testing.assert_array_equal(peaks, full[index])  # bit for bit: the same filter on the same samples
    assert index.size > 100  # the levels really cut through the signal


@PROPERTY
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(1, 3000),
    channels=st.integers(1, 2),
    level=st.floats(0.05, 2.0),
    spiky=st.booleans(),
)
def test_true_peaks_match_on_any_signal_including_its_edges(
    seed: int, n: int, channels: int, level: float, spiky: bool
) -> None:
    rng = np.random.default_rng(seed)
    audio = rng.uniform(-1, 1, (channels, n)).astype(np.float32)
    if spiky:  # isolated full-scale samples and alternating signs: the largest intersample overs
        audio *= 0.01
        audio[:, rng.integers(0, n, 5)] = rng.choice([-1.0, 1.0], (channels, 5))
        audio[:, : n // 3] = np.where(np.arange(n // 3) % 2, 0.9, -0.9)
    peaks = TruePeaks(audio)
    full = full_true_peaks(audio)
    index, values = peaks.over(level)
    assert np.array_equal(index, np.flatnonzero(full > level))
    np.testing.assert_array_equal(values, full[index])
    assert peaks.maximum() == pytest.approx(float(full.max()), rel=1e-6)


def test_true_peak_of_silence_and_of_a_sine_between_its_samples() -> None:
    assert true_peak_dbtp(np.zeros((2, 1000), np.float32)) == float("-inf")
    # Sampled at +-45 degrees, a quarter-rate sine's samples sit 3 dB under its peak; 4x
    # oversampling finds the peak (to within its filter's ripple at 12 kHz).
    tone = np.sin(2 * np.pi * 0.25 * np.arange(4800) + np.pi / 4).astype(np.float32)[None] * 0.5
    assert 20 * np.log10(np.abs(tone).max()) == pytest.approx(-6.02 - 3.01, abs=0.05)
    assert true_peak_dbtp(tone) == pytest.approx(-6.02, abs=0.2)
    assert true_peak_dbtp(tone) == pytest.approx(20 * np.log10(full_true_peaks(tone).max()), abs=1e-6)


def test_the_limiter_gain_is_the_old_dense_one_where_it_acts(loud: np.ndarray) -> None:
    ceiling = 10 ** (-1.0 / 20)
    curve = gain_curve(TruePeaks(loud), gain=1.0, ceiling=ceiling, sample_rate=SR)
    dense = dense_limiter_gain(loud, ceiling)
    assert curve.index.size > 1000
    np.testing.assert_allclose(curve.gains, dense[curve.index], rtol=0, atol=1e-9)
    # Everywhere else the old gain was 1 too (to within the integer sums' rounding).
    rest = np.ones(loud.shape[1], dtype=bool)
    rest[curve.index] = False
    assert dense[rest].min() > 1 - 1e-9


@pytest.mark.parametrize(("over_db", "untouched"), [(0.5, 0.9), (6.0, 0.3), (20.0, 0.0)])
def test_the_limited_signal_never_exceeds_the_ceiling(
    loud: np.ndarray, over_db: float, untouched: float
) -> None:
    ceiling = 10 ** (-1.0 / 20)
    audio = (loud * np.float32(10 ** ((over_db - 15.0) / 20))).astype(np.float32)
    out = limit(audio, ceiling=ceiling, sample_rate=SR)
    assert full_true_peaks(audio).max() > ceiling
    assert full_true_peaks(out).max() <= ceiling
    assert out.dtype == np.float32 and out.shape == audio.shape
    # Only peaks are touched: most samples are exactly as they were, none grew.
    assert np.mean(out == audio) >= untouched
    assert np.all(np.abs(out) <= np.abs(audio))


def test_square_waves_and_clicks_are_held_too() -> None:
    audio = np.zeros((2, SR), np.float32)
    audio[0, : SR // 2] = np.where(np.arange(SR // 2) // 7 % 2, 1.0, -1.0)  # full-scale square
    audio[1, SR // 2 :: 997] = 1.0  # lone clicks: each rings to about 1.0 between samples
    out = limit(audio, ceiling=0.5, sample_rate=SR)
    assert full_true_peaks(out).max() <= 0.5


def test_limiting_a_window_with_its_reach_of_context_gives_the_whole_tracks_samples(loud: np.ndarray) -> None:
    ceiling = 10 ** (-1.0 / 20)
    whole = limit(loud, ceiling=ceiling, sample_rate=SR)
    reach = limiter_reach(SR)
    n = loud.shape[1]
    for start, stop in [(0, 50_000), (123_457, 200_003), (400_000, n)]:
        lo, hi = max(0, start - reach), min(n, stop + reach)
        piece = limit(loud[:, lo:hi], ceiling=ceiling, sample_rate=SR)
        assert np.array_equal(piece[:, start - lo : stop - lo], whole[:, start:stop])
    # With much less context, a window that starts where the limiter acts comes out differently.
    start = int(np.flatnonzero((whole != loud).any(axis=0))[1000])
    short = limit(loud[:, start - 200 : start + 30_000], ceiling=ceiling, sample_rate=SR)
    assert not np.array_equal(short[:, 200:], whole[:, start : start + 29_800])


def test_a_quiet_signal_comes_back_unchanged() -> None:
    audio = speech_like(2.0, seed=1) * np.float32(0.1)
    out = limit(audio, ceiling=0.9, sample_rate=SR)
    assert out is not audio and np.array_equal(out, audio)
