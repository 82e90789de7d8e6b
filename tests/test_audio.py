"""Tests for zray.media.audio: real files through PyAV, exact frame arithmetic, and measured audio levels."""

from __future__ import annotations

import io
import math
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pyloudnorm
import pytest
import soundfile
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.signal import lfilter, resample_poly

from zray.media.audio import (
    SAMPLE_RATE,
    AudioError,
    apply_fades,
    audio_duration,
    decode_audio,
    duck_envelope,
    loop_to_length,
    mix_music,
    normalize_loudness,
    pad_to_frames,
    samples_per_frame,
    target_frames,
    write_wav,
)

SR = SAMPLE_RATE
# Hypothesis' default per-example deadline is a wall-clock limit; the machine is shared, so none.
# No example database: nothing is written into the repository.
PROPERTY = settings(deadline=None, max_examples=150, database=None)


def sine(freq: float, seconds: float, *, sample_rate: int = SR, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)[None, :]


def noise(seconds: float, *, channels: int = 1, amplitude: float = 0.2, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (amplitude * rng.standard_normal((channels, round(seconds * SR)))).astype(np.float32)


def peak_frequency(samples: np.ndarray, *, sample_rate: int = SR) -> float:
    spectrum = np.abs(np.fft.rfft(samples[0] * np.hanning(samples.shape[1])))
    return float(np.argmax(spectrum) * sample_rate / samples.shape[1])


def window_rms_db(samples: np.ndarray, window: int) -> np.ndarray:
    usable = samples.shape[1] // window * window
    blocks = samples[:, :usable].reshape(samples.shape[0], -1, window)
    return 10 * np.log10(np.mean(np.square(blocks, dtype=np.float64), axis=(0, 2)))


def true_peak_db(samples: np.ndarray) -> float:
    return float(20 * np.log10(np.abs(resample_poly(samples, 4, 1, axis=1)).max()))


def lufs(samples: np.ndarray) -> float:
    return float(pyloudnorm.Meter(SR).integrated_loudness(samples.T.astype(np.float64)))


def encode_with_pyav(path: Path, samples: np.ndarray, *, codec: str, sample_rate: int) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=sample_rate, layout="mono")
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate = sample_rate
        frame.pts = 0
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def write_mp4(path: Path, audio: np.ndarray | None, *, sample_rate: int = 44_100) -> None:
    """A one-second 64x64 H.264 clip, with an AAC track when ``audio`` is given (like an intro clip)."""
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=24)
        video.width = video.height = 64
        video.pix_fmt = "yuv420p"
        sound = container.add_stream("aac", rate=sample_rate, layout="mono") if audio is not None else None
        for index in range(24):
            picture = av.VideoFrame.from_ndarray(np.full((64, 64, 3), index * 10, np.uint8), format="rgb24")
            picture.pts = index
            for packet in video.encode(picture):
                container.mux(packet)
        for packet in video.encode(None):
            container.mux(packet)
        if sound is not None and audio is not None:
            for start in range(0, audio.shape[1], 1024):
                frame = av.AudioFrame.from_ndarray(
                    audio[:, start : start + 1024].copy(), format="fltp", layout="mono"
                )
                frame.sample_rate = sample_rate
                frame.pts = start
                for packet in sound.encode(frame):
                    container.mux(packet)
            for packet in sound.encode(None):
                container.mux(packet)


# --- decoding ---------------------------------------------------------------------------------------------

