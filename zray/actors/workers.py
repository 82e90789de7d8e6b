"""What each long-lived actor holds: engines, loaded once and kept resident.

Plain classes: `zray.actors.pool` turns them into Ray actors with resources from config. Each
`run(store, node)` writes the node's artifact to its content-addressed place in the store and
returns a small result, so a retried request after an actor restart simply rewrites the same file.
"""

from __future__ import annotations

from typing import Any

from zray.engines.registry import EngineSpec
from zray.media import audio
from zray.pipeline.plan import Node
from zray.store import Store


class _OneEngine:
    def __init__(self, spec: EngineSpec):
        self.engine = spec.create()

    def ready(self) -> dict[str, Any]:
        self.engine.load()
        return self.engine.identity()


class ImageWorker(_OneEngine):
    def run(self, store: Store, node: Node) -> dict[str, Any]:
        p = node.params
        image = self.engine.generate(
            p["prompt"], width=p["width"], height=p["height"], seed=p["seed"], label=p["label"]
        )
        with store.writer(node.outputs[0]) as tmp:
            image.save(tmp, format="PNG")
        return {"path": node.outputs[0], "size": list(image.size)}


class TTSWorker:
    """One actor serves every language; engines are shared between languages that use the same one."""

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

    def run(self, store: Store, node: Node) -> dict[str, Any]:
        lang = node.params["lang"]
        engine = self.engines[self.specs[lang]]
        speech = engine.synthesize(node.params["text"], lang=lang)
        with store.writer(node.outputs[0]) as tmp:
            audio.write_wav(tmp, speech.samples, sample_rate=speech.sample_rate)
        words = (
            [{"text": w.word, "start": w.start, "end": w.end} for w in speech.words] if speech.words else None
        )
        return {"path": node.outputs[0], "seconds": speech.seconds, "words": words}


class MusicWorker(_OneEngine):
    def run(self, store: Store, node: Node) -> dict[str, Any]:
        extra = {"file": node.params["file"]} if node.params.get("file") else {}
        bed = self.engine.generate(node.params["prompt"], seconds=node.params["seconds"], **extra)
        with store.writer(node.outputs[0]) as tmp:
            audio.write_wav(tmp, bed, sample_rate=audio.SAMPLE_RATE)
        return {"path": node.outputs[0], "seconds": bed.shape[-1] / audio.SAMPLE_RATE}
