"""What each resident engine holder does: load engines once, turn requests into artifacts.

Plain classes (no Ray): `zray.actors.pool` turns them into Ray actors with resources from config,
and the in-process executor uses them as they are. Each `run(store, request, inputs)` writes the
request's artifact to its content-addressed place in the episode folder and returns a typed result,
so a retried request after an actor restart simply rewrites the same file.
"""

from __future__ import annotations

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


class MusicWorker(_OneEngine):
    def run(self, store: Store, request: MusicRequest, inputs: NoInputs) -> MusicResult:
        bed = self.engine.generate(request.prompt, seconds=request.seconds, file=request.file)
        _write_wav(store, request.output, bed, SAMPLE_RATE)
        return MusicResult(path=request.output, seconds=bed.shape[-1] / SAMPLE_RATE)


WORKERS: dict[str, type] = {"image": ImageWorker, "tts": TTSWorker, "music": MusicWorker}
