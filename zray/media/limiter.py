"""True peak where it can matter, and a look-ahead true-peak limiter that acts locally.

True peak (BS.1770-4, annex 2) is the peak of the signal oversampled 4x. Oversampling a whole
episode was most of what limiting cost, yet most of an episode is far under its ceiling. Each
interpolated value is a weighted sum of the 21 nearest samples, weighted by one polyphase branch of
the interpolation filter, so it can exceed the largest of those samples by at most that branch's L1
norm (2.24, +7.0 dB). `TruePeaks` computes exact 4x values only where the samples nearby come within
that factor of the level asked about; everywhere else the true peak is provably under it. The values
it computes are those of oversampling the whole signal (scipy's `resample_poly`, the same filter),
bit for bit.

The limiter acts locally: its output at a sample depends only on input within `limiter_reach`
samples of it (no global trim, no running state), so a piece of a track limited with that much
context on each side comes out sample for sample as the whole track would. That is what lets the
final audio be limited, encoded and cached in chunks (see `zray.media.mastering`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

OVERSAMPLE = 4
# resample_poly's own filter for 4x: a Kaiser-windowed sinc (beta 5) of 2 * 10 * 4 + 1 taps, so each
# interpolated value depends on the 10 input samples either side of it and on no other. Built here
# as scipy's firwin builds it (to within 1e-17), so that the bound below costs no scipy import:
# a signal whose peaks are all under the level asked about is answered without it.
TRUE_PEAK_REACH = 10
_TAP_INDEX = np.arange(2 * TRUE_PEAK_REACH * OVERSAMPLE + 1) - TRUE_PEAK_REACH * OVERSAMPLE
_TAPS = np.sinc(_TAP_INDEX / OVERSAMPLE) * np.kaiser(_TAP_INDEX.size, 5.0)
_TAPS *= OVERSAMPLE / _TAPS.sum()
# The most any interpolated value can exceed its largest neighbour by, with room for rounding (the
# room also covers the taps' last digits: which blocks get oversampled, never a value, depends on it).
_OVERSHOOT = max(float(np.abs(_TAPS[phase::OVERSAMPLE]).sum()) for phase in range(OVERSAMPLE)) * 1.0001

# Gain ramps over 10 ms: fast enough to catch a plosive, slow enough not to distort a 100 Hz voice.
LOOKAHEAD_S = 0.010
# A gain curve reshapes the oversampled waveform a little, so a pass can leave a peak a hair over
# the ceiling; the next pass, acting only there, takes it back under. Three passes always sufficed.
_PASSES = 3
# Gains are summed as integers in units of 2**-32, so a box average is exact and the same wherever
# the window sits (a running float sum would depend on where it started).
_GAIN_UNIT = 1 << 32


# The bound is kept per block of 16 samples: a value's 21-sample reach lies within its own block
# and the two beside it, and whole blocks make few, long runs to oversample.
_BLOCK = 16


class TruePeaks:
    """Per-sample true peaks (max over channels and the 4 phases) of one (channels, n) signal,
    computed on demand and only where they could exceed the level asked about."""

    def __init__(self, audio: np.ndarray) -> None:
        self._audio = np.ascontiguousarray(audio, dtype=np.float32)
        if self._audio.ndim != 2:
            raise ValueError(f"audio must be shaped (channels, n_samples), got shape {self._audio.shape}")
        n = self._audio.shape[1]
        blocks = -(-n // _BLOCK)
        magnitude = np.zeros(blocks * _BLOCK, dtype=np.float32)
        if self._audio.shape[0]:
            np.abs(self._audio).max(axis=0, out=magnitude[:n])
        self._block_max = magnitude.reshape(blocks, _BLOCK).max(axis=1)
        self._bound = np.zeros(blocks)
        self._bound_blocks(np.arange(blocks))
        self._peaks = np.zeros(blocks * _BLOCK, dtype=np.float32)
        self._known = np.zeros(blocks, dtype=bool)

    def _bound_blocks(self, blocks: np.ndarray) -> None:
        # No interpolated value in a block can exceed its bound: the largest sample in it or in the
        # blocks either side, times the overshoot.
        block_max = np.concatenate([[0.0], self._block_max, [0.0]])
        nearby = np.maximum(np.maximum(block_max[blocks], block_max[blocks + 1]), block_max[blocks + 2])
        self._bound[blocks] = nearby * _OVERSHOOT

    @property
    def samples(self) -> int:
        return self._audio.shape[1]

    def over(self, level: float) -> tuple[np.ndarray, np.ndarray]:
        """Indices of the samples whose true peak exceeds level (> 0), and those true peaks."""
        blocks = np.flatnonzero(self._bound > level)
        missing = blocks[~self._known[blocks]]
        if missing.size:
            self._compute(missing)
        index = (blocks[:, np.newaxis] * _BLOCK + np.arange(_BLOCK)).ravel()
        peaks = self._peaks[index]
        keep = peaks > level
        return index[keep], peaks[keep]

    def maximum(self) -> float:
        """The largest true peak (0.0 for silence)."""
        largest = float(self._block_max.max()) if self._block_max.size else 0.0
        if largest <= 0:
            return 0.0
        # The phase that falls on a sample reproduces it (times 1.0006), so the maximum is at least
        # the largest sample: only samples near it need oversampling.
        _, peaks = self.over(0.99 * largest)
        return float(peaks.max()) if peaks.size else largest

    def changed(self, spans: Sequence[tuple[int, int]]) -> None:
        """Forget what the signal's in-place change over these [start, stop) spans invalidated:
        the true peaks within reach of a changed sample, and the bounds of their blocks."""
        n, blocks = self._audio.shape[1], self._known.size
        edges = np.zeros(blocks + 1, dtype=np.int64)
        for start, stop in spans:
            edges[max(0, start - TRUE_PEAK_REACH) // _BLOCK] += 1
            edges[min(blocks, (min(n, stop + TRUE_PEAK_REACH) - 1) // _BLOCK + 1)] -= 1
        dirty = np.flatnonzero(np.cumsum(edges[:-1]) > 0)
        if not dirty.size:
            return
        index = (dirty[:, np.newaxis] * _BLOCK + np.arange(_BLOCK)).ravel()
        magnitude = np.abs(np.take(self._audio, np.minimum(index, n - 1), axis=1)).max(axis=0)
        magnitude[index >= n] = 0.0
        self._block_max[dirty] = magnitude.reshape(-1, _BLOCK).max(axis=1)
        near = np.zeros(blocks + 2, dtype=bool)
        for shift in range(3):
            near[dirty + shift] = True
        self._bound_blocks(np.flatnonzero(near[1:-1]))
        self._known[dirty] = False

    def _compute(self, blocks: np.ndarray) -> None:
        """Oversample the runs of sorted `blocks`, each read with 10 samples of context either side,
        all in one resample_poly call: the runs are packed end to end, and a value inside a run
        only ever sees its own context, never the neighbouring run's."""
        from scipy.signal import resample_poly  # here: importing scipy.signal costs a second

        n = self._audio.shape[1]
        breaks = np.flatnonzero(np.diff(blocks) > 1)
        starts = blocks[np.r_[0, breaks + 1]] * _BLOCK
        stops = np.minimum((blocks[np.r_[breaks, blocks.size - 1]] + 1) * _BLOCK, n)
        lengths = stops - starts + 2 * TRUE_PEAK_REACH
        offsets = np.cumsum(lengths) - lengths
        position = np.arange(int(lengths.sum())) - np.repeat(offsets, lengths)
        source = np.repeat(starts - TRUE_PEAK_REACH, lengths) + position
        # Beyond the signal's ends resample_poly sees zeros; so does a packed run there.
        packed = np.take(self._audio, np.clip(source, 0, n - 1), axis=1)
        packed[:, (source < 0) | (source >= n)] = 0.0
        upsampled = np.abs(resample_poly(packed, OVERSAMPLE, 1, axis=1))
        per_sample = upsampled.max(axis=0).reshape(-1, OVERSAMPLE).max(axis=1)
        inner = (position >= TRUE_PEAK_REACH) & (position < np.repeat(lengths, lengths) - TRUE_PEAK_REACH)
        self._peaks[source[inner]] = per_sample[inner]
        self._known[blocks] = True


