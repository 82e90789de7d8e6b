"""Engines that model GPU latency as measured on a real GPU, so zray's schedule can be measured on
a machine with none.

Costs come from the real-size run (`benchmarks/real_size.py`, see `MEASURED`): a 1920x1072 image
2.69 s, a 1280x720 thumbnail base 1.15 s, 0.011 s of Kokoro per second of speech, and per second of
music bed 1.62 s with transformers' `generate` (the H200 run) or the static-cache path's figure.
Model calls on one GPU do not wait for each other: two processes' calls overlapped on the H200 with
each about 16 % slower, so a call here advances at 1 / (1 + overlap * (others running on its node)),
re-read every few milliseconds from a folder of markers, one per call in flight on that node. Every
simulated second is multiplied by `time_scale`, so a batch that takes minutes on a GPU runs in
seconds with the same proportions. The artifacts are tiny but real (a flat PNG, a quiet tone), so
the real pipeline runs end to end around them.

Settings travel in the `ZRAYBENCH_SIM` environment variable (JSON): engines are built by zray from
a bare `module:Class` name on Ray workers, so they cannot be handed constructor options. Every
model call and every simulated CPU step appends one line to the events file.
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from zray.engines.base import BaseEngine, EngineError, Synthesis
from zray.media.constants import SAMPLE_RATE

ENV = "ZRAYBENCH_SIM"
# What the real-size runs measured (GPU seconds). MusicGen's static-cache figure is an estimate from
# its per-step analysis until benchmarks/real_size.py has run on a GPU: replace it with the run's
# musicgen_graphs gpu_s_per_bed_s (or pass --music-s-per-s).
MEASURED = {
    "image_s": 2.69,  # 1920x1072, resident, H200 2026-11-27
    "thumb_s": 1.15,  # 1280x720
    "tts_s_per_s": 0.011,  # Kokoro-82M, Spanish
    "music_generate_s_per_s": 1.62,  # MusicGen small through generate: 97 s for a 60 s bed
    "music_graphs_s_per_s": 0.12,  # estimate: about 2.3 ms per step for 3,112 steps of a 60 s bed
    "overlap": 0.16,  # each of two model calls on one GPU at once, slower by this much
}
TICK_S = 0.005


@dataclass(frozen=True)
class SimSettings:
    image_s: float = MEASURED["image_s"]  # seconds per scene image
    thumb_s: float = MEASURED["thumb_s"]  # seconds per thumbnail base image
    tts_s_per_s: float = MEASURED["tts_s_per_s"]  # GPU seconds per second of narration
    music_s_per_s: float = MEASURED["music_graphs_s_per_s"]  # GPU seconds per second of music
    overlap: float = MEASURED["overlap"]  # slowdown of a call per other call running on its GPU
    narration_s: float = 24.0  # every scene's narration lasts this long
    time_scale: float = 1.0  # every simulated second (GPU and CPU) is this many real seconds
    cpu_s: dict[str, float] = field(default_factory=dict)  # step kind -> seconds (see sim_steps)
    real_steps: bool = False  # run zray's real media steps inside the CPU cost (see sim_steps)
    busy_dir: str = "/tmp/zray-bench-busy"  # one folder per node, one marker per call in flight
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
    """Do `seconds` of model work on this node's simulated GPU, slowed while other calls run there."""
    folder = Path(settings.busy_dir) / node_id()
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / f"{os.getpid()}-{uuid.uuid4().hex}"
    marker.touch()
    nominal = seconds * settings.time_scale
    done, most = 0.0, 1
    start = last = time.time()
    try:
        while done < nominal:
            time.sleep(TICK_S)
            now = time.time()
            running = max(1, len(os.listdir(folder)))
            most = max(most, running)
            done += (now - last) / (1 + settings.overlap * (running - 1))
            last = now
    finally:
        marker.unlink(missing_ok=True)
    record(settings, kind, start, time.time(), gpu=True, nominal=nominal, most_running=most)


class _SimEngine(BaseEngine):
    """Built from a bare `module:Class` name, as zray builds custom engines: default settings only."""

    # zray gives custom engines no GPU share of their own; the benchmark's config sets the shares.
    uses_gpu = False

    def __init__(self, settings: Any = None) -> None:
        super().__init__(settings)
        self.sim = SimSettings.from_env()

    def load(self) -> None:
        pass

    def identity(self) -> dict[str, Any]:
        return {"engine": self.name, "version": "2"}


class SimImageEngine(_SimEngine):
    name = "sim-image"
    role = "image"

    def generate(self, prompt: str, *, width: int, height: int, seed: int, label: str = "") -> Image.Image:
        # zray labels scene images "Scene N"; the other image it asks for is a language's thumbnail base.
        thumbnail = not label.startswith("Scene")
        use_gpu(
            self.sim, "thumb" if thumbnail else "image", self.sim.thumb_s if thumbnail else self.sim.image_s
        )
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
        # The audio is short (the placeholders' frame counts come from its length): the narration's
        # nominal length only sets the GPU cost.
        return Synthesis(samples=_tone(min(seconds, 2.0), 220.0, channels=1), sample_rate=SAMPLE_RATE)


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
        return _tone(min(seconds, 4.0), 110.0, channels=2)


def _tone(seconds: float, hz: float, *, channels: int) -> np.ndarray:
    # A quiet tone rather than silence, so loudness normalization downstream has something to measure.
    t = np.arange(round(seconds * SAMPLE_RATE), dtype=np.float32) / SAMPLE_RATE
    wave = (0.1 * np.sin(2 * np.pi * hz * t)).astype(np.float32)
    return np.tile(wave, (channels, 1))
