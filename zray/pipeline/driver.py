"""The scheduler: submit what is stale as soon as its inputs exist, record what lands, report failures.

It knows nothing of Ray: an executor (`zray.work.Executor`) runs the work. A node is submitted
the moment every node it consumes has a result (recorded from an earlier run, or landed in this
one), so nothing waits for a phase: padding starts when its narration lands, a language is
assembled when its last scene is ready. Several episodes run at once; their ready nodes are
submitted in turn, one episode after another, so scenes from every episode in flight share the
resident engine actors fairly. A bound on submitted-but-unfinished work keeps a large batch from
flooding the executor.

An episode counts toward the episodes-in-flight limit only while it still has model calls to make:
once its last image, narration and music are done its remaining work is CPU work (padding, encoding),
and the next episode starts so the GPUs never wait on an episode's tail. Episodes in their tail are
bounded too, at as many again.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from zray.episode import NodeEntry
from zray.nodes import MODEL_KINDS, Kind, Node, Result
from zray.pipeline.plan import Plan
from zray.pipeline.records import RunRecord
from zray.pipeline.report import EPISODE, Failures
from zray.store import Store, StoreError
from zray.work import Done, Executor, StepProgress, Work

HEALTH_INTERVAL_S = 2.0  # how often the scheduler asks the executor for lost work
log = logging.getLogger("zray")


@dataclass
class Job:
    """One episode's stale work and what became of it."""

    name: str
    plan: Plan
    record: RunRecord
    stale: list[Node]
    store: Store  # the episode folder
    built: list[str] = field(default_factory=list)
    failed: Failures = field(default_factory=Failures)  # language (or the whole episode) -> first reason
    timings: dict[str, float] = field(default_factory=lambda: defaultdict(float))  # stage -> step seconds
    notes: list[str] = field(default_factory=list)
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)  # node id -> how it ran this time
    started: float = 0.0
    finished: float = 0.0
    old_entries: dict[str, NodeEntry] = field(default_factory=dict)  # deliverables' records before the run
    results: dict[str, Result] = field(default_factory=dict)  # what each node made (recorded or new)
    waiting: list[Node] = field(default_factory=list)  # stale nodes not yet submitted, in plan order
    running: int = 0
    model_calls: int = 0  # image, narration and music nodes not yet finished
    rebuilt_damaged: set[str] = field(default_factory=set)

    @property
    def in_model_phase(self) -> bool:
        return self.model_calls > 0

    @property
    def done(self) -> bool:
        return not self.waiting and self.running == 0


