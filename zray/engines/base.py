"""Shared pieces of the engine interface: protocols, the result of speech synthesis, seeds.

Engines are plain classes (never Ray): a constructor that takes their config, a lazy idempotent
`load()`, a call that turns a request into an artifact, and `identity()`, a JSON-able dict of everything
that changes their output (engine name, version, model id, parameters) that the pipeline hashes into
cache keys. Audio is float32 numpy of shape (channels, n); mono is (1, n).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
from PIL import Image

from zray.errors import ZrayError


class EngineError(ZrayError, RuntimeError):
    """An engine could not produce an artifact (unsupported language, missing voice, bad model)."""


@dataclass(frozen=True)
class WordTiming:
    """One spoken word and where it sits in the audio, in seconds."""

    text: str
    start: float
    end: float


@dataclass
class Synthesis:
    """Speech from a TTS engine: mono float32 samples of shape (1, n) at `sample_rate`."""

    samples: np.ndarray
    sample_rate: int
    words: list[WordTiming] | None = None

    @property
    def seconds(self) -> float:
        return self.samples.shape[-1] / self.sample_rate


@runtime_checkable
class Engine(Protocol):
    def load(self) -> None: ...

    def identity(self) -> dict[str, Any]: ...


@runtime_checkable
class ImageEngine(Engine, Protocol):
    def generate(
        self, prompt: str, *, width: int, height: int, seed: int, label: str = ""
    ) -> Image.Image: ...


@runtime_checkable
class TTSEngine(Engine, Protocol):
    def supports(self, lang: str) -> bool: ...

    def synthesize(self, text: str, *, lang: str) -> Synthesis: ...


@runtime_checkable
class MusicEngine(Engine, Protocol):
    """Returns stereo or mono float32 (channels, n) at 48 kHz."""

    def generate(self, prompt: str, *, seconds: float) -> np.ndarray: ...


def seed_from(*parts: str) -> int:
    """A stable unsigned 32-bit seed from strings.

    sha256 over a JSON list, so ("ab", "c") and ("a", "bc") differ and the value is the same in every
    process (Python's hash() is salted per process).
    """
    payload = json.dumps(list(parts), ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return int.from_bytes(hashlib.sha256(payload).digest()[:4], "big")
