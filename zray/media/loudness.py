"""Integrated loudness (ITU-R BS.1770-4) and the gain that brings a mix to a target through the limiter.

A measurement is K-weighting (the costly part, done once) and then sums of squares over 100 ms
steps, from which the 400 ms gating blocks and both gates follow. The limiter changes the level only
near peaks, so the loudness at a trial gain is the once-weighted energies plus a correction over the
limiter's spans (the K-weighting of a 10 ms gain ramp is close to the ramp times the K-weighting),
and a search over the gain costs little more than one measurement.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from zray.media.limiter import TruePeaks, gain_curve

# BS.1770: 400 ms blocks overlapping by 75 %, an absolute gate at -70 LUFS and a relative one 10 LU
# under the loudness of the blocks that pass the first.
_STEP_S, _STEPS_PER_BLOCK = 0.1, 4
_ABSOLUTE_GATE, _RELATIVE_GATE = -70.0, -10.0
_CHANNEL_WEIGHTS = (1.0, 1.0, 1.0, 1.41, 1.41)
# The gain is rounded to 0.1 dB, far below the smallest loudness change anyone hears (about 1 dB),
# so that a small edit to a long mix keeps the same gain, and with it the cache key of every chunk
# of the final audio that the edit did not touch.
GAIN_STEP_DB = 0.1
# The make-up gain that wins back what the limiter takes is capped, so a signal made of little
# but peaks ends quieter than the target rather than crushed.
MAX_MAKEUP_DB = 9.0
_SEARCH_STEPS = 8
_TOLERANCE_DB = 0.02


def _biquad(
    kind: str, *, gain_db: float, q: float, fc: float, sample_rate: int
) -> tuple[np.ndarray, np.ndarray]:
    """pyloudnorm's `IIRfilter` coefficients (RBJ's cookbook), written out in its order of operations
    so they are the same to the last bit, without importing pyloudnorm (and with it scipy.signal)."""
    big_a = 10 ** (gain_db / 40.0)
    w0 = 2.0 * np.pi * (fc / sample_rate)
    alpha = np.sin(w0) / (2.0 * q)
    if kind == "high_shelf":
        b0 = big_a * ((big_a + 1) + (big_a - 1) * np.cos(w0) + 2 * np.sqrt(big_a) * alpha)
        b1 = -2 * big_a * ((big_a - 1) + (big_a + 1) * np.cos(w0))
        b2 = big_a * ((big_a + 1) + (big_a - 1) * np.cos(w0) - 2 * np.sqrt(big_a) * alpha)
        a0 = (big_a + 1) - (big_a - 1) * np.cos(w0) + 2 * np.sqrt(big_a) * alpha
        a1 = 2 * ((big_a - 1) - (big_a + 1) * np.cos(w0))
        a2 = (big_a + 1) - (big_a - 1) * np.cos(w0) - 2 * np.sqrt(big_a) * alpha
    else:  # high_pass
        b0 = (1 + np.cos(w0)) / 2
        b1 = -(1 + np.cos(w0))
        b2 = (1 + np.cos(w0)) / 2
        a0 = 1 + alpha
        a1 = -2 * np.cos(w0)
        a2 = 1 - alpha
    return np.array([b0, b1, b2]) / a0, np.array([a0, a1, a2]) / a0


def _k_weighting(sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """The BS.1770 K-weighting: pyloudnorm's shelf then high-pass, as one filter (b, a)."""
    shelf_b, shelf_a = _biquad(
        "high_shelf", gain_db=4.0, q=1 / np.sqrt(2), fc=1500.0, sample_rate=sample_rate
    )
    pass_b, pass_a = _biquad("high_pass", gain_db=0.0, q=0.5, fc=38.0, sample_rate=sample_rate)
    return np.convolve(shelf_b, pass_b), np.convolve(shelf_a, pass_a)


def _k_weighted(audio: np.ndarray, *, sample_rate: int) -> np.ndarray:
    """The K-weighted signal, float64."""
    from scipy.signal import lfilter  # here: importing scipy.signal costs a second

    b, a = _k_weighting(sample_rate)
    return lfilter(b, a, audio.astype(np.float64), axis=1)


