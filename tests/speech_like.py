"""A narration stand-in for audio tests and benchmarks: deterministic, quick, and shaped like TTS.

Voiced "words" (a soft glottal pulse train through one broad formant, shaped into syllables) with
short gaps between words and longer ones between sentences, soft-clipped and band-limited to 10 kHz
like TTS output, over a quiet two-chord bed. Its peak-to-loudness ratio is about 12 dB, as measured
on espeak-ng narration under the draft music, so -14 LUFS needs the limiter on the loudest syllables.
`bright=True` skips the band limit: content up to 24 kHz that an AAC encode reshapes far more.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import butter, lfilter, sosfilt

SAMPLE_RATE = 48_000


def _voice(samples: int, rng: np.random.Generator) -> np.ndarray:
    out = np.zeros(samples)
    at = 0
    while at < samples:
        for _ in range(rng.integers(6, 15)):
            length = int(rng.uniform(0.15, 0.45) * SAMPLE_RATE)
            if at + length >= samples:
                break
            tick = np.arange(length)
            pitch = rng.uniform(100, 220) * (1 + 0.1 * np.sin(2 * np.pi * 3 * tick / SAMPLE_RATE))
            pulses = (np.diff(np.floor(np.cumsum(pitch) / SAMPLE_RATE), prepend=0) > 0).astype(float)
            glottal = lfilter([1.0], [1.0, -0.97], pulses - pulses.mean())
            word = lfilter([1.0], [1.0, -1.3, 0.6], glottal) * np.sin(np.pi * tick / length) ** 1.5
            out[at : at + length] += word / (np.abs(word).max() + 1e-9) * rng.uniform(0.3, 0.6)
            at += length + int(rng.uniform(0.03, 0.12) * SAMPLE_RATE)
        at += int(rng.uniform(0.3, 0.7) * SAMPLE_RATE)
    return np.tanh(4 * out) / 4


def speech_like(seconds: float, *, seed: int = 0, bright: bool = False) -> np.ndarray:
    """float32 (2, n) at 48 kHz: the narration stand-in on both channels plus a stereo bed."""
    rng = np.random.default_rng(seed)
    samples = round(seconds * SAMPLE_RATE)
    voice = _voice(samples, rng)
    if not bright:
        voice = sosfilt(butter(8, 10_000, fs=SAMPLE_RATE, output="sos"), voice)
    t = np.arange(samples) / SAMPLE_RATE
    swell = 0.5 + 0.5 * np.sin(2 * np.pi * t / 24)
    bed = np.stack(
        [
            swell * (np.sin(2 * np.pi * 220.0 * t) + 0.5 * np.sin(2 * np.pi * 329.6 * t)),
            (1 - swell) * (np.sin(2 * np.pi * 196.0 * t) + 0.5 * np.sin(2 * np.pi * 293.7 * t)),
        ]
    )
    return (voice + 0.02 * bed).astype(np.float32)
