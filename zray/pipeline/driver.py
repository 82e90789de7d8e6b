"""Drive plans on Ray: submit what is stale as soon as it can run, record what lands, report failures.

Nothing here waits for a phase: every stale node is submitted with ObjectRefs of the nodes it
consumes, so Ray starts it the moment its inputs exist (padding starts when its narration lands,
a language is assembled when its last scene is ready). Several episodes run at once; their nodes
are submitted in turn, one episode after another, so scenes from every episode in flight share
the resident GPU actors fairly. A bound on submitted-but-unfinished work keeps a large batch from
flooding the scheduler.

An episode counts toward the episodes-in-flight limit only while it still has model calls to make:
once its last image, narration and music are done its remaining work is CPU work (padding, encoding),
and the next episode starts so the GPUs never wait on an episode's tail. Episodes in their tail are
bounded too, at as many again.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import ray
from ray.exceptions import RayActorError, RayError, RayTaskError

from zray.actors.pool import ActorPool
from zray.pipeline.manifest import Manifest
from zray.pipeline.plan import Node, Plan
from zray.pipeline.steps import STEPS
from zray.store import Store

ACTOR_KINDS = {"image", "tts", "music"}
HEALTH_INTERVAL_S = 2.0  # how often the driver asks which nodes are alive
log = logging.getLogger("zray")


@dataclass
class Job:
    """One episode's stale work and what became of it."""

    name: str
    plan: Plan
    manifest: Manifest
    stale: list[Node]
    built: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # language (or "all") -> first reason
    timings: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    notes: list[str] = field(default_factory=list)
    started: float = 0.0
    finished: float = 0.0
    refs: dict[str, Any] = field(default_factory=dict)
    old_outputs: dict[str, tuple[str, ...]] = field(default_factory=dict)  # deliverables' previous files
    queue: deque[Node] = field(default_factory=deque)
    running: int = 0
    model_calls: int = 0  # image, narration and music nodes not yet finished

    @property
    def in_model_phase(self) -> bool:
        return self.model_calls > 0

    @property
    def done(self) -> bool:
        return not self.queue and self.running == 0


