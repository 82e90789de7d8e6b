"""zray's CPU steps with a simulated cost, so the benchmark measures scheduling, not two busy cores.

Two modes, picked by `SimSettings.real_steps`:

- simulated (the default): the step sleeps for its cost and writes small placeholder files at every
  output path, returning results shaped like the real step's (frame counts from the narration's
  length), so the driver, the manifest and everything downstream run unchanged;
- real: the real step runs on the benchmark's tiny media, then sleeps out the rest of its cost. On
  this 2-core machine the real audio work of many simultaneous steps overruns its cost, which the
  events file records, so that mode is for checking the outputs rather than for scaling figures.

`installed()` swaps these into `zray.pipeline.steps.STEPS`, the table the Driver turns into Ray
tasks when it is built; the functions travel to workers by reference, so workers need this folder
on their PYTHONPATH.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from typing import Any

from sim_engines import SimSettings, record

from zray.pipeline import steps
from zray.pipeline.plan import Node
from zray.store import Store

Result = dict[str, Any]


def _timed(kind: str, step: Callable[..., Result], store: Store, node: Node, *deps: Result) -> Result:
    settings = SimSettings.from_env()
    cost = settings.cpu_s.get(kind, 0.0)
    start = time.time()
    result = step(store, node, *deps) if settings.real_steps else PLACEHOLDERS[kind](store, node, *deps)
    real = time.time() - start
    if real < cost:
        time.sleep(cost - real)
    record(settings, kind, start, time.time(), gpu=False, nominal=cost, real=real)
    return result


def pad(store: Store, node: Node, raw: Result) -> Result:
    return _timed("pad", steps.pad, store, node, raw)


def segment(store: Store, node: Node, image: Result) -> Result:
    return _timed("segment", steps.segment, store, node, image)


def intro(store: Store, node: Node) -> Result:
    return _timed("intro", steps.intro, store, node)


def thumbs(store: Store, node: Node, base: Result) -> Result:
    return _timed("thumbs", steps.thumbs, store, node, base)


def subs(store: Store, node: Node, *deps: Result) -> Result:
    return _timed("subs", steps.subs, store, node, *deps)


def assemble(store: Store, node: Node, *deps: Result) -> Result:
    return _timed("video", steps.assemble, store, node, *deps)


SIM_STEPS: dict[str, Callable[..., Result]] = {
    "pad": pad,
    "segment": segment,
    "intro": intro,
    "thumbs": thumbs,
    "subs": subs,
    "video": assemble,
}


@contextlib.contextmanager
def installed() -> Iterator[None]:
    """Run zray with the simulated steps; the real table is restored afterwards."""
    real = dict(steps.STEPS)
    if set(real) != set(SIM_STEPS):
        raise RuntimeError(f"zray's steps changed ({sorted(real)}); update benchmarks/sim_steps.py")
    steps.STEPS.update(SIM_STEPS)
    try:
        yield
    finally:
        steps.STEPS.update(real)


# --- placeholders: what each step returns, without the media work --------------------------------


def _write(store: Store, node: Node) -> None:
    for key in node.outputs:
        store.write_bytes(key, f"simulated {node.kind} {node.key}\n".encode())


def _pad(store: Store, node: Node, raw: Result) -> Result:
    _write(store, node)
    frames = math.ceil(raw["seconds"] * node.params["fps"]) + 1  # the seed's frame-perfect padding
    return {
        "path": node.outputs[0],
        "frames": frames,
        "speech_seconds": raw["seconds"],
        "words": raw.get("words"),
    }


def _segment(store: Store, node: Node, image: Result) -> Result:
    _write(store, node)
    return {"path": node.outputs[0]}


def _intro(store: Store, node: Node) -> Result:
    _write(store, node)
    return {"path": node.outputs[0], "frames": 3 * node.params["video"]["fps"]}


def _thumbs(store: Store, node: Node, base: Result) -> Result:
    _write(store, node)
    return {"path": node.outputs[0], "variants": list(node.outputs[1:])}


def _subs(store: Store, node: Node, *deps: Result) -> Result:
    _write(store, node)
    return {"path": node.outputs[0], "cues": len(node.params["scenes"]), "chapters": 0}


def _assemble(store: Store, node: Node, *deps: Result) -> Result:
    _write(store, node)
    count = node.params["scenes"]
    pads = deps[1 + node.params["has_intro"] + count :]
    frames = sum(p["frames"] for p in pads)
    fps = node.params["video"]["fps"]
    return {
        "path": node.outputs[0],
        "frames": frames,
        "duration": frames / fps,
        "size": store.size(node.outputs[0]),
        "info": {},
    }


PLACEHOLDERS: dict[str, Callable[..., Result]] = {
    "pad": _pad,
    "segment": _segment,
    "intro": _intro,
    "thumbs": _thumbs,
    "subs": _subs,
    "video": _assemble,
}
