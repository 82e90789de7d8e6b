"""Procedural ambient music: the draft profile's music engine, CPU-only and deterministic.

The prompt's hash picks a key, a mode, a tempo and a chord progression; soft detuned pads, a bass note
and a few sparse bell notes play it, and a gentle low-pass and a long reverb smooth it. The bed loops
seamlessly: its length is a whole number of chords, every note's tail wraps around from the end to the
start, and the filter and reverb are applied as circular (FFT) convolutions, so the last sample flows
into the first like any other pair of neighbours. Voices are rendered at a quarter of the output rate
(they hold nothing above a few kHz) and brought up to the output rate in the same FFT.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from zray.engines.base import BaseEngine, EngineError, EngineSettings, seed_from
from zray.media.constants import SAMPLE_RATE

ENGINE_VERSION = "1"
MAX_SECONDS = 3600.0
PEAK = 10 ** (-6 / 20)  # -6 dBFS
_RENDER_RATE = 12_000  # voices are rendered here; everything in them is far below 6 kHz

_MODES: dict[str, tuple[int, ...]] = {
    "ionian": (0, 2, 4, 5, 7, 9, 11),
    "lydian": (0, 2, 4, 6, 7, 9, 11),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "aeolian": (0, 2, 3, 5, 7, 8, 10),
}
# Scale degrees from 0; each ends on a chord that leads back to the first, which the loop relies on.
_PROGRESSIONS: tuple[tuple[int, ...], ...] = (
    (0, 5, 3, 4),
    (0, 3, 5, 4),
    (0, 4, 5, 3),
    (0, 5, 1, 4),
    (0, 2, 3, 4),
    (0, 3, 0, 4),
    (0, 5, 3, 6),
)


@dataclass(frozen=True)
class _Plan:
    """Everything the prompt decides."""

    root: int  # MIDI note of the key's tonic in the pad register
    mode: str
    progression: tuple[int, ...]
    bpm: float
    bars_per_chord: int
    sevenths: bool
    detune_cents: float
    cutoff_hz: float
    reverb_seconds: float
    bell_probability: float


@dataclass(frozen=True)
class AmbientSettings(EngineSettings):
    sample_rate: int = SAMPLE_RATE

    def __post_init__(self) -> None:
        rate = self.sample_rate
        if isinstance(rate, bool) or not isinstance(rate, int) or not 16_000 <= rate <= 192_000:
            raise EngineError(f"ambient sample_rate must be an integer in 16000..192000 Hz, got {rate!r}")


class AmbientMusicEngine(BaseEngine):
    """A looping stereo ambient bed for a music prompt: float32 (2, n) at `sample_rate`, peak -6 dBFS."""

    name: ClassVar[str] = "ambient"
    role: ClassVar[str] = "music"
    uses_gpu: ClassVar[bool] = False
    accepts_file: ClassVar[bool] = False
    settings_type = AmbientSettings

    def __init__(self, settings: AmbientSettings | None = None) -> None:
        super().__init__(settings)
        self.sample_rate = self.settings.sample_rate

    def load(self) -> None:
        """Nothing to load: the engine is pure numpy."""

    def identity(self) -> dict[str, Any]:
        return {
            "engine": "ambient",
            "version": ENGINE_VERSION,
            "model": None,
            "sample_rate": self.sample_rate,
        }

    def identity_for(self, prompt: str, *, file: str | None = None) -> dict[str, Any]:
        return self.identity()

    def generate(self, prompt: str, *, seconds: float = 60.0, file: str | None = None) -> np.ndarray:
        if file is not None:
            raise EngineError(
                f"the ambient music engine makes its own music and cannot play music_file {file!r}; "
                'set engines.music = "library" (tracks in library.folder) or remove music_file'
            )
        if (
            isinstance(seconds, bool)
            or not isinstance(seconds, int | float)
            or not math.isfinite(seconds)
            or not 0 < seconds <= MAX_SECONDS
        ):
            raise EngineError(
                f"ambient music length must be in (0, {MAX_SECONDS:g}] seconds, got {seconds!r}"
            )
        n = max(1, round(seconds * self.sample_rate))
        # The render rate is an exact fraction of the output rate where possible, so timing is exact.
        factor = max(1, self.sample_rate // _RENDER_RATE)
        n_render = max(64, math.ceil(n / factor))
        render_rate = self.sample_rate * n_render / n

        rng = np.random.default_rng(seed_from("ambient", prompt))
        plan = _plan(rng)
        dry = np.zeros((2, n_render))
        _render_chords(dry, rng, plan, render_rate)
        _render_bells(dry, rng, plan, render_rate)

        spectrum = np.fft.rfft(dry, axis=1)
        frequencies = np.fft.rfftfreq(n_render, d=1 / render_rate)
        # Zero-phase 2nd-order Butterworth magnitude: a gentle slope with no ringing.
        spectrum *= 1 / np.sqrt(1 + (frequencies / plan.cutoff_hz) ** 4)
        spectrum *= 0.55 + 0.45 * _reverb_response(rng, n_render, render_rate, plan.reverb_seconds)
        # Up to the output rate by zero-padding the spectrum: circular, so the loop stays seamless.
        full = np.zeros((2, n // 2 + 1), dtype=complex)
        bins = min(spectrum.shape[1], full.shape[1])
        full[:, :bins] = spectrum[:, :bins] * (n / n_render)
        audio = np.fft.irfft(full, n=n, axis=1)

        peak = float(np.max(np.abs(audio)))
        if peak > 0:
            audio *= PEAK / peak
        return audio.astype(np.float32)


def _plan(rng: np.random.Generator) -> _Plan:
    modes = list(_MODES)
    return _Plan(
        root=48 + int(rng.integers(0, 12)),
        mode=modes[int(rng.integers(0, len(modes)))],
        progression=_PROGRESSIONS[int(rng.integers(0, len(_PROGRESSIONS)))],
        bpm=float(rng.uniform(54, 78)),
        bars_per_chord=int(rng.integers(1, 3)),
        sevenths=bool(rng.random() < 0.5),
        detune_cents=float(rng.uniform(4, 11)),
        cutoff_hz=float(rng.uniform(900, 2200)),
        reverb_seconds=float(rng.uniform(2.5, 5.0)),
        bell_probability=float(rng.uniform(0.1, 0.35)),
    )


def _hz(midi: np.ndarray | float) -> np.ndarray:
    return 440.0 * 2.0 ** ((np.asarray(midi, dtype=float) - 69) / 12)


def _chord(plan: _Plan, degree: int) -> list[int]:
    """MIDI notes of the chord on a scale degree, each folded into one octave above the root."""
    scale = _MODES[plan.mode]
    steps = (0, 2, 4, 6) if plan.sevenths else (0, 2, 4)
    notes = []
    for step in steps:
        index = degree + step
        pitch = scale[index % 7] + 12 * (index // 7)
        notes.append(plan.root + pitch % 12)
    # The chord's third an octave up opens the voicing.
    notes.append(notes[1] + 12)
    return notes


def _segments(n: int, rate: float, plan: _Plan) -> list[tuple[int, int, int]]:
    """(start, length, degree) of each chord: a whole number of chords, a whole number of
    progressions when the bed is long enough, stretched evenly to fill exactly n samples."""
    chord_seconds = plan.bars_per_chord * 4 * 60 / plan.bpm
    cycle = len(plan.progression)
    count = max(1, round(n / rate / chord_seconds))
    if count >= cycle:
        count = max(cycle, round(count / cycle) * cycle)
    edges = np.round(np.linspace(0, n, count + 1)).astype(int)
    return [
        (int(edges[i]), int(edges[i + 1] - edges[i]), plan.progression[i % cycle])
        for i in range(count)
        if edges[i + 1] > edges[i]
    ]


def _envelope(length: int, *, attack: int, release: int) -> np.ndarray:
    """Raised-cosine rise over `attack`, hold, raised-cosine fall over `release` after `length`."""
    total = length + release
    envelope = np.ones(total)
    attack = max(1, min(attack, length))
    envelope[:attack] = 0.5 - 0.5 * np.cos(np.pi * np.arange(attack) / attack)
    envelope[length:] = 0.5 + 0.5 * np.cos(np.pi * (np.arange(release) + 1) / release)
    return envelope


def _add_circular(out: np.ndarray, start: int, values: np.ndarray) -> None:
    """out[:, start:start+len] += values, wrapping past the end (as often as needed)."""
    n = out.shape[-1]
    position, offset = start % n, 0
    while offset < values.shape[-1]:
        take = min(n - position, values.shape[-1] - offset)
        out[..., position : position + take] += values[..., offset : offset + take]
        offset += take
        position = 0


_TABLE_SIZE = 16_384
# One cycle of a soft saw (harmonic k at 1/k^1.5, the filter takes off the rest); table lookup is far
# cheaper than a sine per harmonic, and its error (about -70 dB) is inaudible under the reverb.
_HARMONICS = np.arange(1, 5)
_PAD_TABLE = (
    np.sin(2 * np.pi * np.outer(np.arange(_TABLE_SIZE) / _TABLE_SIZE, _HARMONICS)) / _HARMONICS**1.5
).sum(axis=1)


def _render_chords(out: np.ndarray, rng: np.random.Generator, plan: _Plan, rate: float) -> None:
    n = out.shape[1]
    for start, length, degree in _segments(n, rate, plan):
        release = min(length, int(2.0 * rate))
        envelope = _envelope(length, attack=min(length // 2, int(2.5 * rate)), release=release)
        t = np.arange(length + release) / rate
        notes = np.array(_chord(plan, degree), dtype=float)
        for channel, sign in ((0, -1.0), (1, 1.0)):
            # Left and right are detuned in opposite directions: the beating between them is the width.
            cents = sign * plan.detune_cents * rng.uniform(0.6, 1.0, size=(len(notes), 2)) * [1, -0.5]
            cycles_per_second = _hz(notes[:, None] + cents / 100).reshape(-1, 1)
            cycles = cycles_per_second * t + rng.uniform(0, 1, size=cycles_per_second.shape)
            index = (cycles * _TABLE_SIZE).astype(np.int64) & (_TABLE_SIZE - 1)
            pad = _PAD_TABLE[index].sum(axis=0) * (0.5 / cycles_per_second.size)
            _add_circular(out[channel], start, pad * envelope)
        bass = _hz(plan.root - 12 + _MODES[plan.mode][degree % 7] % 12)
        bass_wave = np.sin(2 * np.pi * bass * t) + 0.25 * np.sin(4 * np.pi * bass * t)
        _add_circular(out, start, np.repeat((0.35 * bass_wave * envelope)[None], 2, axis=0))


def _render_bells(out: np.ndarray, rng: np.random.Generator, plan: _Plan, rate: float) -> None:
    """Sparse soft bell notes on the beat, from the chord sounding then, panned at random."""
    n = out.shape[1]
    beat = 60 / plan.bpm * rate
    decay = int(3.0 * rate)
    t = np.arange(decay) / rate
    shape = np.exp(-t / 0.7) * np.minimum(1.0, t / 0.01)
    for start, length, degree in _segments(n, rate, plan):
        notes = _chord(plan, degree)
        for k in range(max(1, round(length / beat))):
            if rng.random() >= plan.bell_probability:
                continue
            pitch = notes[int(rng.integers(0, len(notes)))] + 12
            frequency = _hz(pitch)
            wave = (np.sin(2 * np.pi * frequency * t) + 0.2 * np.sin(4 * np.pi * frequency * t)) * shape
            pan = rng.uniform(0.2, 0.8)
            stereo = 0.12 * np.stack([wave * math.sqrt(1 - pan), wave * math.sqrt(pan)])
            _add_circular(out, start + int(k * beat), stereo)


def _reverb_response(rng: np.random.Generator, n: int, rate: float, seconds: float) -> np.ndarray:
    """Frequency responses (2, n//2+1) of a decaying-noise reverb, different per channel for width;
    applied by multiplication it is a circular convolution, so tails wrap into the loop's start."""
    length = min(n, int(seconds * rate))
    t = np.arange(length) / rate
    impulse = rng.standard_normal((2, length)) * np.exp(-6.9 * t / seconds)  # -60 dB at `seconds`
    impulse /= np.sqrt(np.sum(impulse**2, axis=1, keepdims=True))
    return np.fft.rfft(impulse, n=n, axis=1)
