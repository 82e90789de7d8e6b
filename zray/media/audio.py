"""Audio in, audio out: decoding, frame-exact padding, music looping and mixing, loudness.

Arrays are float32 numpy arrays shaped (channels, n_samples), PyAV's planar layout; mono is (1, n).
The project runs at `SAMPLE_RATE` (48 kHz, from zray.media.constants, re-exported here) so that one
frame at 24 fps is exactly 2000 samples and every scene's audio can be padded to a whole number of
video frames with integer arithmetic (no drift).
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import BinaryIO

import av
import numpy as np
import soundfile
from numpy.lib.stride_tricks import sliding_window_view

from zray.media.constants import SAMPLE_RATE
from zray.media.levels import AudioError
from zray.media.limiter import limit
from zray.media.loudness import loudness_gain

__all__ = [
    "SAMPLE_RATE",
    "AudioError",
    "apply_fades",
    "audio_duration",
    "decode_audio",
    "duck_envelope",
    "loop_to_length",
    "mix_music",
    "normalize_loudness",
    "pad_to_frames",
    "samples_per_frame",
    "target_frames",
    "write_wav",
]


# A cut that lands mid-music gets this fade so it does not click.
_CUT_FADE_S = 0.050
# The ducking gate opens above this short-term RMS; TTS speech sits around -25..-15 dBFS.
_GATE_DBFS = -45.0
_GATE_WINDOW_S = 0.030
_DUCK_HOP_S = 0.005
# BS.1770's gating block: shorter input cannot be measured.
_LOUDNESS_BLOCK_S = 0.4


def _source_name(source: str | os.PathLike[str] | BinaryIO) -> str:
    if isinstance(source, str | os.PathLike):
        return os.fspath(source)
    return str(getattr(source, "name", None) or "<audio stream>")


def _as_planar(samples: np.ndarray, *, what: str = "samples") -> np.ndarray:
    """Check the (channels, n) convention and return float32 (a copy only if the dtype differs)."""
    array = np.asarray(samples)
    if array.ndim != 2 or array.shape[0] < 1:
        raise AudioError(f"{what} must be shaped (channels, n_samples), got shape {array.shape}")
    return array.astype(np.float32, copy=False)


def _to_channels(samples: np.ndarray, channels: int) -> np.ndarray:
    """Mono is duplicated at full level; anything else is averaged down first (keeps centred speech level)."""
    if channels < 1:
        raise AudioError(f"channels must be >= 1, got {channels}")
    have = samples.shape[0]
    if have == channels:
        return samples
    mono = samples if have == 1 else samples.mean(axis=0, keepdims=True, dtype=np.float32)
    return np.repeat(mono, channels, axis=0) if channels > 1 else mono


def decode_audio(
    source: str | os.PathLike[str] | BinaryIO,
    *,
    sample_rate: int = SAMPLE_RATE,
    channels: int = 1,
) -> np.ndarray:
    """Decode the first audio stream of any file FFmpeg reads (WAV, FLAC, MP3, OGG, MP4...).

    Resampled with swresample to ``sample_rate``; mono/stereo are then mixed to ``channels`` here rather
    than by swresample, whose float path turns mono into two channels at -3 dB.
    """
    name = _source_name(source)
    if sample_rate <= 0:
        raise AudioError(f"sample_rate must be positive, got {sample_rate}")
    if channels < 1:
        raise AudioError(f"channels must be >= 1, got {channels}")
    if isinstance(source, str | os.PathLike):
        pcm = _read_pcm16_wav(source, sample_rate=sample_rate)
        if pcm is not None:
            return np.ascontiguousarray(_to_channels(pcm, channels))
    chunks: list[np.ndarray] = []
    try:
        with av.open(source, mode="r") as container:
            if not container.streams.audio:
                raise AudioError(f"{name}: no audio stream to decode")
            stream = container.streams.audio[0]
            # Surround sources are folded to stereo by swresample, which knows the proper coefficients.
            layout = None if stream.codec_context.channels <= 2 else "stereo"
            resampler = av.AudioResampler(format="fltp", layout=layout, rate=sample_rate)
            for frame in container.decode(stream):
                chunks.extend(out.to_ndarray() for out in resampler.resample(frame))
            chunks.extend(out.to_ndarray() for out in resampler.resample(None))
    except AudioError:
        raise
    except (av.FFmpegError, OSError, UnicodeDecodeError) as error:
        raise AudioError(f"{name}: cannot decode audio ({error})") from error
    if not chunks:
        return np.zeros((channels, 0), dtype=np.float32)
    decoded = np.concatenate(chunks, axis=1).astype(np.float32, copy=False)
    return np.ascontiguousarray(_to_channels(decoded, channels))


def _read_pcm16_wav(path: str | os.PathLike[str], *, sample_rate: int) -> np.ndarray | None:
    """The pipeline's own WAVs (16-bit, mono or stereo, at the rate asked for), read by libsndfile in
    a third of PyAV's time and to the same floats (both scale by 2**-15); None for anything else."""
    try:
        info = soundfile.info(os.fspath(path))
    except (RuntimeError, OSError, ValueError):  # not a file libsndfile reads: PyAV may
        return None
    if (info.format, info.subtype, info.samplerate) != ("WAV", "PCM_16", sample_rate) or info.channels > 2:
        return None
    try:
        frames, _ = soundfile.read(os.fspath(path), dtype="float32", always_2d=True)
    except (RuntimeError, OSError, ValueError):
        return None
    return frames.T