class Driver:
    def __init__(
        self,
        store: Store,
        pool: ActorPool,
        *,
        max_in_flight: int,
        task_retries: int,
        max_jobs: int = 1,
        on_node: Callable[[Job, Node, bool], None] | None = None,
        on_job: Callable[[Job], None] | None = None,
    ):
        self.store, self.pool = store, pool
        self.max_in_flight = max_in_flight
        self.max_jobs = max(1, max_jobs)
        self.task_retries = task_retries
        self.on_node = on_node or (lambda job, node, ok: None)
        self.on_job = on_job or (lambda job: None)
        self.pending: dict[Any, tuple[Job, Node, float]] = {}
        self.tasks = {kind: ray.remote(_on_node(fn)) for kind, fn in STEPS.items()}

    def run(self, jobs: list[Job]) -> None:
        waiting = deque(jobs)
        active: list[Job] = []
        checked = time.monotonic()
        try:
            while waiting or active:
                while waiting and self._room(active):
                    active.append(self._start(waiting.popleft()))
                self._submit_round(active)
                if self.pending:
                    self._collect()
                if time.monotonic() - checked > HEALTH_INTERVAL_S:
                    checked = time.monotonic()
                    self._recover(self.pool.lost_requests())
                # Throttled, so records that landed just before a quiet spell still reach the store
                # within the flush interval: a kill -9 then loses at most that much work.
                for job in active:
                    job.manifest.flush()
                for job in [j for j in active if j.done]:
                    active.remove(job)
                    self._finish(job)
        except KeyboardInterrupt:
            for ref in self.pending:
                ray.cancel(ref, force=False)
            raise
        finally:
            for job in jobs:
                job.manifest.flush(force=True)

    def _room(self, active: list[Job]) -> bool:
        modelling = sum(1 for job in active if job.in_model_phase)
        return modelling < self.max_jobs and len(active) < 2 * self.max_jobs

    def _start(self, job: Job) -> Job:
        # Drop the records of what is about to be rebuilt before touching any file.
        job.manifest.forget([n.id for n in job.stale])
        job.manifest.flush(force=True)
        job.queue = deque(job.stale)
        job.model_calls = sum(1 for n in job.stale if n.kind in ACTOR_KINDS)
        job.started = time.monotonic()
        return job

    def _finish(self, job: Job) -> None:
        job.finished = time.monotonic()
        job.manifest.flush(force=True)
        self.on_job(job)

    def _submit_round(self, active: list[Job]) -> None:
        """Submit from each active episode in turn until the in-flight bound is reached."""
        progress = True
        while progress and len(self.pending) < self.max_in_flight:
            progress = False
            for job in active:
                if job.queue and len(self.pending) < self.max_in_flight:
                    self._submit(job, job.queue.popleft())
                    progress = True

    def _submit(self, job: Job, node: Node) -> None:
        args = [job.refs[d] if d in job.refs else job.manifest.result(d) for d in node.deps]
        if node.kind in ACTOR_KINDS:
            ref = self.pool.submit(node.kind, self.store, node, *args)
        else:
            # A worker that dies is retried; an exception from our code is deterministic and is not.
            options = {"num_cpus": 1, "max_retries": self.task_retries, "retry_exceptions": False}
            ref = (
                self.tasks[node.kind]
                .options(name=f"zray:{job.name}:{node.id}", **options)
                .remote(self.store, node, *args)
            )
        job.refs[node.id] = ref
        job.running += 1
        self.pending[ref] = (job, node, time.monotonic())

    def _collect(self) -> None:
        ready, _ = ray.wait(list(self.pending), num_returns=1, timeout=0.5)
        for ref in ready:
            job, node, started = self.pending.pop(ref)
            job.running -= 1
            if node.kind in ACTOR_KINDS:
                job.model_calls -= 1
            self.pool.done(ref)
            try:
                result = ray.get(ref)
            except RayError as exc:
                self._failed(job, node, exc)
                self.on_node(job, node, False)
                continue
            job.timings[node.stage] += time.monotonic() - started
            if result.get("note"):
                job.notes.append(result["note"])
                log.info("%s: %s", job.name, result["note"])
            job.manifest.record(node, result)
            job.built.append(node.id)
            self.on_node(job, node, True)

    def _recover(self, lost: list[Any]) -> None:
        """Send again the requests that a dead node's actors held, and everything submitted after
        them that waits on their results (those refs would never resolve)."""
        lost_ids: dict[int, set[str]] = defaultdict(set)
        jobs: dict[int, Job] = {}
        for ref in lost:
            if ref in self.pending:
                job, node, _ = self.pending[ref]
                lost_ids[id(job)].add(node.id)
                jobs[id(job)] = job
        for key, job in jobs.items():
            affected, redo = set(lost_ids[key]), []
            for node in job.plan.nodes.values():  # plan order puts inputs before their consumers
                ref = job.refs.get(node.id)
                if ref in self.pending and (node.id in affected or affected.intersection(node.deps)):
                    affected.add(node.id)
                    redo.append(node)
            for node in redo:
                ref = job.refs.pop(node.id)
                self.pending.pop(ref)
                self.pool.done(ref)
                job.running -= 1
                with contextlib.suppress(RayError, ValueError, TypeError):
                    ray.cancel(ref)
            for node in redo:
                self._submit(job, node)
            log.warning("%s: %d step(s) sent again after a node was lost", job.name, len(redo))

    def _failed(self, job: Job, node: Node, exc: Exception) -> None:
        scope = node.lang or "all"
        reason = describe_error(exc)
        if scope not in job.failed:
            job.failed[scope] = f"{node.id}: {reason}"
            log.error("%s: %s failed: %s", job.name, node.id, reason)


def _on_node(step: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    """Run a step and note which node ran it (run.json then shows how work spread over a cluster)."""

    def run(*args: Any) -> dict[str, Any]:
        result = step(*args)
        return {**result, "node": ray.get_runtime_context().get_node_id()[:12]}

    run.__name__ = run.__qualname__ = step.__name__
    return run


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