@dataclass(frozen=True)
class _Energies:
    """Sums of squares of the K-weighted signal per channel and 100 ms step."""

    weighted: np.ndarray
    steps: np.ndarray  # (channels, steps)
    step: int  # samples per step
    blocks: int

    @classmethod
    def of(cls, audio: np.ndarray, *, sample_rate: int) -> _Energies:
        weighted = _k_weighted(audio, sample_rate=sample_rate)
        step = round(_STEP_S * sample_rate)
        n = audio.shape[1]
        # pyloudnorm's count: the last block may run past the end (it holds what there is).
        blocks = round((n / sample_rate - _STEPS_PER_BLOCK * _STEP_S) / _STEP_S) + 1 if n else 0
        count = max(blocks + _STEPS_PER_BLOCK - 1, -(-n // step))
        squares = np.square(weighted)
        whole = n // step
        steps = np.zeros((audio.shape[0], count))
        steps[:, :whole] = squares[:, : whole * step].reshape(audio.shape[0], whole, step).sum(axis=2)
        if n > whole * step:
            steps[:, whole] = squares[:, whole * step :].sum(axis=1)
        return cls(weighted, steps, step, max(blocks, 0))

    def loudness(self, steps: np.ndarray | None = None) -> float:
        """Gated integrated loudness (LUFS) of these energies, or of `steps` in their place."""
        energies = self.steps if steps is None else steps
        if self.blocks < 1:
            return -math.inf
        block_sums = sum(energies[:, i : i + self.blocks] for i in range(_STEPS_PER_BLOCK))
        mean_squares = block_sums / (_STEPS_PER_BLOCK * self.step)
        weights = np.asarray(_CHANNEL_WEIGHTS[: energies.shape[0]])
        with np.errstate(divide="ignore"):
            block_loudness = -0.691 + 10 * np.log10(weights @ mean_squares)
        gated = block_loudness >= _ABSOLUTE_GATE
        if not gated.any():
            return -math.inf
        relative = -0.691 + 10 * np.log10(weights @ mean_squares[:, gated].mean(axis=1))
        gated &= block_loudness > relative + _RELATIVE_GATE
        if not gated.any():
            return -math.inf
        return float(-0.691 + 10 * np.log10(weights @ mean_squares[:, gated].mean(axis=1)))


def integrated_loudness(audio: np.ndarray, *, sample_rate: int) -> float:
    """BS.1770-4 integrated loudness (LUFS) of a (channels, n) signal; -inf for silence."""
    return _Energies.of(np.asarray(audio), sample_rate=sample_rate).loudness()


def _secant_search(
    measure: Callable[[float], float], *, start_db: float, target: float, max_db: float
) -> float:
    """The gain (dB) at which `measure` reads `target`; measure(gain) rises with slope <= 1 dB/dB
    (exactly 1 until the limiter engages), so secant steps from a slope of 1 converge in a few tries."""
    gain_db, previous = start_db, None
    for _ in range(_SEARCH_STEPS):
        achieved = measure(gain_db)
        error = target - achieved
        if abs(error) < _TOLERANCE_DB:
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


def loudness_gain(audio: np.ndarray, *, sample_rate: int, target_lufs: float, ceiling: float) -> float:
    """The gain (dB, a multiple of `GAIN_STEP_DB`) that brings a mix to `target_lufs` once the
    limiter (`zray.media.limiter.limit` at `ceiling`, linear) has held its true peaks.

    0.0 for silence or for a signal shorter than one 400 ms block: there is nothing to measure.
    """
    signal = np.asarray(audio, dtype=np.float32)
    energies = _Energies.of(signal, sample_rate=sample_rate)
    loudness = energies.loudness()
    if not math.isfinite(loudness):
        return 0.0
    peaks = TruePeaks(signal)  # gain commutes with oversampling: measured once, scaled per try

    def measure(gain_db: float) -> float:
        gain = 10 ** (gain_db / 20)
        curve = gain_curve(peaks, gain=gain, ceiling=ceiling, sample_rate=sample_rate)
        steps = energies.steps
        if curve:
            steps = steps + curve.energy_change(energies.weighted, block=energies.step, count=steps.shape[1])
        # Gated at the level the gain gives: the absolute gate lets through what is loud enough then.
        return energies.loudness(steps * gain**2)

    plain_db = target_lufs - loudness
    gain_db = _secant_search(measure, start_db=plain_db, target=target_lufs, max_db=plain_db + MAX_MAKEUP_DB)
    return round(round(gain_db / GAIN_STEP_DB) * GAIN_STEP_DB, 6)
