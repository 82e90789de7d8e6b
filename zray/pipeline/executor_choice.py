"""Where a run's stale work runs: Ray (one session, resident engine actors), or this process when
the only stale steps are a few that need no GPU (a changed title, a deleted MP4, one edited line),
where starting Ray would cost more than the work."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Mapping
from typing import Any

from zray.actors.workers import WORKERS
from zray.config import Config
from zray.nodes import MODEL_KINDS, ROLES, Kind, Node
from zray.pipeline.engine_setup import EngineSetup
from zray.pipeline.executor import InProcessExecutor
from zray.pipeline.prepare import Prepared
from zray.store import Store
from zray.work import Executor, StepFn

# At most this many stale steps, none needing a GPU, run in this process instead of on Ray.
IN_PROCESS_MAX_STEPS = 12


def check_cluster(store: Store, config: Config) -> None:
    """Joining a cluster: it answers, and a local output is one every node sees. An embedded
    instance is this machine alone, so it needs neither check (nor Ray started to make them)."""
    if config.address:
        from zray.actors.cluster import check_reachable

        check_reachable(config.address)
    elif "ray" not in sys.modules or not sys.modules["ray"].is_initialized():
        return
    from zray.actors.cluster import check_shared_storage, connect

    connect(config)
    check_shared_storage(store, config)


def choose_executor(stale: dict[int, Prepared], config: Config, engines: EngineSetup) -> str:
    if config.executor != "auto":
        return config.executor
    if config.address:
        return "ray"
    nodes = [n for prep in stale.values() for n in prep.stale]
    gpu = any(_spec_of(n, engines).uses_gpu for n in nodes if n.kind in MODEL_KINDS)
    return "in-process" if not gpu and len(nodes) <= IN_PROCESS_MAX_STEPS else "ray"


def _spec_of(node: Node, engines: EngineSetup) -> Any:
    role = ROLES[node.kind]
    return engines.tts[node.lang or ""] if role == "tts" else getattr(engines, role)


@contextlib.contextmanager
def open_executor(
    kind: str,
    config: Config,
    engines: EngineSetup,
    roles: set[str],
    store: Store,
    steps: Mapping[Kind, StepFn] | None = None,
) -> Iterator[Executor]:
    if steps is None:
        from zray.pipeline.steps import STEPS  # media libraries: only when there is work

        steps = STEPS

    if kind == "in-process":
        args = {
            "image": (engines.image,),
            "tts": (engines.tts,),
            "music": (engines.music,),
            "video": (engines.video,),
        }
        factories = {role: (lambda role=role: WORKERS[role](*args[role])) for role in roles}
        executor = InProcessExecutor(steps=steps, workers=factories, threads=os.cpu_count() or 1)
        try:
            yield executor
        finally:
            executor.close()
        return
    import ray

    from zray.actors.cluster import check_shared_storage, connect
    from zray.actors.executor import RayExecutor
    from zray.actors.pool import ActorPool

    embedded = connect(config)
    try:
        check_shared_storage(store, config)
        ray_executor = RayExecutor(
            ActorPool(config, engines, roles), steps=steps, task_retries=config.task_retries
        )
        try:
            yield ray_executor
        finally:
            ray_executor.close()
    finally:
        if embedded:
            ray.shutdown()
