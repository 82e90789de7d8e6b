"""zray.media.mastering: the final audio, limited and encoded in cached AAC chunks, measured in the
MP4 it ends up in (ffmpeg's ebur128 through PyAV) and decoded by PyAV."""

from __future__ import annotations

from pathlib import Path

import av
import av.logging
import numpy as np
import pytest
from PIL import Image
from speech_like import speech_like

from zray.media import mastering
from zray.media.constants import AAC_FRAME
from zray.media.levels import AudioError
from zray.media.limiter import limit
from zray.media.mastering import EncodedTrack, MemoryCache, encode_track
from zray.media.video import Segment, VideoError, VideoSettings, aac, assemble, encode_still, probe
from zray.media.video.probing import audio_levels

SR, FPS = 48_000, 24
TARGET, PEAK = -14.0, -1.0
SETTINGS = VideoSettings(width=64, height=48, fps=FPS, gop=8)
# 200 AAC frames (4.3 s) a chunk, so a 22-second track makes six.
CHUNK_FRAMES = 200


@pytest.fixture(autouse=True)
def short_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mastering, "CHUNK_FRAMES", CHUNK_FRAMES)


@pytest.fixture(scope="module")
def track() -> np.ndarray:
    frames = 22 * FPS
    return speech_like(frames / FPS, seed=11)


