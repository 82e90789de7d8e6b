"""Engines that model GPU latency, so zray's schedule can be measured on a machine with no GPU.

Each call sleeps for its simulated latency while holding its node's one-GPU lock (an `fcntl`
lock file per Ray node), so two model calls never overlap on one simulated GPU even when the
image, narration and music actors of a node live in different processes. The artifacts are tiny
but real (a flat PNG, a quiet tone), so the real pipeline runs end to end around them.

Settings travel in the `ZRAYBENCH_SIM` environment variable (JSON): engines are built by zray from
a bare `module:Class` name on Ray workers, so they cannot be handed constructor options. Every
model call and every simulated CPU step appends one line to the events file, from which the
benchmark computes busy time and checks that no simulated GPU ran two calls at once.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from zray.engines.base import BaseEngine, EngineError, Synthesis
from zray.media.constants import SAMPLE_RATE

ENV = "ZRAYBENCH_SIM"


@dataclass(frozen=True)
class SimSettings:
    image_s: float = 0.2  # seconds per image
    tts_s_per_s: float = 0.075  # seconds of GPU per second of narration
    music_s_per_s: float = 0.05  # seconds of GPU per second of music
    narration_s: float = 2.0  # every scene's narration lasts this long
    cpu_s: dict[str, float] = field(default_factory=dict)  # step kind -> seconds (see sim_steps)
    real_steps: bool = False  # run zray's real media steps inside the CPU cost (see sim_steps)
    lock_dir: str = "/tmp/zray-bench-locks"
    events: str = ""  # JSON-lines file of busy intervals; empty: not recorded

    @classmethod
    def from_env(cls) -> SimSettings:
        raw = os.environ.get(ENV)
        return cls(**json.loads(raw)) if raw else cls()

    def to_env(self) -> str:
        return json.dumps(asdict(self))


def node_id() -> str:
    """The simulated machine this process runs on: its Ray node, or `local` outside Ray."""
    ray = sys.modules.get("ray")  # never import Ray here: the sequential baseline runs without it
    if ray is not None and ray.is_initialized():
        return str(ray.get_runtime_context().get_node_id())
    return "local"


def record(settings: SimSettings, kind: str, start: float, end: float, **extra: Any) -> None:
    """Append one event; a single O_APPEND write of a short line is atomic between processes."""
    if not settings.events:
        return
    line = json.dumps(
        {"kind": kind, "node": node_id(), "pid": os.getpid(), "start": start, "end": end, **extra}
    )
    fd = os.open(settings.events, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def use_gpu(settings: SimSettings, kind: str, seconds: float) -> None:
    """Wait for this node's simulated GPU, hold it for `seconds` of model time, record the interval."""
    Path(settings.lock_dir).mkdir(parents=True, exist_ok=True)
    path = Path(settings.lock_dir) / f"gpu-{node_id()}.lock"
    with open(path, "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            start = time.time()
            time.sleep(seconds)
            end = time.time()
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    record(settings, kind, start, end, gpu=True, nominal=seconds)


class _SimEngine(BaseEngine):
    """Built from a bare `module:Class` name, as zray builds custom engines: default settings only."""

    # zray gives custom engines no GPU share; the simulated GPU is the lock above.
    uses_gpu = False

    def __init__(self, settings: Any = None) -> None:
        super().__init__(settings)
        self.sim = SimSettings.from_env()

    def load(self) -> None:
        pass

    def identity(self) -> dict[str, Any]:
        return {"engine": self.name, "version": "1"}


class SimImageEngine(_SimEngine):
    name = "sim-image"
    role = "image"

    def generate(self, prompt: str, *, width: int, height: int, seed: int, label: str = "") -> Image.Image:
        use_gpu(self.sim, "image", self.sim.image_s)
        return Image.new("RGB", (width, height), (seed % 256, (seed >> 8) % 256, (seed >> 16) % 256))


class SimTTSEngine(_SimEngine):
    name = "sim-tts"
    role = "tts"

    def supports(self, lang: str) -> bool:
        return True

    def check_voice(self, lang: str) -> None:
        pass

    def identity_for(self, lang: str) -> dict[str, Any]:
        return self.identity()

    def synthesize(self, text: str, *, lang: str) -> Synthesis:
        seconds = self.sim.narration_s
        use_gpu(self.sim, "tts", seconds * self.sim.tts_s_per_s)
        return Synthesis(samples=_tone(seconds, 220.0, channels=1), sample_rate=SAMPLE_RATE)


class SimMusicEngine(_SimEngine):
    name = "sim-music"
    role = "music"
    accepts_file = False

    def identity_for(self, prompt: str, *, file: str | None = None) -> dict[str, Any]:
        return self.identity()

    def generate(self, prompt: str, *, seconds: float, file: str | None = None) -> np.ndarray:
        if file is not None:
            raise EngineError("the simulated music engine plays no music_file")
        use_gpu(self.sim, "music", seconds * self.sim.music_s_per_s)
        return _tone(seconds, 110.0, channels=2)


def _tone(seconds: float, hz: float, *, channels: int) -> np.ndarray:
    # A quiet tone rather than silence, so loudness normalization downstream has something to measure.
    t = np.arange(round(seconds * SAMPLE_RATE), dtype=np.float32) / SAMPLE_RATE
    wave = (0.1 * np.sin(2 * np.pi * hz * t)).astype(np.float32)
    return np.tile(wave, (channels, 1))