def audio_duration(samples: np.ndarray, *, sample_rate: int = SAMPLE_RATE) -> float:
    """Seconds of audio in a (channels, n) array."""
    return np.asarray(samples).shape[-1] / sample_rate


def write_wav(
    dest: str | os.PathLike[str] | BinaryIO,
    samples: np.ndarray,
    *,
    sample_rate: int = SAMPLE_RATE,
) -> None:
    """Write 16-bit PCM WAV, clipped to [-1, 1]. A path is written atomically (temp file + rename)."""
    frames = np.clip(_as_planar(samples), -1.0, 1.0).T
    if not isinstance(dest, str | os.PathLike):
        soundfile.write(dest, frames, sample_rate, subtype="PCM_16", format="WAV")
        return
    path = Path(dest)
    # A crash mid-write must not leave a truncated WAV that a rerun would trust as finished.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        # By path, not through a Python file object: libsndfile then reports a failed write (a
        # full disk) as an error, where soundfile's callbacks would print tracebacks and go on.
        soundfile.write(tmp, frames, sample_rate, subtype="PCM_16", format="WAV")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def apply_fades(
    samples: np.ndarray,
    *,
    sample_rate: int = SAMPLE_RATE,
    fade_in: float = 0.020,
    fade_out: float = 0.050,
) -> np.ndarray:
    """Linear fade-in/out (the seed's 20 ms / 50 ms). The ramps keep their slope on any clip: one shorter
    than a fade gets the part of it that fits, still starting and ending at 0."""
    if fade_in < 0 or fade_out < 0:
        raise AudioError(f"fades must be >= 0 seconds, got fade_in={fade_in}, fade_out={fade_out}")
    audio = _as_planar(samples)
    n = audio.shape[1]
    gain = np.ones(n, dtype=np.float32)
    ramp_in = np.linspace(0.0, 1.0, round(fade_in * sample_rate), dtype=np.float32)[:n]
    gain[: len(ramp_in)] = ramp_in
    ramp_out = np.linspace(1.0, 0.0, round(fade_out * sample_rate), dtype=np.float32)
    ramp_out = ramp_out[max(0, len(ramp_out) - n) :]
    if len(ramp_out):
        # Where the ramps overlap on a short clip, the lower gain wins (a triangle, not a product).
        tail = gain[n - len(ramp_out) :]
        np.minimum(tail, ramp_out, out=tail)
    return audio * gain


def samples_per_frame(*, sample_rate: int, fps: int) -> int:
    """Audio samples in one video frame; only whole numbers keep audio and video from drifting."""
    if sample_rate <= 0 or fps <= 0:
        raise ValueError(f"sample_rate and fps must be positive, got sample_rate={sample_rate}, fps={fps}")
    if sample_rate % fps:
        raise ValueError(
            f"sample_rate {sample_rate} is not a whole number of samples per frame at {fps} fps; "
            f"use a rate divisible by {fps} (e.g. {SAMPLE_RATE})"
        )
    return sample_rate // fps