@pytest.fixture(scope="module")
def still(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("still") / "black.h264"
    encode_still(Image.new("RGB", (64, 48)), path, settings=SETTINGS, threads=1)
    return path


def master(audio: np.ndarray, cache: MemoryCache, **options: float) -> EncodedTrack:
    levels = {"target_lufs": TARGET, "peak_dbfs": PEAK, **options}
    return encode_track(audio, sample_rate=SR, cache=cache, workers=2, **levels)  # type: ignore[arg-type]


def mux(encoded: EncodedTrack, still: Path, dest: Path) -> Path:
    frames = encoded.audio.samples * FPS // SR
    assemble([Segment(str(still), frames)], encoded.audio, dest, settings=SETTINGS)
    return dest


def chunk_keys(cache: MemoryCache) -> list[str]:
    return sorted(key for key in cache.data if key.startswith("aac-"))


def decode_cleanly(path: Path) -> np.ndarray:
    """All of the MP4's audio, decoded with any decoder warning or error failing the test."""
    previous = av.logging.get_level()
    av.logging.set_level(av.logging.WARNING)
    try:
        with av.logging.Capture(local=False) as logs, av.open(str(path)) as container:
            decoded = np.concatenate([frame.to_ndarray() for frame in container.decode(audio=0)], axis=1)
    finally:
        av.logging.set_level(previous)
    assert logs == []
    return decoded


def test_cached_and_fresh_chunks_join_into_one_clean_track_as_long_as_the_video(
    track: np.ndarray, still: Path, tmp_path: Path
) -> None:
    cache = MemoryCache()
    first = master(track, cache)
    chunks = -(-track.shape[1] // (CHUNK_FRAMES * AAC_FRAME))
    assert (first.chunks_encoded, first.chunks_reused, first.gain_reused) == (chunks, 0, False)
    keys = chunk_keys(cache)
    assert len(keys) == chunks
    for key in keys[1::2]:  # every other chunk is lost: those are encoded again, the rest reused
        del cache.data[key]
    second = master(track, cache)
    assert (second.chunks_encoded, second.chunks_reused, second.gain_reused) == (
        chunks // 2,
        chunks - chunks // 2,
        True,
    )
    assert second.audio == first.audio  # an encode is deterministic: fresh chunks are the cached ones

    path = mux(second, still, tmp_path / "joined.mp4")
    info = probe(path)
    assert info.frames == track.shape[1] * FPS // SR
    assert info.audio_duration == pytest.approx(info.video_duration, abs=1e-3)
    decoded = decode_cleanly(path)
    assert 0 <= decoded.shape[1] - track.shape[1] < AAC_FRAME  # the last AAC frame is whole

    # Nothing lost or doubled at a seam: every 85 ms of the decoded audio follows the mastered PCM.
    reference = limit(
        track * np.float32(10 ** (second.gain_db / 20)),
        ceiling=10 ** ((PEAK - mastering.AAC_HEADROOM_DB) / 20),
        sample_rate=SR,
    )
    block = 4096
    usable = track.shape[1] // block * block
    error = (decoded[:, :usable] - reference[:, :usable]).reshape(2, -1, block)
    level = reference[:, :usable].reshape(2, -1, block)
    loud = np.sqrt((level**2).mean(axis=(0, 2))) > 0.01
    relative = np.sqrt((error**2).mean(axis=(0, 2)))[loud] / np.sqrt((level**2).mean(axis=(0, 2)))[loud]
    assert relative.max() < 0.3, "a block far from the mastered PCM: a frame lost or repeated at a seam"


def test_a_late_change_re_encodes_only_the_chunks_whose_windows_hold_it(track: np.ndarray) -> None:
    cache = MemoryCache()
    first = master(track, cache)
    before = set(chunk_keys(cache))
    grid = mastering._grid(track.shape[1], sample_rate=SR)
    # One sample just past the start of the fifth chunk: its window and the fourth's overrun hold it.
    changed = grid[4].start + 300
    holders = [chunk for chunk in grid if chunk.read_from <= changed < chunk.read_to]
    assert len(holders) == 2

    edited = track.copy()
    edited[:, changed] += np.float32(0.05)
    second = master(edited, cache)
    assert second.gain_db == first.gain_db and not second.gain_reused  # the mix changed; its gain did not
    assert (second.chunks_encoded, second.chunks_reused) == (len(holders), len(grid) - len(holders))
    assert len(set(chunk_keys(cache)) - before) == len(holders)
    # Up to the fourth chunk's splice the packets are the same; after the change they differ.
    unchanged = [p for p in first.audio.packets if p.pts < grid[3].start]
    assert list(second.audio.packets[: len(unchanged)]) == unchanged
    assert second.audio != first.audio

    # A change in the last chunk's own samples (beyond every other window) re-encodes that one only.
    edited[:, -1000] += np.float32(0.05)
    third = master(edited, cache)
    assert (third.chunks_encoded, third.chunks_reused) == (1, len(grid) - 1)


def test_the_mp4_meets_the_true_peak_ceiling_and_the_loudness_target(still: Path, tmp_path: Path) -> None:
    encoded = master(speech_like(12.0, seed=2), MemoryCache())
    levels = audio_levels(mux(encoded, still, tmp_path / "levels.mp4"))
    assert levels.true_peak_dbtp <= PEAK
    assert levels.integrated_lufs == pytest.approx(TARGET, abs=0.5)
    # The peak the encoder reports is the one ebur128 finds in the file.
    assert encoded.true_peak_dbtp == pytest.approx(levels.true_peak_dbtp, abs=0.05)


def test_bright_material_that_the_encode_overshoots_is_limited_again(still: Path, tmp_path: Path) -> None:
    # Full-band and clipped, unlike any TTS voice: the AAC encode overshoots it by about 2 dB.
    audio = speech_like(12.0, seed=2, bright=True)
    encoded = master(audio, MemoryCache())
    levels = audio_levels(mux(encoded, still, tmp_path / "bright.mp4"))
    assert levels.true_peak_dbtp <= PEAK
    # Its chunks were limited again, lower, which costs loudness the gain search could not foresee.
    assert levels.integrated_lufs == pytest.approx(TARGET, abs=1.5)
    # Limited to the ceiling and encoded as before, without the headroom, it goes over.
    gained = audio * np.float32(10 ** (encoded.gain_db / 20))
    plain = aac.encode_audio(limit(gained, ceiling=10 ** (PEAK / 20), sample_rate=SR), SR, workers=1)
    overshoot = tmp_path / "plain.mp4"
    assemble([Segment(str(still), plain.samples * FPS // SR)], plain, overshoot, settings=SETTINGS)
    assert audio_levels(overshoot).true_peak_dbtp > PEAK + 1.0


def test_the_plan_of_extra_limiting_is_kept_and_rebuilt_from_cached_chunks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    audio = speech_like(12.0, seed=2, bright=True)
    cache = MemoryCache()
    first = master(audio, cache)
    (plan_key,) = [key for key in cache.data if key.startswith("plan-")]
    assert len(chunk_keys(cache)) > 3  # some chunks needed a second, lower encode

    checks = []
    real_check = mastering._check_stream
    monkeypatch.setattr(mastering, "_check_stream", lambda *a, **k: checks.append(1) or real_check(*a, **k))
    again = master(audio, cache)  # the plan names the stream: nothing is decoded or encoded
    assert (again.chunks_encoded, checks, again.audio, again.true_peak_dbtp) == (
        0,
        [],
        first.audio,
        first.true_peak_dbtp,
    )
    del cache.data[plan_key]  # without it the stream is checked again, from chunks already stored
    rebuilt = master(audio, cache)
    assert rebuilt.chunks_encoded == 0 and len(checks) >= 2 and rebuilt.audio == first.audio


def test_other_levels_are_honoured(still: Path, tmp_path: Path) -> None:
    encoded = master(speech_like(12.0, seed=8), MemoryCache(), target_lufs=-23.0, peak_dbfs=-3.0)
    levels = audio_levels(mux(encoded, still, tmp_path / "ebu.mp4"))
    assert levels.true_peak_dbtp <= -3.0
    assert levels.integrated_lufs == pytest.approx(-23.0, abs=0.5)


def test_a_damaged_record_is_encoded_again_and_never_muxed(track: np.ndarray) -> None:
    cache = MemoryCache()
    first = master(track, cache)
    keys = chunk_keys(cache)
    flipped = bytearray(cache.data[keys[2]])
    flipped[-10] ^= 0xFF  # a bit of one packet
    cache.data[keys[2]] = bytes(flipped)
    cache.data[keys[4]] = cache.data[keys[4]][:100]  # a write cut short
    cache.data[keys[0]] = cache.data[keys[1]]  # another chunk's record under this key
    gain_key = next(key for key in cache.data if key.startswith("gain-"))
    cache.data[gain_key] = b"garbage"

    second = master(track, cache)
    assert (second.chunks_encoded, second.gain_reused) == (3, False)
    assert second.audio == first.audio and second.gain_db == first.gain_db
    third = master(track, cache)  # the replaced records are sound again
    assert (third.chunks_encoded, third.gain_reused) == (0, True)


def test_an_unchanged_mix_does_no_loudness_or_limiter_work(
    track: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = MemoryCache()
    first = master(track, cache)

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("a rerun of an unchanged mix measured or limited it again")

    monkeypatch.setattr(mastering, "loudness_gain", forbidden)
    monkeypatch.setattr(mastering, "limit", forbidden)
    again = master(track, cache)
    assert (again.chunks_encoded, again.gain_reused, again.audio) == (0, True, first.audio)


def test_mono_is_mastered_as_stereo_and_a_short_track_is_one_chunk() -> None:
    mono = speech_like(1.5, seed=9)[:1]
    encoded = master(mono, MemoryCache())
    assert (encoded.chunks_encoded, encoded.audio.samples) == (1, mono.shape[1])
    decoded = aac.decode(list(encoded.audio.packets), sample_rate=SR)[:, AAC_FRAME:]
    # The same on both channels, to within the codec's noise (about -40 dB here).
    difference = np.sqrt(np.mean((decoded[0] - decoded[1]) ** 2))
    assert decoded.shape[0] == 2 and difference < 0.02 * np.sqrt(np.mean(decoded[0] ** 2))


@pytest.mark.parametrize(
    ("audio", "options", "named"),
    [
        (np.zeros((3, 1000), np.float32), {}, "1 or 2 channels"),
        (np.zeros((2, 0), np.float32), {}, "at least one sample"),
        (np.full((2, 1000), np.nan, np.float32), {}, "NaN"),
        (np.zeros((2, 1000), np.float32), {"target_lufs": 3.0}, "target_lufs 3"),
        (np.zeros((2, 1000), np.float32), {"peak_dbfs": 0.5}, "peak_dbfs 0.5"),
    ],
)
def test_bad_input_raises_audio_error_naming_it(audio: np.ndarray, options: dict, named: str) -> None:
    with pytest.raises(AudioError, match=named):
        master(audio, MemoryCache(), **options)


def test_assemble_refuses_encoded_audio_of_another_length(
    track: np.ndarray, still: Path, tmp_path: Path
) -> None:
    encoded = master(track[:, : 2 * SR], MemoryCache())
    with pytest.raises(
        VideoError, match=r"encoded audio holds 96000 samples.*49 frames at 24 fps need 98000"
    ):
        assemble([Segment(str(still), 49)], encoded.audio, tmp_path / "x.mp4", settings=SETTINGS)
