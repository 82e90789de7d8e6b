"""Music beds requested together are made in one `generate_many` call, each the bed it would be alone."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import ClassVar

import numpy as np

from zray.actors.workers import MusicWorker
from zray.engines.registry import EngineSpec
from zray.nodes import MusicRequest, NoInputs
from zray.store import Store


class CountingEngine:
    """A music engine that says how it was called (a stand-in: the batching is the worker's)."""

    calls: ClassVar[list[tuple[str, ...]]] = []

    def __init__(self) -> None:
        self.lock = threading.Lock()

    def load(self) -> None:
        pass

    def identity(self) -> dict:
        return {"engine": "counting"}

    def _one(self, prompt: str, seconds: float) -> np.ndarray:
        seed = sum(prompt.encode())
        return np.random.default_rng(seed).uniform(-0.1, 0.1, (2, int(seconds * 48000))).astype(np.float32)

    def generate(self, prompt: str, *, seconds: float, file: str | None = None) -> np.ndarray:
        CountingEngine.calls.append((prompt,))
        return self._one(prompt, seconds)

    def generate_many(self, prompts: list[str], *, seconds: float) -> list[np.ndarray]:
        CountingEngine.calls.append(tuple(prompts))
        return [self._one(p, seconds) for p in prompts]


def test_requests_sent_together_share_one_call_and_get_their_own_bed(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(EngineSpec, "create", lambda self: CountingEngine())
    holder = MusicWorker(EngineSpec("counting", "music"))
    CountingEngine.calls = []
    store = Store(str(tmp_path))
    prompts = [f"prompt {i}" for i in range(4)]
    results: dict[str, Path] = {}

    def ask(prompt: str) -> None:
        request = MusicRequest(prompt=prompt, seconds=0.5, output=f"{prompt.replace(' ', '_')}.wav")
        results[prompt] = holder.run(store, request, NoInputs()).path

    threads = [threading.Thread(target=ask, args=(p,)) for p in prompts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(p for call in CountingEngine.calls for p in call) == prompts
    assert len(CountingEngine.calls) < len(prompts), "no request was batched with another"
    from zray.media import audio

    for prompt in prompts:
        made = audio.decode_audio(tmp_path / results[prompt], channels=2)
        alone = CountingEngine()._one(prompt, 0.5)
        assert np.abs(made - np.clip(alone, -1, 1)).max() < 1e-3


def test_a_studio_track_is_never_batched(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(EngineSpec, "create", lambda self: CountingEngine())
    holder = MusicWorker(EngineSpec("counting", "music"))
    CountingEngine.calls = []
    request = MusicRequest(prompt="p", seconds=0.5, output="a.wav", file="track.wav")
    holder.run(Store(str(tmp_path)), request, NoInputs())
    assert CountingEngine.calls == [("p",)]
