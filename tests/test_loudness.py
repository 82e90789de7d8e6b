"""zray.media.loudness: BS.1770 integrated loudness as pyloudnorm measures it, and a gain, on a
0.1 dB grid, that reaches the target through the limiter, measured in chunks a memo keeps."""

from __future__ import annotations

import math

import numpy as np
import pyloudnorm
import pytest
from scipy.signal import resample_poly
from speech_like import speech_like

from zray.media.limiter import limit
from zray.media.loudness import (
    CHUNK_STEPS,
    GAIN_STEP_DB,
    MAX_MAKEUP_DB,
    ChunkLoudness,
    _grid_search,
    integrated_loudness,
    loudness_gain,
)

SR = 48_000
CEILING = 10 ** (-1.5 / 20)


def reference_loudness(audio: np.ndarray) -> float:
    return float(pyloudnorm.Meter(SR).integrated_loudness(audio.T.astype(np.float64)))


@pytest.mark.parametrize(
    "shape", [(1, SR), (2, 3 * SR + 1234), (2, 19_300), (5, 2 * SR)], ids=["mono", "stereo", "short", "5.0"]
)
def test_integrated_loudness_is_pyloudnorms(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(sum(shape))
    audio = speech_like(shape[1] / SR, seed=shape[1])[:1].repeat(shape[0], axis=0)
    audio *= rng.uniform(0.2, 1.0, (shape[0], 1)).astype(np.float32)
    assert integrated_loudness(audio, sample_rate=SR) == pytest.approx(reference_loudness(audio), abs=1e-6)


def test_silence_and_clips_under_one_block_have_no_loudness() -> None:
    assert integrated_loudness(np.zeros((2, SR), np.float32), sample_rate=SR) == -math.inf
    assert integrated_loudness(np.ones((2, 1000), np.float32), sample_rate=SR) == -math.inf
    assert (
        loudness_gain(np.zeros((2, SR), np.float32), sample_rate=SR, target_lufs=-14, ceiling=CEILING) == 0.0
    )


@pytest.mark.parametrize("scale", [0.02, 0.3, 1.0])
def test_the_gain_reaches_the_target_through_the_limiter(scale: float) -> None:
    audio = speech_like(20.0, seed=4) * np.float32(scale)
    gain_db = loudness_gain(audio, sample_rate=SR, target_lufs=-14.0, ceiling=CEILING)
    assert gain_db == pytest.approx(round(gain_db / GAIN_STEP_DB) * GAIN_STEP_DB, abs=1e-9)
    out = limit(audio * np.float32(10 ** (gain_db / 20)), ceiling=CEILING, sample_rate=SR)
    # Rounding moves it by at most 0.05 dB; the limiter's share is estimated, not ignored.
    assert reference_loudness(out) == pytest.approx(-14.0, abs=0.1)
    assert np.abs(resample_poly(out, 4, 1, axis=1)).max() <= CEILING
    plain = audio * np.float32(10 ** ((-14.0 - reference_loudness(audio)) / 20))
    assert np.abs(resample_poly(plain, 4, 1, axis=1)).max() > CEILING  # the limiter really had work


def test_a_small_edit_keeps_the_rounded_gain() -> None:
    audio = speech_like(30.0, seed=5)
    gain_db = loudness_gain(audio, sample_rate=SR, target_lufs=-14.0, ceiling=CEILING)
    edited = audio.copy()
    edited[:, 25 * SR] += np.float32(0.05)  # one sample, near the end
    assert loudness_gain(edited, sample_rate=SR, target_lufs=-14.0, ceiling=CEILING) == gain_db


def test_a_signal_of_little_but_peaks_stops_at_the_make_up_cap() -> None:
    audio = np.zeros((1, 4 * SR), np.float32)
    audio[0, :: SR // 10] = 0.5
    audio += np.random.default_rng(7).normal(0, 0.001, audio.shape).astype(np.float32)
    plain_db = -14.0 - integrated_loudness(audio, sample_rate=SR)
    gain_db = loudness_gain(audio, sample_rate=SR, target_lufs=-14.0, ceiling=CEILING)
    assert gain_db == pytest.approx(plain_db + MAX_MAKEUP_DB, abs=GAIN_STEP_DB / 2 + 1e-9)


class DictMemo:
    """A LoudnessMemo in a dict, counting what each measure writes."""

    def __init__(self) -> None:
        self.data: dict[str, ChunkLoudness] = {}
        self.put_keys: list[str] = []

    def get(self, key: str) -> ChunkLoudness | None:
        return self.data.get(key)

    def put(self, key: str, value: ChunkLoudness) -> None:
        self.data[key] = value
        self.put_keys.append(key)


def test_chunk_measures_are_kept_and_an_edit_measures_only_the_chunks_from_it_on() -> None:
    audio = speech_like(4 * CHUNK_STEPS * 0.1 + 3.0, seed=12)  # four whole chunks and a part
    memo = DictMemo()
    gain_db = loudness_gain(audio, sample_rate=SR, target_lufs=-14.0, ceiling=CEILING, memo=memo)
    assert gain_db == loudness_gain(audio, sample_rate=SR, target_lufs=-14.0, ceiling=CEILING)
    assert len(memo.put_keys) == 5

    memo.put_keys.clear()  # unchanged: every measure is found, at the gains tried before
    assert loudness_gain(audio, sample_rate=SR, target_lufs=-14.0, ceiling=CEILING, memo=memo) == gain_db
    assert memo.put_keys == []

    edited = audio.copy()
    edited[:, round(2.5 * CHUNK_STEPS * 0.1 * SR) :] *= np.float32(0.999)  # from the third chunk's middle
    fresh = loudness_gain(edited, sample_rate=SR, target_lufs=-14.0, ceiling=CEILING, memo=DictMemo())
    again = loudness_gain(edited, sample_rate=SR, target_lufs=-14.0, ceiling=CEILING, memo=memo)
    assert again == fresh == gain_db
    # Measured again: the third chunk and those after it (the filter's state carries the edit on);
    # the first two are kept, at every gain the search tried.
    assert len(memo.put_keys) == 3


@pytest.mark.parametrize("start", [-40, 0, 37, 80, 200])
def test_the_grid_search_finds_the_closest_gain_wherever_it_starts(start: int) -> None:
    def measure(tenths: int) -> float:  # the limiter flattens the rise above 3 dB
        gain_db = tenths / 10
        return -20.0 + gain_db if gain_db < 3 else -17.0 + 0.35 * (gain_db - 3)

    best = min(range(-100, 150), key=lambda t: (abs(measure(t) - -14.3), t))
    assert _grid_search(measure, start=start, target=-14.3, top=150) == best
    assert _grid_search(measure, start=start, target=-14.3, top=60) == 60  # the make-up cap