def target_frames(n_samples: int, *, sample_rate: int = SAMPLE_RATE, fps: int = 24) -> int:
    """The seed's rule ``ceil(duration * fps) + 1``, in integers so 2000 samples at 48k/24 is exactly 1 frame."""
    if n_samples < 0:
        raise ValueError(f"n_samples must be >= 0, got {n_samples}")
    if sample_rate <= 0 or fps <= 0:
        raise ValueError(f"sample_rate and fps must be positive, got sample_rate={sample_rate}, fps={fps}")
    return -(-n_samples * fps // sample_rate) + 1


def pad_to_frames(samples: np.ndarray, *, sample_rate: int = SAMPLE_RATE, fps: int = 24) -> np.ndarray:
    """Append silence up to ``target_frames`` whole frames; the audio itself is never cut."""
    audio = _as_planar(samples)
    per_frame = samples_per_frame(sample_rate=sample_rate, fps=fps)
    n = audio.shape[1]
    total = target_frames(n, sample_rate=sample_rate, fps=fps) * per_frame
    padded = np.zeros((audio.shape[0], total), dtype=np.float32)
    padded[:, :n] = audio
    return padded


def _fade_out_end(audio: np.ndarray, *, sample_rate: int) -> np.ndarray:
    n_fade = min(round(_CUT_FADE_S * sample_rate), audio.shape[1])
    if n_fade:
        audio[:, -n_fade:] *= np.cos(np.linspace(0.0, np.pi / 2, n_fade, dtype=np.float32))
    return audio


def loop_to_length(
    track: np.ndarray,
    n_samples: int,
    *,
    sample_rate: int = SAMPLE_RATE,
    crossfade: float = 2.0,
) -> np.ndarray:
    """Repeat ``track`` to exactly ``n_samples`` with an equal-power crossfade at every loop point.

    sin/cos curves keep the summed power constant for uncorrelated material (music against its own
    start), where a linear crossfade dips 3 dB. The crossfade shrinks to half the track for short tracks.
    """
    audio = _as_planar(track, what="track")
    length = audio.shape[1]
    if n_samples < 0:
        raise AudioError(f"n_samples must be >= 0, got {n_samples}")
    if crossfade < 0:
        raise AudioError(f"crossfade must be >= 0 seconds, got {crossfade}")
    if n_samples <= length:
        cut = audio[:, :n_samples].copy()
        return cut if n_samples == length else _fade_out_end(cut, sample_rate=sample_rate)
    if length == 0:
        raise AudioError(f"cannot loop an empty track to {n_samples} samples")

    overlap = min(round(crossfade * sample_rate), length // 2)
    period = length - overlap
    # Every copy after the first starts with its head faded in over the previous copy's faded-out tail,
    # so one period (blend + untouched middle) tiles the whole output.
    angle = (np.arange(overlap, dtype=np.float32) + 0.5) * np.float32(np.pi / (2 * max(overlap, 1)))
    blend = audio[:, :overlap] * np.sin(angle) + audio[:, length - overlap :] * np.cos(angle)
    unit = np.concatenate([blend, audio[:, overlap:period]], axis=1)
    out = np.tile(unit, (1, -(-n_samples // period)))[:, :n_samples]
    out[:, :overlap] = audio[:, :overlap]  # the first copy has nothing to fade in over
    return _fade_out_end(np.ascontiguousarray(out), sample_rate=sample_rate)


def duck_envelope(
    voice: np.ndarray,
    *,
    sample_rate: int = SAMPLE_RATE,
    depth_db: float = 6.0,
    attack: float = 0.05,
    release: float = 0.4,
) -> np.ndarray:
    """Gain curve, shape (n,), that falls by ``depth_db`` while the voice speaks and is 1.0 in silence.

    A gate on the voice's 30 ms RMS (open above -45 dBFS, looking ``attack`` seconds ahead) sets the
    target; the gain moves toward it in dB at a limited rate (``attack`` seconds to go down, ``release``
    to come back), so it lands on exactly 1.0 and exactly ``-depth_db``.
    """
    if depth_db < 0 or attack < 0 or release < 0:
        raise AudioError(f"depth_db, attack and release must be >= 0, got {depth_db}, {attack}, {release}")
    audio = _as_planar(voice, what="voice")
    n = audio.shape[1]
    if n == 0:
        return np.ones(0, dtype=np.float32)
    from scipy.ndimage import uniform_filter1d  # here: importing scipy costs a second, and few mixes duck

    power = np.mean(np.square(audio, dtype=np.float64), axis=0)
    window = max(1, round(_GATE_WINDOW_S * sample_rate))
    rms = np.sqrt(uniform_filter1d(power, size=window, mode="constant"))
    hop = max(1, round(_DUCK_HOP_S * sample_rate))
    # Work at a 5 ms control rate: the slew limiter is sequential and the ear cannot tell the difference.
    starts = np.arange(0, n, hop)
    active = np.maximum.reduceat(rms, starts) > 10 ** (_GATE_DBFS / 20)
    # Look ahead by the attack time so the music is already down when the first word starts.
    lead = math.ceil(attack / _DUCK_HOP_S)
    if lead:
        ahead = np.concatenate([active, np.zeros(lead, dtype=bool)])
        active = sliding_window_view(ahead, lead + 1).any(axis=1)
    down_step = depth_db * hop / sample_rate / attack if attack > 0 else math.inf
    up_step = depth_db * hop / sample_rate / release if release > 0 else math.inf
    gain_db = np.empty(len(starts))
    level = 0.0
    for i, is_active in enumerate(active.tolist()):
        level = max(level - down_step, -depth_db) if is_active else min(level + up_step, 0.0)
        gain_db[i] = level
    centres = starts + (np.minimum(starts + hop, n) - starts - 1) / 2
    curve = np.interp(np.arange(n), centres, 10 ** (gain_db / 20))
    return curve.astype(np.float32)


def mix_music(
    voice: np.ndarray,
    music: np.ndarray,
    *,
    level: float = 0.08,
    duck: bool = False,
    sample_rate: int = SAMPLE_RATE,
    channels: int = 2,
    fade_in: float = 0.0,
    fade_out: float = 0.0,
) -> np.ndarray:
    """Voice plus music looped to the voice's length at ``level`` (the seed's 8 %), optionally ducked.

    The music fades in over its first ``fade_in`` seconds and out over its last ``fade_out`` (the
    episode's tail, where the picture holds and only the music plays), reaching silence on the
    last sample. Raised-cosine ramps: no audible corner at either end of a fade.
    """
    if level < 0:
        raise AudioError(f"music level must be >= 0, got {level}")
    if fade_in < 0 or fade_out < 0:
        raise AudioError(f"fades must be >= 0 seconds, got fade_in={fade_in}, fade_out={fade_out}")
    speech = _to_channels(_as_planar(voice, what="voice"), channels)
    n = speech.shape[1]
    bed = loop_to_length(_as_planar(music, what="music"), n, sample_rate=sample_rate)
    bed = _to_channels(bed, channels) * np.float32(level)
    if duck:
        bed = bed * duck_envelope(speech, sample_rate=sample_rate)
    fade_in_n, fade_out_n = min(round(fade_in * sample_rate), n), min(round(fade_out * sample_rate), n)
    if fade_in_n:
        bed[:, :fade_in_n] *= _raised_cosine(fade_in_n)
    if fade_out_n:
        bed[:, n - fade_out_n :] *= _raised_cosine(fade_out_n)[::-1]
    return speech + bed


def _raised_cosine(n: int) -> np.ndarray:
    """A ramp from 0 to 1 over n samples, flat at both ends."""
    return (0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, n, dtype=np.float32))).astype(np.float32)


def normalize_loudness(
    samples: np.ndarray,
    *,
    sample_rate: int = SAMPLE_RATE,
    target_lufs: float = -14.0,
    peak_dbfs: float = -1.0,
) -> np.ndarray:
    """Integrated loudness (BS.1770) to ``target_lufs``, true peak (4x oversampled) <= ``peak_dbfs``.

    A gain found over the whole signal (`loudness.loudness_gain`, on its 0.1 dB grid), then the local
    look-ahead limiter (`limiter.limit`) on the peaks the gain pushes over the ceiling; the make-up
    gain that wins back what the limiter takes is capped at 9 dB, so a signal made of little but
    peaks ends quieter than the target rather than crushed. Silent input, or input shorter than one
    400 ms gating block, is returned unchanged. The final audio of a video goes through
    `zray.media.mastering.encode_track` instead, which also leaves the AAC encoder headroom.
    """
    audio = _as_planar(samples)
    if audio.shape[0] > 5:
        raise AudioError(f"loudness is measured for up to 5 channels, got {audio.shape[0]}")
    # A hair under the ceiling, so that another meter's interpolation stays inside it too.
    ceiling = 10 ** ((peak_dbfs - 0.02) / 20)
    if audio.shape[1] < _LOUDNESS_BLOCK_S * sample_rate:
        return audio.copy()
    gain_db = loudness_gain(audio, sample_rate=sample_rate, target_lufs=target_lufs, ceiling=ceiling)
    return limit(audio * np.float32(10 ** (gain_db / 20)), ceiling=ceiling, sample_rate=sample_rate)
