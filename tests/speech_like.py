"""A narration stand-in for audio tests and benchmarks: deterministic, quick, and shaped like TTS.

Voiced "words" (a harmonic series falling 9 dB an octave, with a wandering pitch, through one
broad formant, shaped into syllables with a few stressed ones), some opening on a plosive burst,
with short gaps between words and longer ones between sentences, band-limited to 10 kHz like TTS
output. Brought to -14 LUFS, the limiter takes about 0.5 dB of its loudness at a -1.5 dBTP
ceiling, as it does on espeak-ng narration under the draft music. `bright=True` clips it and skips
the band limit: content up to 24 kHz, which an AAC encode reshapes far more than any TTS voice.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import butter, lfilter, sosfilt

SAMPLE_RATE = 48_000
_HARMONICS = np.arange(1, 41)


def _word(length: int, rng: np.random.Generator) -> np.ndarray:
    tick = np.arange(length)
    pitch = rng.uniform(100, 220) * (
        1 + 0.08 * np.sin(2 * np.pi * 3 * tick / SAMPLE_RATE + rng.uniform(0, 6))
    )
    phase = 2 * np.pi * np.cumsum(pitch) / SAMPLE_RATE
    shifts = rng.uniform(0, 2 * np.pi, _HARMONICS.size)
    source = np.zeros(length)
    for harmonic, shift in zip(_HARMONICS, shifts, strict=True):
        source += harmonic**-1.5 * np.sin(harmonic * phase + shift)
    word = lfilter([1.0], [1.0, -1.3, 0.6], source) * np.sin(np.pi * tick / length) ** 1.5
    word *= 0.5 * rng.uniform(0.3, 1.0) ** 3 / (np.abs(word).max() + 1e-9)  # a few stressed words
    if rng.random() < 0.3:  # a plosive: a short burst of noise, the loudest peaks of speech
        burst = int(rng.uniform(0.005, 0.015) * SAMPLE_RATE)
        word[:burst] += 2 / 3 * lfilter([1.0, -0.9], [1.0], rng.standard_normal(burst)) * np.hanning(burst)
    return word


def _voice(samples: int, rng: np.random.Generator) -> np.ndarray:
    out = np.zeros(samples)
    at = 0
    while at < samples:
        for _ in range(rng.integers(6, 15)):
            length = int(rng.uniform(0.15, 0.45) * SAMPLE_RATE)
            if at + length >= samples:
                break
            out[at : at + length] += _word(length, rng)
            at += length + int(rng.uniform(0.03, 0.12) * SAMPLE_RATE)
        at += int(rng.uniform(0.3, 0.7) * SAMPLE_RATE)
    return out


def narration(seconds: float, *, seed: int = 0, bright: bool = False) -> np.ndarray:
    """float32 (n,) at 48 kHz: the narration stand-in alone. A longer one with the same seed starts
    with the shorter one's words, as narration with a sentence appended does."""
    voice = _voice(round(seconds * SAMPLE_RATE), np.random.default_rng(seed))
    if bright:
        voice = np.tanh(6 * voice) / 6
    else:
        voice = sosfilt(butter(8, 10_000, fs=SAMPLE_RATE, output="sos"), voice)
    return voice.astype(np.float32)


def speech_like(seconds: float, *, seed: int = 0, bright: bool = False) -> np.ndarray:
    """float32 (2, n) at 48 kHz: the narration stand-in on both channels plus a stereo bed."""
    voice = narration(seconds, seed=seed, bright=bright)
    samples = voice.size
    t = np.arange(samples) / SAMPLE_RATE
    swell = 0.5 + 0.5 * np.sin(2 * np.pi * t / 24)
    bed = np.stack(
        [
            swell * (np.sin(2 * np.pi * 220.0 * t) + 0.5 * np.sin(2 * np.pi * 329.6 * t)),
            (1 - swell) * (np.sin(2 * np.pi * 196.0 * t) + 0.5 * np.sin(2 * np.pi * 293.7 * t)),
        ]
    )
    return (voice + 0.02 * bed).astype(np.float32)
