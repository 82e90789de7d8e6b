"""The seed's schedule, for comparison: phase after phase, episode after episode, in one process.

Thumbnails; then per scene its image and, per language, its narration and padding; then the music;
then each language's subtitles and assembly. Each still is encoded once (zray's segment step) before
the first assembly, so both schedules do the same work. The same engines (zray's workers) and the
same simulated steps are called directly, one at a time: no two model calls ever overlap.
"""

from __future__ import annotations

import time

import sim_steps

from zray.actors.workers import ImageWorker, MusicWorker, TTSWorker
from zray.config import Config
from zray.nodes import Kind, Node, Result
from zray.pipeline.engine_setup import prepare_engines
from zray.pipeline.plan import Plan
from zray.pipeline.prepare import RunRequest, open_store, prepare_episode
from zray.script import Script


def seed_order(plan: Plan) -> list[Node]:
    nodes = plan.nodes
    labels = [n.id.split(":", 1)[1] for n in nodes.values() if n.kind is Kind.IMAGE and n.stage == "images"]
    order: list[str] = []
    for lang in plan.languages:
        order += [f"thumb_base:{lang}", f"thumbs:{lang}"]
    for label in labels:
        order.append(f"image:{label}")
        for lang in plan.languages:
            order += [f"tts:{lang}:{label}", f"pad:{lang}:{label}"]
    order.append("music")
    order += [f"segment:{label}" for label in labels]
    for lang in plan.languages:
        order += [f"subs:{lang}", f"video:{lang}"]
    if sorted(order) != sorted(nodes):
        raise RuntimeError(f"the plan has nodes the seed order does not know: {set(nodes) ^ set(order)}")
    return [nodes[node_id] for node_id in order]


def run_sequential(items: list[tuple[RunRequest, Script]], config: Config) -> float:
    """Episode after episode in this process, no Ray; returns the makespan in seconds."""
    root = open_store(config.output)
    languages = list(dict.fromkeys(lang for request, _ in items for lang in request.languages))
    engines = prepare_engines(languages, config, "draft")
    workers = {
        Kind.IMAGE: ImageWorker(engines.image),
        Kind.SPEECH: TTSWorker(engines.tts),
        Kind.MUSIC: MusicWorker(engines.music),
    }
    start = time.time()
    for request, script in items:
        prepared = prepare_episode(request, script, config, root, engines)
        try:
            results: dict[str, Result] = {}
            for node in seed_order(prepared.plan):
                run = workers[node.kind].run if node.kind in workers else sim_steps.SIM_STEPS[node.kind]
                results[node.id] = run(prepared.store, node.request, node.resolve(results))
        finally:
            prepared.release()
    return time.time() - start
