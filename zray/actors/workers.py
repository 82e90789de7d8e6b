"""What each resident engine holder does: load engines once, turn requests into artifacts.

Plain classes (no Ray): `zray.actors.pool` turns them into Ray actors with resources from config,
and the in-process executor uses them as they are. Each `run(store, request, inputs)` writes the
request's artifact to its content-addressed place in the episode folder and returns a typed result,
so a retried request after an actor restart simply rewrites the same file.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from zray.engines.base import EngineError
from zray.engines.registry import EngineSpec
from zray.media.constants import SAMPLE_RATE
from zray.nodes import (
    ClipInputs,
    ClipRequest,
    ClipResult,
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
class _Waiting:
    item: Any
    group: Any
    done: bool = False
    value: Any = None
    error: BaseException | None = None


class _Batches:
    """Requests that arrive while the engine is busy wait and go into its next call together, up
    to `limit` of one group (what one call can take: beds of one length, clips of one size). The
    first request waits `gather_s` for others sent with it (a batch's episodes start together).
    The holder must take concurrent calls for this (a Ray actor with `max_concurrency`, or the
    in-process executor's threads); one call at a time, every call is a batch of one."""

    def __init__(self, *, limit: int, gather_s: float) -> None:
        self.limit, self.gather_s = limit, gather_s
        self._engine_lock = threading.Lock()
        self._queue: list[_Waiting] = []
        self._queue_lock = threading.Lock()

    def run(self, item: Any, group: Any, call: Callable[[list[Any], Any], list[Any]]) -> Any:
        """`call(items, group)` on a batch holding `item`; returns this item's value."""
        mine = _Waiting(item, group)
        with self._queue_lock:
            self._queue.append(mine)
        time.sleep(self.gather_s)
        with self._engine_lock:  # the engine makes one batch at a time; the others queue meanwhile
            if not mine.done:
                with self._queue_lock:
                    batch = [w for w in self._queue if w.group == mine.group][: self.limit]
                    if mine not in batch:
                        batch = [mine, *batch[: self.limit - 1]]
                    self._queue = [w for w in self._queue if w not in batch]
                try:
                    values = call([w.item for w in batch], mine.group)
                    for waiting, value in zip(batch, values, strict=True):
                        waiting.value = value
                except BaseException as exc:  # every request of the batch fails with it
                    for waiting in batch:
                        waiting.error = exc
                for waiting in batch:
                    waiting.done = True
        if mine.error is not None:
            raise mine.error
        return mine.value

    def alone(self, call: Callable[[], Any]) -> Any:
        """`call()` with the engine to itself (a request that cannot share a call)."""
        with self._engine_lock:
            return call()


class MusicWorker(_OneEngine):
    """Music beds, several at once where the engine can (`generate_many`: MusicGen's graphs path
    makes ten beds in about the time of one): requests that arrive while a bed is being made wait
    and go into the next call together (see `_Batches`; the Ray actor runs with `max_concurrency =
    BATCH_MAX`)."""

    BATCH_MAX = 10
    # The first request waits this long for others sent with it (a batch's episodes start together).
    GATHER_S = 0.1

    def __init__(self, spec: EngineSpec):
        super().__init__(spec)
        self._batches = _Batches(limit=self.BATCH_MAX, gather_s=self.GATHER_S)

    def run(self, store: Store, request: MusicRequest, inputs: NoInputs) -> MusicResult:
        bed = self._bed(request)
        _write_wav(store, request.output, bed, SAMPLE_RATE)
        return MusicResult(path=request.output, seconds=bed.shape[-1] / SAMPLE_RATE)

    def _bed(self, request: MusicRequest) -> Any:
        if request.file or not hasattr(self.engine, "generate_many"):
            return self._batches.alone(
                lambda: self.engine.generate(request.prompt, seconds=request.seconds, file=request.file)
            )
        return self._batches.run(
            request.prompt,
            request.seconds,
            lambda prompts, seconds: self.engine.generate_many(prompts, seconds=seconds),
        )


class VideoWorker(_OneEngine):
    """Clips from pictures (motion "generate"): clips of one size and length that arrive together
    go to the engine in one call (`generate_many` where it has one: the model stays warm between
    them), as beds do; each is written as an MP4 at 24 fps."""

    BATCH_MAX = 4
    GATHER_S = 0.1

    def __init__(self, spec: EngineSpec):
        super().__init__(spec)
        self._batches = _Batches(limit=self.BATCH_MAX, gather_s=self.GATHER_S)

    def run(self, store: Store, request: ClipRequest, inputs: ClipInputs) -> ClipResult:
        from PIL import Image

        from zray.media.generated import CLIP_FPS
        from zray.media.video.clip import write_clip  # PyAV: only where a clip is written

        with store.local_copy(inputs.image.path) as local, Image.open(local) as opened:
            picture = opened.convert("RGB")
        ask = {
            "image": picture,
            "prompt": request.prompt,
            "width": request.width,
            "height": request.height,
            "frames": request.frames,
            "seed": request.seed,
            "layers": request.layers,
        }
        frames = self._batches.run(ask, (request.width, request.height, request.frames), self._make)
        with store.writer(request.output) as tmp:
            count = write_clip(frames, tmp, fps=CLIP_FPS)
            if count != request.frames:  # never left where a later run would trust it
                raise EngineError(f"the {self.engine.name} engine made {count} frames, not {request.frames}")
        return ClipResult(path=request.output, frames=count, width=request.width, height=request.height)

    def _make(self, asks: list[dict[str, Any]], group: Any) -> list[Any]:
        if len(asks) > 1 and hasattr(self.engine, "generate_many"):
            return list(self.engine.generate_many(asks))
        return [self.engine.generate(ask.pop("image"), ask.pop("prompt"), **ask) for ask in asks]


WORKERS: dict[str, type] = {
    "image": ImageWorker,
    "tts": TTSWorker,
    "music": MusicWorker,
    "video": VideoWorker,
}
