"""What each resident engine holder does: load engines once, turn requests into artifacts.

Plain classes (no Ray): `zray.actors.pool` turns them into Ray actors with resources from config,
and the in-process executor uses them as they are. Each `run(store, request, inputs)` writes the
request's artifact to its content-addressed place in the episode folder and returns a typed result,
so a retried request after an actor restart simply rewrites the same file.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from zray.engines.registry import EngineSpec
from zray.media.constants import SAMPLE_RATE
from zray.nodes import (
    ImageRequest,
    ImageResult,
    MusicRequest,
    MusicResult,
    NoInputs,
    SpeechRequest,
    SpeechResult,
)
from zray.store import Store


def _write_wav(store: Store, key: str, samples: Any, sample_rate: int) -> None:
    from zray.media import audio  # PyAV and scipy: only where a WAV is written

    with store.writer(key) as tmp:
        audio.write_wav(tmp, samples, sample_rate=sample_rate)


class _OneEngine:
    def __init__(self, spec: EngineSpec):
        self.engine = spec.create()

    def ready(self) -> dict[str, Any]:
        self.engine.load()
        return self.engine.identity()


class ImageWorker(_OneEngine):
    def run(self, store: Store, request: ImageRequest, inputs: NoInputs) -> ImageResult:
        image = self.engine.generate(
            request.prompt, width=request.width, height=request.height, seed=request.seed, label=request.label
        )
        with store.writer(request.output) as tmp:
            image.save(tmp, format="PNG")
        return ImageResult(path=request.output, width=image.size[0], height=image.size[1])


class TTSWorker:
    """One holder serves every language; engines are shared between languages that use the same one."""

    def __init__(self, specs: dict[str, EngineSpec]):
        self.specs = specs
        self.engines: dict[EngineSpec, Any] = {}
        for spec in specs.values():
            if spec not in self.engines:
                self.engines[spec] = spec.create()

    def ready(self) -> list[dict[str, Any]]:
        for engine in self.engines.values():
            engine.load()
        return [engine.identity() for engine in self.engines.values()]

    def run(self, store: Store, request: SpeechRequest, inputs: NoInputs) -> SpeechResult:
        engine = self.engines[self.specs[request.lang]]
        speech = engine.synthesize(request.text, lang=request.lang)
        _write_wav(store, request.output, speech.samples, speech.sample_rate)
        words = tuple(speech.words) if speech.words else None
        return SpeechResult(path=request.output, seconds=speech.seconds, words=words)


@dataclass
class _Bed:
    prompt: str
    seconds: float
    done: bool = False
    bed: Any = None
    error: BaseException | None = None


class MusicWorker(_OneEngine):
    """Music beds, several at once where the engine can (`generate_many`: MusicGen's graphs path
    makes ten beds in about the time of one): requests that arrive while a bed is being made wait
    and go into the next call together. The holder must take concurrent calls for that (the Ray
    actor runs with `max_concurrency = BATCH_MAX`); one call at a time, it makes one bed a call."""

    BATCH_MAX = 10
    # The first request waits this long for others sent with it (a batch's episodes start together).
    GATHER_S = 0.1

    def __init__(self, spec: EngineSpec):
        super().__init__(spec)
        self._engine_lock = threading.Lock()
        self._queue: list[_Bed] = []
        self._queue_lock = threading.Lock()

    def run(self, store: Store, request: MusicRequest, inputs: NoInputs) -> MusicResult:
        bed = self._bed(request)
        _write_wav(store, request.output, bed, SAMPLE_RATE)
        return MusicResult(path=request.output, seconds=bed.shape[-1] / SAMPLE_RATE)

    def _bed(self, request: MusicRequest) -> Any:
        if request.file or not hasattr(self.engine, "generate_many"):
            with self._engine_lock:
                return self.engine.generate(request.prompt, seconds=request.seconds, file=request.file)
        mine = _Bed(request.prompt, request.seconds)
        with self._queue_lock:
            self._queue.append(mine)
        time.sleep(self.GATHER_S)
        with self._engine_lock:  # the engine makes one batch at a time; the others queue meanwhile
            if not mine.done:
                with self._queue_lock:
                    batch = [b for b in self._queue if b.seconds == mine.seconds][: self.BATCH_MAX]
                    if mine not in batch:
                        batch = [mine, *batch[: self.BATCH_MAX - 1]]
                    self._queue = [b for b in self._queue if b not in batch]
                try:
                    beds = self.engine.generate_many([b.prompt for b in batch], seconds=mine.seconds)
                    for item, bed in zip(batch, beds, strict=True):
                        item.bed = bed
                except BaseException as exc:  # every request of the batch fails with it
                    for item in batch:
                        item.error = exc
                for item in batch:
                    item.done = True
        if mine.error is not None:
            raise mine.error
        return mine.bed


WORKERS: dict[str, type] = {"image": ImageWorker, "tts": TTSWorker, "music": MusicWorker}