class Driver:
    def __init__(
        self,
        executor: Executor,
        *,
        max_in_flight: int,
        max_jobs: int = 1,
        on_node: Callable[[Job, Node, bool], None] | None = None,
        on_job: Callable[[Job], None] | None = None,
        on_progress: Callable[[list[StepProgress]], None] | None = None,
    ):
        self.executor = executor
        self.max_in_flight = max_in_flight
        self.max_jobs = max(1, max_jobs)
        self.on_node = on_node or (lambda job, node, ok: None)
        self.on_job = on_job or (lambda job: None)
        self.on_progress = on_progress
        self.pending: dict[tuple[str, str], Job] = {}

    def run(self, jobs: list[Job]) -> None:
        waiting = list(jobs)
        active: list[Job] = []
        checked = time.monotonic()
        try:
            while waiting or active:
                while waiting and self._room(active):
                    active.append(self._start(waiting.pop(0)))
                self._submit_round(active)
                if self.pending:
                    for done in self.executor.wait(0.5):
                        self._landed(done)
                    # Progress inside long steps (frames encoded), from executors that collect it.
                    progress = getattr(self.executor, "progress", None)
                    if self.on_progress is not None and progress is not None:
                        self.on_progress(progress())
                if time.monotonic() - checked > HEALTH_INTERVAL_S:
                    checked = time.monotonic()
                    for work in self.executor.lost():
                        log.warning("%s: %s sent again after its machine was lost", work.job, work.node.id)
                        self.executor.submit(work)
                # Throttled, so records that landed just before a quiet spell still reach the store
                # within the flush interval: a kill -9 then loses at most that much work.
                for job in active:
                    job.record.flush()
                for job in [j for j in active if j.done]:
                    active.remove(job)
                    self._finish(job)
        except KeyboardInterrupt:
            self.executor.cancel()
            raise
        finally:
            for job in jobs:
                try:
                    job.record.flush(force=True)
                except StoreError as exc:  # already failing (or interrupted): say so, keep the first error
                    log.error("%s: %s", job.name, exc)

    def _room(self, active: list[Job]) -> bool:
        modelling = sum(1 for job in active if job.in_model_phase)
        return modelling < self.max_jobs and len(active) < 2 * self.max_jobs

    def _start(self, job: Job) -> Job:
        # Drop the records of what is about to be rebuilt before touching any file.
        job.record.forget(n.id for n in job.stale)
        job.record.flush(force=True)
        stale = {n.id for n in job.stale}
        for node in job.plan.nodes.values():
            if node.id not in stale and node.id in job.record.nodes:
                job.results[node.id] = job.record.result(node)
        job.waiting = list(job.stale)
        job.model_calls = sum(1 for n in job.stale if n.kind in MODEL_KINDS)
        job.started = time.monotonic()
        return job

    def _finish(self, job: Job) -> None:
        job.finished = time.monotonic()
        job.record.flush(force=True)
        self.on_job(job)

    def _ready(self, job: Job, *, clips: bool) -> Node | None:
        for node in job.waiting:
            if (node.kind is Kind.CLIP) == clips and all(dep in job.results for dep in node.deps):
                job.waiting.remove(node)
                return node
        return None

    def _submit_round(self, active: list[Job]) -> None:
        """Submit ready work from each active episode in turn until the in-flight bound is reached.

        Generated clips, the heaviest GPU work, go last in every round: every episode's ready
        pictures, voices and music go first, so the CPU steps that need them never wait behind a clip."""
        for clips in (False, True):
            progress = True
            while progress and len(self.pending) < self.max_in_flight:
                progress = False
                for job in active:
                    if len(self.pending) >= self.max_in_flight:
                        break
                    node = self._ready(job, clips=clips)
                    if node is not None:
                        self._submit(job, node)
                        progress = True

    def _submit(self, job: Job, node: Node) -> None:
        expected = {}
        for dep in node.deps:
            expected.update({path: rec.sha256 for path, rec in job.record.files(dep).items()})
        work = Work(
            job=job.name, node=node, inputs=node.resolve(job.results), store=job.store, expected=expected
        )
        self.pending[(job.name, node.id)] = job
        job.running += 1
        self.executor.submit(work)

    def _landed(self, done: Done) -> None:
        node, outcome = done.work.node, done.outcome
        job = self.pending.pop((done.work.job, node.id))
        job.running -= 1
        if node.kind in MODEL_KINDS:
            job.model_calls -= 1
        step = {
            "started": round(outcome.started, 3),
            "ended": round(outcome.ended, 3),
            "seconds": round(outcome.ended - outcome.started, 3),
            **outcome.where,
        }
        if outcome.damaged is not None and self._rebuild_damaged(job, node, outcome.damaged):
            return
        if outcome.result is None:
            job.steps[node.id] = {**step, "state": "failed", "error": outcome.error}
            self._failed(job, node, outcome.error or "failed")
            return
        job.timings[node.stage] += outcome.ended - outcome.started
        job.steps[node.id] = {**step, "state": "built"}
        if outcome.result.note:
            job.notes.append(outcome.result.note)
            log.info("%s: %s", job.name, outcome.result.note, extra={"episode": job.name})
        for warning in outcome.result.warnings:
            log.warning("%s: %s", job.name, warning, extra={"episode": job.name})
        job.results[node.id] = outcome.result
        job.record.record(node, outcome.result, outcome.files, step)
        job.built.append(node.id)
        self.on_node(job, node, True)

    def _rebuild_damaged(self, job: Job, consumer: Node, path: str) -> bool:
        """An input whose bytes changed since they were recorded: rebuild its node, then the consumer.
        Once per node and run; a second time fails the consumer."""
        producer = next((n for n in job.plan.nodes.values() if path in n.outputs), None)
        if producer is None or producer.id in job.rebuilt_damaged:
            return False
        log.warning("%s: %s changed since it was made (damaged or edited); rebuilding it", job.name, path)
        job.rebuilt_damaged.add(producer.id)
        job.record.forget([producer.id])
        job.results.pop(producer.id, None)
        job.waiting[:0] = [producer, consumer]
        if producer.kind in MODEL_KINDS:
            job.model_calls += 1
        if consumer.kind in MODEL_KINDS:
            job.model_calls += 1
        return True

    def _failed(self, job: Job, node: Node, reason: str) -> None:
        scope = node.lang or EPISODE
        if scope not in job.failed:
            job.failed[scope] = f"{node.id}: {reason}"
            log.error("%s: %s failed: %s", job.name, node.id, reason)
        self.on_node(job, node, False)
        # What needed this node can never run: drop it (and what needed that) from the queue.
        blocked = {node.id}
        for other in list(job.waiting):
            if blocked.intersection(other.deps):
                blocked.add(other.id)
                job.waiting.remove(other)
                if other.kind in MODEL_KINDS:
                    job.model_calls -= 1
                job.steps[other.id] = {"state": "skipped", "error": f"needs {node.id}"}
                self.on_node(job, other, False)
