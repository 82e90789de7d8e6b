"""Integrated loudness (ITU-R BS.1770-4) and the gain that brings a mix to a target through the limiter.

A measurement is K-weighting (the costly part, done once) and then sums of squares over 100 ms
steps, from which the 400 ms gating blocks and both gates follow. The limiter changes the level only
near peaks, so the loudness at a trial gain is the once-weighted energies plus a correction over the
limiter's spans (the K-weighting of a 10 ms gain ramp is close to the ramp times the K-weighting),
and a search over the gain costs little more than one measurement.

A long mix is measured in chunks of `CHUNK_STEPS` steps, which a memo can keep between runs: a
chunk's step energies, the K-weighting filter's state after it, and the limiter's change to its
energies at each gain tried, under a key that holds all they depend on (its samples with the
limiter's reach either side, and the filter's state coming into it). The gain is searched on its
0.1 dB grid, so a rerun tries the gains it tried before and an edit measures only the chunks it
changed: those after it, since the filter's state carries the edit forward.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np

from zray.media.limiter import GainCurve, TruePeaks, gain_curve, limiter_reach

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
# 15 s at 100 ms steps: chunks of the loudness measure, on their own grid (whole steps).
CHUNK_STEPS = 150
# Bump when a chunk's measures would come out differently, so none from before is reused.
MEASURE_VERSION = 1


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


@dataclass(frozen=True)
class ChunkLoudness:
    """What one chunk of a mix contributes to its loudness."""

    steps: np.ndarray  # (channels, steps) sums of squares of the K-weighted chunk, float64
    state: np.ndarray  # the K-weighting filter's state after the chunk, (channels, order)
    changes: Mapping[int, np.ndarray] = field(default_factory=dict)  # by gain in tenths of a dB:
    # what the limiter at that gain changes in `steps` (before the gain itself)
    settled: int | None = None  # the gain the search settled on when these were stored: a hint


class LoudnessMemo(Protocol):
    """Where chunk measures are kept between runs, by key (`zray.media.mastering` keeps them in its
    chunk cache)."""

    def get(self, key: str) -> ChunkLoudness | None: ...

    def put(self, key: str, value: ChunkLoudness) -> None: ...


@dataclass
class _Chunk:
    start: int
    stop: int
    key: str
    state_in: np.ndarray
    measures: ChunkLoudness
    weighted: np.ndarray | None = None  # K-weighted samples, while this run needs them
    peaks: TruePeaks | None = None
    dirty: bool = False


class _ChunkedMix:
    """A mix measured chunk by chunk, each chunk's measures taken from the memo where it has them."""

    def __init__(self, signal: np.ndarray, *, sample_rate: int, ceiling: float, memo: LoudnessMemo | None):
        self.signal, self.sample_rate, self.ceiling, self.memo = signal, sample_rate, ceiling, memo
        channels, n = signal.shape
        self.step = round(_STEP_S * sample_rate)
        # pyloudnorm's count: the last block may run past the end (it holds what there is).
        self.blocks = max(0, round((n / sample_rate - _STEPS_PER_BLOCK * _STEP_S) / _STEP_S) + 1 if n else 0)
        count = max(self.blocks + _STEPS_PER_BLOCK - 1, -(-n // self.step))
        self.b, self.a = _k_weighting(sample_rate)
        self.reach = limiter_reach(sample_rate)
        self.chunks: list[_Chunk] = []
        self.steps = np.zeros((channels, count))
        state = np.zeros((channels, max(self.a.size, self.b.size) - 1))
        size = CHUNK_STEPS * self.step
        for start in range(0, n, size):
            stop = min(n, start + size)
            key = self._key(start, stop, state)
            stored = memo.get(key) if memo is not None else None
            if stored is None or stored.steps.shape != (channels, -(-(stop - start) // self.step)):
                chunk = _Chunk(start, stop, key, state, ChunkLoudness(np.zeros(0), state), dirty=True)
                self._weigh(chunk)
            else:
                chunk = _Chunk(start, stop, key, state, stored)
            self.steps[:, start // self.step : start // self.step + chunk.measures.steps.shape[1]] = (
                chunk.measures.steps
            )
            self.chunks.append(chunk)
            state = chunk.measures.state

    def _key(self, start: int, stop: int, state: np.ndarray) -> str:
        lo, hi = max(0, start - self.reach), min(self.signal.shape[1], stop + self.reach)
        settings = {
            "version": MEASURE_VERSION,
            "sample_rate": self.sample_rate,
            "ceiling": self.ceiling,
            "step": self.step,
            "window": [start - lo, stop - start, hi - stop],
            "filter": [self.b.tolist(), self.a.tolist()],
        }
        digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
        digest.update(np.ascontiguousarray(state, dtype=np.float64).tobytes())
        for channel in self.signal:
            digest.update(memoryview(np.ascontiguousarray(channel[lo:hi])))
        return f"loud-{digest.hexdigest()}"

    def _weigh(self, chunk: _Chunk) -> None:
        """K-weight the chunk from the state coming into it; measure its steps if it has none yet."""
        from scipy.signal import lfilter  # here: importing scipy.signal costs a second

        samples = self.signal[:, chunk.start : chunk.stop].astype(np.float64)
        weighted, state = lfilter(self.b, self.a, samples, axis=1, zi=chunk.state_in)
        chunk.weighted = weighted
        if chunk.measures.steps.size == 0:
            chunk.measures = ChunkLoudness(_step_sums(weighted, self.step), state)

    def _change(self, chunk: _Chunk, tenths: int) -> np.ndarray:
        """The limiter's change to the chunk's steps at a gain: its curve there, from the true peaks
        within its reach either side, applied to the K-weighted chunk."""
        known = chunk.measures.changes.get(tenths)
        if known is not None:
            return known
        lo = max(0, chunk.start - self.reach)
        if chunk.peaks is None:
            chunk.peaks = TruePeaks(self.signal[:, lo : min(self.signal.shape[1], chunk.stop + self.reach)])
        curve = gain_curve(
            chunk.peaks, gain=_gain(tenths), ceiling=self.ceiling, sample_rate=self.sample_rate
        )
        inside = (curve.index >= chunk.start - lo) & (curve.index < chunk.stop - lo)
        count = chunk.measures.steps.shape[1]
        change = np.zeros((self.signal.shape[0], count))
        if inside.any():
            if chunk.weighted is None:
                self._weigh(chunk)
            assert chunk.weighted is not None
            local = GainCurve(curve.index[inside] - (chunk.start - lo), curve.gains[inside])
            change = local.energy_change(chunk.weighted, block=self.step, count=count)
        chunk.measures = replace(chunk.measures, changes={**chunk.measures.changes, tenths: change})
        chunk.dirty = True
        return change

    def loudness(self, tenths: int | None = None) -> float:
        """The gated loudness of the mix, or of the mix at a gain through the limiter."""
        energies = _Energies(np.zeros(0), self.steps, self.step, self.blocks)
        if tenths is None:
            return energies.loudness()
        steps = self.steps.copy()
        for chunk in self.chunks:
            first = chunk.start // self.step
            steps[:, first : first + chunk.measures.steps.shape[1]] += self._change(chunk, tenths)
        # Gated at the level the gain gives: the absolute gate lets through what is loud enough then.
        return energies.loudness(steps * _gain(tenths) ** 2)

    def hint(self) -> int | None:
        """Where the last search over chunks like these settled: a rerun's search starts there, and
        finds the measures it needs already kept."""
        settled = [chunk.measures.settled for chunk in self.chunks if chunk.measures.settled is not None]
        return max(sorted(set(settled)), key=settled.count) if settled else None

    def keep(self, settled: int | None) -> None:
        """Store what this run measured anew."""
        for chunk in self.chunks:
            if chunk.dirty and self.memo is not None:
                self.memo.put(chunk.key, replace(chunk.measures, settled=settled))


def _gain(tenths: int) -> float:
    return 10 ** (tenths * GAIN_STEP_DB / 20)


def _step_sums(weighted: np.ndarray, step: int) -> np.ndarray:
    channels, n = weighted.shape
    whole = n // step
    sums = np.zeros((channels, -(-n // step)))
    squares = np.square(weighted)
    sums[:, :whole] = squares[:, : whole * step].reshape(channels, whole, step).sum(axis=2)
    if n > whole * step:
        sums[:, whole] = squares[:, whole * step :].sum(axis=1)
    return sums


def _grid_search(measure: Callable[[int], float], *, start: int, target: float, top: int) -> int:
    """The gain on the grid (in tenths of a dB, at most `top`) at which `measure` reads closest to
    `target` (the lower of two as close). measure(gain) rises with slope <= 1 dB/dB (exactly 1 until
    the limiter engages), so secant steps from a slope of 1, rounded to the grid, come near it in a
    few tries from any `start`; the last steps walk the grid to it, so the answer does not depend on
    where the search started (a rerun starts where the last one settled)."""
    readings: dict[int, float] = {}

    def read(tenths: int) -> float:
        if tenths not in readings:
            readings[tenths] = measure(tenths)
        return readings[tenths]

    tenths, previous = min(start, top), None
    for _ in range(_SEARCH_STEPS):
        achieved = read(tenths)
        slope = 1.0
        if previous is not None:
            slope = (achieved - readings[previous]) / ((tenths - previous) * GAIN_STEP_DB)
            slope = min(1.0, max(0.1, slope))
        following = min(top, round(tenths + (target - achieved) / slope / GAIN_STEP_DB))
        if following == tenths:
            break
        previous, tenths = tenths, following
    # Walk to the last gain that reads at most the target (quiet enough gains always do)...
    while read(tenths) > target:
        tenths -= 1
    while tenths < top and read(tenths + 1) <= target:
        tenths += 1
    # ... and take the next one if it reads closer.
    if tenths < top and read(tenths + 1) - target < target - read(tenths):
        tenths += 1
    return tenths


def loudness_gain(
    audio: np.ndarray,
    *,
    sample_rate: int,
    target_lufs: float,
    ceiling: float,
    memo: LoudnessMemo | None = None,
) -> float:
    """The gain (dB, a multiple of `GAIN_STEP_DB`) that brings a mix to `target_lufs` once the
    limiter (`zray.media.limiter.limit` at `ceiling`, linear) has held its true peaks.

    0.0 for silence or for a signal shorter than one 400 ms block: there is nothing to measure.
    With a `memo`, every chunk's measures are looked up in it (so it sees every key the mix is
    made of) and those measured anew are written to it.
    """
    signal = np.asarray(audio, dtype=np.float32)
    mix = _ChunkedMix(signal, sample_rate=sample_rate, ceiling=ceiling, memo=memo)
    loudness = mix.loudness()
    if not math.isfinite(loudness):
        mix.keep(None)
        return 0.0
    plain = (target_lufs - loudness) / GAIN_STEP_DB
    top = round(plain + MAX_MAKEUP_DB / GAIN_STEP_DB)
    hint = mix.hint()
    start = round(plain) if hint is None else hint
    tenths = _grid_search(mix.loudness, start=start, target=target_lufs, top=top)
    mix.keep(tenths)
    return round(tenths * GAIN_STEP_DB, 6)