RATES = [22_050, 24_000, 44_100]


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("kind", ["wav", "flac", "ogg", "mp3"])
def test_decode_round_trip_resamples_to_48k_and_keeps_pitch_and_timing(
    tmp_path: Path, kind: str, rate: int
) -> None:
    source = sine(440, 0.5, sample_rate=rate)
    path = tmp_path / f"tone_{rate}.{kind}"
    if kind == "mp3":
        if "libmp3lame" not in av.codecs_available:
            pytest.skip("this PyAV build has no libmp3lame encoder to make an MP3 with")
        encode_with_pyav(path, source, codec="libmp3lame", sample_rate=rate)
    else:
        subtype = {"wav": "PCM_16", "flac": "PCM_16", "ogg": "VORBIS"}[kind]
        soundfile.write(path, source[0], rate, subtype=subtype)

    decoded = decode_audio(path)

    expected = source.shape[1] * SR / rate
    assert decoded.dtype == np.float32 and decoded.shape[0] == 1
    if kind == "ogg":
        # FFmpeg drops the final (first-packet-sized, <= 256 source samples) chunk of libsndfile's Ogg
        # Vorbis files: the start is exact, the end comes up short by at most that much.
        assert expected - 256 * SR / rate - 4 <= decoded.shape[1] <= expected + 4
    else:
        assert abs(decoded.shape[1] - expected) <= 4
    assert abs(peak_frequency(decoded) - 440) < 2.5
    # No time shift: the decoded tone lines up with the ideal 48 kHz tone (best lag within one sample).
    ideal = sine(440, decoded.shape[1] / SR)[0]
    middle = slice(2000, decoded.shape[1] - 2000)
    lags = range(-50, 51)
    errors = [np.abs(decoded[0, middle] - np.roll(ideal, lag)[middle]).mean() for lag in lags]
    assert abs(lags[int(np.argmin(errors))]) <= 1
    # LAME's output here sits a steady 0.45 dB low; the lossless formats must keep the level exactly.
    level = np.sqrt(np.mean(decoded[0, middle] ** 2))
    assert level == pytest.approx(0.5 / np.sqrt(2), rel=0.1 if kind == "mp3" else 0.02)


def test_decode_mixes_channels(tmp_path: Path) -> None:
    left, right = sine(440, 0.25, amplitude=0.4), sine(440, 0.25, amplitude=0.2)
    stereo_path, mono_path = tmp_path / "stereo.wav", tmp_path / "mono.wav"
    soundfile.write(stereo_path, np.concatenate([left, right]).T, SR, subtype="FLOAT")
    soundfile.write(mono_path, left[0], SR, subtype="FLOAT")

    np.testing.assert_allclose(
        decode_audio(stereo_path, channels=2), np.concatenate([left, right]), atol=1e-6
    )
    np.testing.assert_allclose(decode_audio(stereo_path, channels=1), (left + right) / 2, atol=1e-6)
    # Mono is duplicated at full level (swresample alone would give two channels at -3 dB).
    np.testing.assert_allclose(decode_audio(mono_path, channels=2), np.concatenate([left, left]), atol=1e-6)


def test_decode_reads_file_objects(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    soundfile.write(buffer, sine(440, 0.25, sample_rate=24_000)[0], 24_000, format="WAV")
    buffer.seek(0)
    decoded = decode_audio(buffer)
    assert decoded.shape == (1, 12_000)
    assert abs(peak_frequency(decoded) - 440) < 4


@pytest.mark.parametrize(("stored", "wanted"), [(1, 1), (1, 2), (2, 1), (2, 2)])
def test_the_pipelines_own_wavs_are_read_to_the_floats_pyav_decodes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stored: int, wanted: int
) -> None:
    samples = np.random.default_rng(stored).uniform(-1.2, 1.2, (stored, 30_000)).astype(np.float32)
    samples[:, :4] = [-1.0, 1.0, 2**-15, -(2**-15)]  # the ends of the scale and its last step
    path = tmp_path / "pad.wav"
    write_wav(path, samples)
    with path.open("rb") as handle:  # a file object always goes through PyAV
        through_pyav = decode_audio(handle, channels=wanted)

    def no_pyav(*args: object, **kwargs: object) -> None:
        raise AssertionError("a 16-bit WAV at the pipeline's rate went through PyAV")

    monkeypatch.setattr(av, "open", no_pyav)
    read = decode_audio(path, channels=wanted)
    assert read.dtype == np.float32 and read.flags.c_contiguous
    assert np.array_equal(read, through_pyav)


def test_decode_takes_the_audio_track_of_an_mp4(tmp_path: Path) -> None:
    path = tmp_path / "intro.mp4"
    write_mp4(path, sine(440, 1.0, sample_rate=44_100))

    decoded = decode_audio(path, channels=2)

    assert decoded.shape[0] == 2
    # AAC codes whole 1024-sample frames, so the end may carry up to two frames of encoder padding.
    assert SR - 4 <= decoded.shape[1] <= SR + 2 * 1024 * SR / 44_100 + 4
    assert abs(peak_frequency(decoded) - 440) < 2


def test_decode_without_audio_stream_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "silent_intro.mp4"
    write_mp4(path, None)
    with pytest.raises(AudioError, match=r"silent_intro\.mp4.*no audio stream"):
        decode_audio(path)