def true_peak_dbtp(audio: np.ndarray) -> float:
    """The true peak of a (channels, n) signal in dBTP (-inf for silence)."""
    peak = TruePeaks(audio).maximum()
    return 20 * float(np.log10(peak)) if peak > 0 else float("-inf")


@dataclass(frozen=True)
class GainCurve:
    """A limiter's gain: below 1 only at the sorted samples `index`, where it is `gains`."""

    index: np.ndarray
    gains: np.ndarray

    def __bool__(self) -> bool:
        return bool(self.index.size)

    def apply(self, audio: np.ndarray) -> None:
        """Multiply a float32 (channels, n) signal by the curve, in place."""
        audio[:, self.index] = (audio[:, self.index] * self.gains).astype(np.float32)

    def runs(self) -> list[tuple[int, int]]:
        """The [start, stop) runs of consecutive samples the curve changes."""
        breaks = np.flatnonzero(np.diff(self.index) > 1)
        starts = self.index[np.r_[0, breaks + 1]]
        stops = self.index[np.r_[breaks, self.index.size - 1]] + 1
        return list(zip(starts.tolist(), stops.tolist(), strict=True))

    def energy_change(self, weighted: np.ndarray, *, block: int, count: int) -> np.ndarray:
        """How the curve changes the summed square of `weighted` in each of `count` blocks of
        `block` samples, per channel: shape (channels, count)."""
        delta = np.square(weighted[:, self.index]) * (np.square(self.gains) - 1.0)
        blocks = self.index // block
        return np.stack([np.bincount(blocks, weights=row, minlength=count)[:count] for row in delta])


