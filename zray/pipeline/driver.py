"""Drive a plan on Ray: submit what is stale as soon as it can run, record what lands, report failures.

Nothing here waits for a phase: every stale node is submitted with ObjectRefs of the nodes it
consumes, so Ray starts it the moment its inputs exist (padding starts when its narration lands,
a language is assembled when its last scene is ready). A bound on submitted-but-unfinished work
keeps a huge batch from flooding the scheduler.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import ray
from ray.exceptions import RayActorError, RayError, RayTaskError

from zray.actors.pool import ActorPool
from zray.pipeline.manifest import Manifest
from zray.pipeline.plan import Node, Plan
from zray.pipeline.steps import STEPS
from zray.store import Store

ACTOR_KINDS = {"image", "tts", "music"}
log = logging.getLogger("zray")


@dataclass
class Outcome:
    built: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # language (or "all") -> first reason
    timings: dict[str, float] = field(default_factory=lambda: defaultdict(float))


class Driver:
    def __init__(
        self,
        plan: Plan,
        store: Store,
        manifest: Manifest,
        pool: ActorPool,
        *,
        max_in_flight: int,
        task_retries: int,
        on_done: Callable[[Node, bool], None] | None = None,
    ):
        self.plan, self.store, self.manifest, self.pool = plan, store, manifest, pool
        self.max_in_flight = max_in_flight
        self.on_done = on_done or (lambda node, ok: None)
        self.refs: dict[str, ray.ObjectRef] = {}
        self.pending: dict[ray.ObjectRef, tuple[Node, float]] = {}
        self.outcome = Outcome()
        self.task_retries = task_retries
        self.tasks = {kind: ray.remote(fn) for kind, fn in STEPS.items()}

    def run(self, nodes: list[Node]) -> Outcome:
        # Drop the records of what is about to be rebuilt before touching any file.
        self.manifest.forget([n.id for n in nodes])
        self.manifest.flush(force=True)
        try:
            for node in nodes:
                while len(self.pending) >= self.max_in_flight:
                    self._collect(block=True)
                self._submit(node)
            while self.pending:
                self._collect(block=True)
        except KeyboardInterrupt:
            for ref in self.pending:
                ray.cancel(ref, force=False)
            raise
        finally:
            self.manifest.flush(force=True)
        return self.outcome

    def _submit(self, node: Node) -> None:
        args = [self.refs[d] if d in self.refs else self.manifest.result(d) for d in node.deps]
        if node.kind in ACTOR_KINDS:
            ref = self.pool.submit(node.kind, self.store, node, *args)
        else:
            # A worker that dies is retried; an exception from our code is deterministic and is not.
            options = {"num_cpus": 1, "max_retries": self.task_retries, "retry_exceptions": False}
            ref = (
                self.tasks[node.kind]
                .options(name=f"zray:{node.id}", **options)
                .remote(self.store, node, *args)
            )
        self.refs[node.id] = ref
        self.pending[ref] = (node, time.monotonic())

    def _collect(self, *, block: bool) -> None:
        ready, _ = ray.wait(list(self.pending), num_returns=1, timeout=0.5 if block else 0)
        for ref in ready:
            node, started = self.pending.pop(ref)
            self.pool.done(ref)
            try:
                result = ray.get(ref)
            except RayError as exc:
                self._failed(node, exc)
                self.on_done(node, False)
                continue
            self.outcome.timings[node.stage] += time.monotonic() - started
            if result.get("note"):
                log.info("%s", result["note"])
            self.manifest.record(node, result)
            self.manifest.flush()
            self.outcome.built.append(node.id)
            self.on_done(node, True)

    def _failed(self, node: Node, exc: Exception) -> None:
        scope = node.lang or "all"
        reason = describe_error(exc)
        if scope not in self.outcome.failed:
            self.outcome.failed[scope] = f"{node.id}: {reason}"
            log.error("%s failed: %s", node.id, reason)


def describe_error(exc: BaseException) -> str:
    """One line for a failure inside Ray: the original exception, not Ray's wrapping."""
    if isinstance(exc, RayTaskError):
        cause = exc.cause if exc.cause is not None else exc
        if isinstance(cause, RayTaskError | RayActorError):
            return describe_error(cause)
        text = str(cause).strip().splitlines()
        return f"{type(cause).__name__}: {text[-1] if text else ''}".rstrip(": ")
    if isinstance(exc, RayActorError):
        return "an engine actor died and could not be restarted (out of memory or killed); see the Ray logs"
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def existing_keys(store: Store, episode: str) -> set[str]:
    return set(store.list(episode))