def test_decode_rejects_non_audio_and_missing_files_naming_them(tmp_path: Path) -> None:
    text = tmp_path / "episode_notes.txt"
    text.write_text("Scene 1: a lighthouse at dawn.\n" * 20)
    with pytest.raises(AudioError, match=r"episode_notes\.txt"):
        decode_audio(text)
    with pytest.raises(AudioError, match=r"no_such_take\.wav"):
        decode_audio(tmp_path / "no_such_take.wav")
    with pytest.raises(AudioError, match=r"garbage\.bin"):
        decode_audio(_named_bytes(b"\x00\x13garbage" * 500, "garbage.bin"))


def _named_bytes(data: bytes, name: str) -> io.BytesIO:
    buffer = io.BytesIO(data)
    buffer.name = name
    return buffer


# --- writing and durations ----------------------------------------------------------------------------------


def test_write_wav_is_16_bit_clipped_and_leaves_no_temp_files(tmp_path: Path) -> None:
    samples = np.array([[0.5, 1.5, -2.0, -0.25], [0.0, 0.1, 0.2, 0.3]], dtype=np.float32)
    path = tmp_path / "mix.wav"
    path.write_bytes(b"stale")  # an old file is replaced whole

    write_wav(path, samples, sample_rate=24_000)

    info = soundfile.info(path)
    assert (info.subtype, info.samplerate, info.channels, info.frames) == ("PCM_16", 24_000, 2, 4)
    back, _ = soundfile.read(path, dtype="float32")
    np.testing.assert_allclose(back.T, np.clip(samples, -1, 1), atol=1 / 32768)
    assert [p.name for p in tmp_path.iterdir()] == ["mix.wav"]

    buffer = io.BytesIO()
    write_wav(buffer, samples[:1])
    buffer.seek(0)
    assert soundfile.info(buffer).channels == 1


def test_audio_duration_and_shape_errors() -> None:
    assert audio_duration(np.zeros((2, 72_000), np.float32)) == 1.5
    assert audio_duration(np.zeros((1, 2000), np.float32), sample_rate=24_000) == pytest.approx(1 / 12)
    with pytest.raises(AudioError, match=r"\(channels, n_samples\).*\(480,\)"):
        pad_to_frames(np.zeros(480, np.float32))


# --- frame arithmetic ---------------------------------------------------------------------------------------

INTEGER_RATE_FPS = [
    (rate, fps)
    for rate in (8_000, 16_000, 22_050, 24_000, 32_000, 44_100, 48_000, 96_000)
    for fps in (24, 25, 30, 50, 60)
    if rate % fps == 0
]


def test_samples_per_frame() -> None:
    assert samples_per_frame(sample_rate=48_000, fps=24) == 2000
    assert samples_per_frame(sample_rate=44_100, fps=25) == 1764
    with pytest.raises(ValueError, match=r"44100.*24"):
        samples_per_frame(sample_rate=44_100, fps=24)


def test_target_frames_exact_edges() -> None:
    assert target_frames(2000) == 2  # exactly one frame of audio: no float round-up to 2 + 1
    assert target_frames(1999) == 2
    assert target_frames(2001) == 3
    assert target_frames(0) == 1
    assert target_frames(48_000 * 7) == 7 * 24 + 1
    # Where float math lands a hair above a whole frame (49600 / 48000 * 30 = 31.000000000000004).
    assert target_frames(49_600, sample_rate=48_000, fps=30) == 32
    assert target_frames(13_440, sample_rate=48_000, fps=25) == 8
    with pytest.raises(ValueError, match="-1"):
        target_frames(-1)