def _lookahead(sample_rate: int) -> tuple[int, int]:
    half = max(1, round(LOOKAHEAD_S * sample_rate))
    return half, half // 2


def limiter_reach(sample_rate: int) -> int:
    """How far (in samples) `limit`'s output at a sample can depend on input: context a chunk needs."""
    half, box = _lookahead(sample_rate)
    return _PASSES * (TRUE_PEAK_REACH + half + box)


def _sliding_min(values: np.ndarray, half: int) -> np.ndarray:
    """min(values[k - half : k + half + 1]) for every k, 1.0 beyond the ends (van Herk/Gil-Werman:
    minima run forward and backward within blocks of one window, so each output takes two)."""
    width, n = 2 * half + 1, values.size
    blocks = -(-(n + 2 * half) // width)
    padded = np.ones(blocks * width)
    padded[half : half + n] = values
    shaped = padded.reshape(blocks, width)
    forward = np.minimum.accumulate(shaped, axis=1).ravel()
    backward = np.minimum.accumulate(shaped[:, ::-1], axis=1)[:, ::-1].ravel()
    return np.minimum(backward[:n], forward[width - 1 : width - 1 + n])


def _curve(index: np.ndarray, needed: np.ndarray, *, samples: int, sample_rate: int) -> GainCurve:
    """The limiter gain for peaks at sorted `index` that need gains `needed` (< 1).

    Each peak's needed gain is spread over the look-ahead time either side (a sliding minimum),
    then smoothed by a box half as wide, which can only lower it, so every peak keeps at least its
    reduction and the gain ramps over the look-ahead time.

    Peaks whose ramps could meet form a group, computed on its own stretch of samples (from `reach`
    before its first peak to `reach` after its last); the stretches are laid end to end and
    filtered at once, which gives each the values it would have alone: no window of either filter
    reaches from one group's peaks into the next one's.
    """
    if not index.size:
        return GainCurve(np.zeros(0, dtype=np.int64), np.zeros(0))
    half, box = _lookahead(sample_rate)
    reach = half + 2 * box
    width = 2 * box + 1
    group_of = np.r_[0, np.cumsum(np.diff(index) > 2 * reach)]
    firsts = index[np.r_[0, np.flatnonzero(np.diff(group_of)) + 1]]
    lasts = index[np.r_[np.flatnonzero(np.diff(group_of)), index.size - 1]]
    lengths = lasts - firsts + 2 * reach + 1
    offsets = np.cumsum(lengths) - lengths
    # Stretch g covers samples firsts[g] - reach .. lasts[g] + reach, from laid-out position offsets[g].
    laid_out = offsets - (firsts - reach)
    dense = np.ones(int(lengths.sum()))
    dense[index + laid_out[group_of]] = needed
    units = np.floor(_sliding_min(dense, half) * _GAIN_UNIT).astype(np.int64)
    sums = np.concatenate([[0], np.cumsum(units)])
    # smoothed[k] averages the spread over laid-out positions k - box .. k + box.
    position = np.arange(box, dense.size - box)
    smoothed = (sums[position + box + 1] - sums[position - box]) / (width * _GAIN_UNIT)
    # Keep each stretch's positions whose whole box lies inside it, and only gains below 1.
    group = np.searchsorted(offsets, position, side="right") - 1
    inside = (position - offsets[group] >= box) & (position - offsets[group] < lengths[group] - box)
    sample = position - laid_out[group]
    keep = inside & (smoothed < 1.0) & (sample >= 0) & (sample < samples)
    return GainCurve(sample[keep], smoothed[keep])


def gain_curve(peaks: TruePeaks, *, gain: float, ceiling: float, sample_rate: int) -> GainCurve:
    """The look-ahead limiter gain that keeps the true peaks of (signal * gain) under ceiling."""
    index, values = peaks.over(ceiling / gain)
    needed = ceiling / (values.astype(np.float64) * gain)
    return _curve(index, needed, samples=peaks.samples, sample_rate=sample_rate)


def limit(audio: np.ndarray, *, ceiling: float, sample_rate: int) -> np.ndarray:
    """A copy of a (channels, n) signal whose true peak is at most `ceiling` (linear), changed only
    near the peaks that were over it. Local: see `limiter_reach`.

    Each pass is a pass over the whole signal, but only where the last one changed it can a peak
    now be over, so only there are true peaks measured again.
    """
    out = np.array(audio, dtype=np.float32)
    peaks = TruePeaks(out)
    # Aimed a millionth (0.00001 dB) under the ceiling, so float32 rounding cannot carry a peak over.
    aim = ceiling * (1 - 1e-6)
    for _ in range(_PASSES):
        curve = gain_curve(peaks, gain=1.0, ceiling=aim, sample_rate=sample_rate)
        if not curve:
            break
        curve.apply(out)
        peaks.changed(curve.runs())
    return out