@PROPERTY
@given(
    n=st.integers(0, 10**9),
    rate=st.integers(1, 200_000),
    fps=st.integers(1, 240),
    on_boundary=st.booleans(),
    nudge=st.integers(-1, 1),
)
def test_target_frames_matches_exact_rational_rule(
    n: int, rate: int, fps: int, on_boundary: bool, nudge: int
) -> None:
    if on_boundary:  # land on (or one sample beside) an exact frame edge, where float error bites
        n = max(0, (n % 100_000) * (rate // math.gcd(rate, fps)) + nudge)
    duration = Fraction(n, rate)
    exact = -(-duration.numerator * fps // duration.denominator) + 1  # ceil(duration * fps) + 1
    assert target_frames(n, sample_rate=rate, fps=fps) == exact


@PROPERTY
@given(
    rate_fps=st.sampled_from(INTEGER_RATE_FPS),
    n=st.integers(0, 30_000),
    channels=st.integers(1, 2),
    seed=st.integers(0, 2**32 - 1),
)
def test_pad_to_frames_properties(rate_fps: tuple[int, int], n: int, channels: int, seed: int) -> None:
    rate, fps = rate_fps
    audio = np.random.default_rng(seed).uniform(-1, 1, (channels, n)).astype(np.float32)

    padded = pad_to_frames(audio, sample_rate=rate, fps=fps)

    per_frame = rate // fps
    assert padded.shape[0] == channels
    assert padded.shape[1] % per_frame == 0
    assert padded.shape[1] >= n
    np.testing.assert_array_equal(padded[:, :n], audio)
    assert not padded[:, n:].any()
    frames = Fraction(n, rate) * fps
    assert padded.shape[1] // per_frame == -(-frames.numerator // frames.denominator) + 1


# --- fades --------------------------------------------------------------------------------------------------


def test_fades_shape_the_ends_and_leave_the_input_alone() -> None:
    audio = np.ones((2, SR), np.float32)

    out = apply_fades(audio)

    assert np.all(audio == 1.0)  # new array
    assert out.shape == audio.shape
    assert np.all(out[:, 0] == 0.0)
    fade_in_end = round(0.020 * SR)
    assert np.all(np.diff(out[0, :fade_in_end]) > 0)
    assert np.all(out[:, fade_in_end - 1 : SR - round(0.050 * SR) + 1] == 1.0)  # full level from 20 ms
    assert np.all(np.diff(out[0, SR - round(0.050 * SR) :]) < 0)
    assert np.all(np.abs(out[:, -1]) < 1e-6)


def test_fades_keep_their_slope_on_a_clip_shorter_than_the_fades() -> None:
    out = apply_fades(np.ones((1, 100), np.float32))
    slope_in = np.arange(100) / (round(0.020 * SR) - 1)
    slope_out = np.arange(99, -1, -1) / (round(0.050 * SR) - 1)
    np.testing.assert_allclose(out[0], np.minimum(slope_in, slope_out), atol=1e-6)
    assert out[0, 0] == 0.0 and out[0, -1] == 0.0
    assert apply_fades(np.ones((1, 1), np.float32))[0, 0] == 0.0


@PROPERTY
@given(
    n=st.integers(0, 4000),
    fade_in=st.floats(0, 0.1),
    fade_out=st.floats(0, 0.1),
)
def test_fades_on_short_clips_never_crash_or_amplify(n: int, fade_in: float, fade_out: float) -> None:
    audio = np.full((1, n), 0.7, np.float32)
    out = apply_fades(audio, fade_in=fade_in, fade_out=fade_out)
    assert out.shape == (1, n)
    assert np.all(np.abs(out) <= 0.7 + 1e-7)
    if n and round(fade_in * SR) > 1:
        assert out[0, 0] == 0.0
    if n and round(fade_out * SR) > 1:
        assert abs(out[0, -1]) < 1e-7


# --- looping ------------------------------------------------------------------------------------------------


@PROPERTY
@given(
    length=st.integers(1, 3000),
    n=st.integers(0, 20_000),
    channels=st.integers(1, 2),
    crossfade=st.floats(0, 3.0),
)
def test_loop_to_length_is_exact(length: int, n: int, channels: int, crossfade: float) -> None:
    track = np.random.default_rng(length).uniform(-0.5, 0.5, (channels, length)).astype(np.float32)
    out = loop_to_length(track, n, sample_rate=1000, crossfade=crossfade)
    assert out.shape == (channels, n)
    assert out.dtype == np.float32
    assert np.all(np.isfinite(out))
    start = min(n, length // 2, max(0, n - 50))  # the first copy plays untouched up to the end fade
    np.testing.assert_array_equal(out[:, :start], track[:, :start])


def test_loop_of_a_longer_track_is_a_cut_with_a_fade_out() -> None:
    track = noise(3.0)
    out = loop_to_length(track, SR)
    fade = round(0.050 * SR)
    np.testing.assert_array_equal(out[:, : SR - fade], track[:, : SR - fade])
    assert np.all(np.abs(out[:, SR - fade :]) <= np.abs(track[:, SR - fade : SR]) + 1e-7)
    assert abs(out[0, -1]) < 1e-3
    np.testing.assert_array_equal(loop_to_length(track, track.shape[1]), track)


def _dip_db(looped: np.ndarray, *, window: int) -> float:
    """Largest drop of short-window level below the median, ignoring the final fade-out."""
    level = window_rms_db(looped[:, : -round(0.1 * SR)], window)
    return float(np.median(level) - level.min())


def test_loop_of_noise_has_no_level_dip_at_loop_points() -> None:
    track = noise(3.0, channels=2, seed=1)
    looped = loop_to_length(track, 10 * SR, crossfade=2.0)
    assert looped.shape == (2, 10 * SR)
    assert _dip_db(looped, window=2400) < 1.5

    # The measurement can fail: a linear crossfade of the same noise dips about 3 dB mid-fade.
    fade = 2 * SR
    ramp = np.linspace(0, 1, fade, dtype=np.float32)
    linear = np.concatenate(
        [track[:, :-fade], track[:, -fade:] * (1 - ramp) + track[:, :fade] * ramp, track[:, fade:]], axis=1
    )
    assert _dip_db(linear, window=2400) > 2.0


def test_loop_of_a_quarter_period_offset_tone_keeps_constant_level() -> None:
    # 100 Hz = 480 samples a period; the loop seam falls a quarter period out of phase (90 degrees),
    # where equal-power curves sum to exactly constant power and linear ones lose 3 dB.
    overlap = SR
    track = sine(100, (overlap + 100 * 480 + 120) / SR)
    looped = loop_to_length(track, 6 * SR, crossfade=1.0)
    assert _dip_db(looped, window=480) < 0.1
    assert np.max(np.abs(looped[:, : 5 * SR])) < 0.5 * 1.05


def test_loop_seam_does_not_click() -> None:
    track = sine(100, 1.0037)  # the track does not end on a whole period
    looped = loop_to_length(track, 5 * SR, crossfade=0.5)
    steady_jump = np.abs(np.diff(track[0])).max()
    assert np.abs(np.diff(looped[0])).max() <= 1.5 * steady_jump
    # A plain repeat of the same track jumps tens of times further at each seam.
    assert np.abs(np.diff(np.tile(track, 5)[0])).max() > 20 * steady_jump


def test_loop_of_a_short_track_shrinks_the_crossfade() -> None:
    track = noise(0.5, seed=2)  # shorter than the 2 s crossfade
    looped = loop_to_length(track, 5 * SR)
    assert looped.shape == (1, 5 * SR)
    assert _dip_db(looped, window=2400) < 1.5
    with pytest.raises(AudioError, match="empty"):
        loop_to_length(np.zeros((1, 0), np.float32), 10)


# --- ducking and mixing -------------------------------------------------------------------------------------


def speech_then_silence() -> np.ndarray:
    """1 s silence, 2 s of noise at about -20 dBFS standing in for a voice, 2 s silence."""
    voice = np.zeros((1, 5 * SR), np.float32)
    voice[:, SR : 3 * SR] = noise(2.0, amplitude=0.1, seed=3)
    return voice


def test_duck_envelope_dips_under_the_voice_only() -> None:
    envelope = duck_envelope(speech_then_silence(), depth_db=6.0)
    assert envelope.shape == (5 * SR,)
    floor = 10 ** (-6 / 20)
    assert np.all(envelope[: int(0.9 * SR)] == 1.0)
    np.testing.assert_allclose(envelope[SR : 3 * SR], floor, rtol=1e-4)  # down before the first word
    assert np.all(envelope[int(3.5 * SR) :] == 1.0)  # back after the 0.4 s release
    assert np.all((envelope >= floor - 1e-6) & (envelope <= 1.0))
    assert np.all(duck_envelope(np.zeros((2, SR), np.float32)) == 1.0)


def test_mix_puts_music_at_8_percent_under_a_silent_voice() -> None:
    voice = np.zeros((1, 2 * SR), np.float32)
    music = noise(3.0, channels=2, seed=4)

    mixed = mix_music(voice, music)

    assert mixed.shape == (2, 2 * SR)
    fade = round(0.050 * SR)
    np.testing.assert_allclose(mixed[:, :-fade], 0.08 * music[:, : 2 * SR - fade], rtol=1e-6)
    rms = float(np.sqrt(np.mean(mixed**2)))
    music_rms = float(np.sqrt(np.mean(music[:, : 2 * SR] ** 2)))
    assert rms == pytest.approx(0.08 * music_rms, rel=0.02)


def test_mix_duplicates_a_mono_voice_and_loops_short_music() -> None:
    voice = sine(220, 3.0)
    mixed = mix_music(voice, np.zeros((1, SR), np.float32), channels=2)
    np.testing.assert_array_equal(mixed, np.concatenate([voice, voice]))

    looped = mix_music(np.zeros((1, 3 * SR), np.float32), noise(1.0), channels=1)
    assert looped.shape == (1, 3 * SR)
    assert np.sqrt(np.mean(looped[:, int(2.4 * SR) : int(2.6 * SR)] ** 2)) > 0.08 * 0.2 * 0.8


def test_mix_ducking_lowers_music_under_the_voice_and_not_in_silence() -> None:
    voice = speech_then_silence()
    music = noise(5.0, channels=2, seed=5)
    speech = np.concatenate([voice, voice])
    plain = mix_music(voice, music, duck=False) - speech
    ducked = mix_music(voice, music, duck=True) - speech

    def ratio_db(start: float, stop: float) -> float:
        part = slice(int(start * SR), int(stop * SR))
        return float(10 * np.log10(np.mean(ducked[:, part] ** 2) / np.mean(plain[:, part] ** 2)))

    assert ratio_db(1.1, 2.9) == pytest.approx(-6.0, abs=0.1)
    assert ratio_db(0.0, 0.8) == pytest.approx(0.0, abs=1e-6)
    assert ratio_db(3.6, 5.0) == pytest.approx(0.0, abs=1e-6)


# --- loudness -----------------------------------------------------------------------------------------------


def modulated_noise(*, channels: int, scale: float, seed: int = 6) -> np.ndarray:
    """Coloured noise with a 3 Hz level swing: peaky like speech, so -14 LUFS needs the limiter."""
    rng = np.random.default_rng(seed)
    n = 4 * SR
    t = np.arange(n) / SR
    coloured = lfilter([1.0], [1.0, -0.7], rng.standard_normal((channels, n)), axis=1)
    return (scale * coloured * (0.55 + 0.45 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)


@pytest.mark.parametrize("scale", [0.5, 0.005], ids=["loud", "quiet"])
@pytest.mark.parametrize("channels", [1, 2])
def test_normalize_reaches_target_loudness_under_the_true_peak_ceiling(scale: float, channels: int) -> None:
    audio = modulated_noise(channels=channels, scale=scale)
    before = lufs(audio)
    assert before > -8 if scale > 0.1 else before < -40

    out = normalize_loudness(audio)

    assert out.shape == audio.shape and out.dtype == np.float32
    assert lufs(out) == pytest.approx(-14.0, abs=0.5)
    assert true_peak_db(out) <= -1.0 + 0.1


def test_normalize_limits_peaks_a_plain_gain_would_push_over() -> None:
    audio = modulated_noise(channels=1, scale=0.1)
    plain = audio * np.float32(10 ** ((-14.0 - lufs(audio)) / 20))
    assert true_peak_db(plain) > -1.0  # the fixture really needs the limiter

    out = normalize_loudness(audio)

    assert lufs(out) == pytest.approx(-14.0, abs=0.5)
    assert true_peak_db(out) <= -1.0 + 0.1


def test_normalize_honours_other_targets() -> None:
    out = normalize_loudness(modulated_noise(channels=2, scale=0.3), target_lufs=-23.0, peak_dbfs=-2.0)
    assert lufs(out) == pytest.approx(-23.0, abs=0.5)
    assert true_peak_db(out) <= -2.0 + 0.1


def test_normalize_of_mostly_peaks_stays_under_ceiling_and_target() -> None:
    # Sparse clicks over near-silence: reaching -14 LUFS would take a crushing limiter, so it stops short.
    audio = np.zeros((1, 2 * SR), np.float32)
    audio[0, :: SR // 10] = 0.5
    audio += noise(2.0, amplitude=0.001, seed=7)
    out = normalize_loudness(audio)
    assert lufs(out) <= -14.0 + 0.1
    assert true_peak_db(out) <= -1.0 + 0.1


def test_normalize_returns_silence_and_short_clips_unchanged() -> None:
    silence = np.zeros((2, 2 * SR), np.float32)
    out = normalize_loudness(silence)
    assert out is not silence
    np.testing.assert_array_equal(out, silence)

    short = noise(0.2)  # under pyloudnorm's 400 ms gating block
    np.testing.assert_array_equal(normalize_loudness(short), short)
