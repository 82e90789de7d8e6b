"""The Ray executor: CPU steps as Ray tasks, model calls on resident engine actors.

It implements `zray.work.Executor`; the scheduler above it knows nothing of Ray.
A task whose worker process dies is retried by Ray (`task_retries`); an exception from a step is
deterministic and is not (it comes back as the step's one-line error).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Mapping
from typing import Any

import ray
from ray.exceptions import RayActorError, RayError, RayTaskError

from zray.actors.pool import ActorPool, where
from zray.work import Done, Outcome, ProgressBoard, StepFn, StepProgress, Work, perform

# How long the driver waits for the progress board's answer before showing the last one it had.
PROGRESS_TIMEOUT_S = 2.0


def _run_task(step: StepFn, work: Work, board: Any = None) -> Outcome:
    # A step's progress reports go to the board actor, fire and forget (they are throttled).
    sink = (lambda progress: board.report.remote(progress)) if board is not None else None
    return dataclasses.replace(perform(work, step, progress=sink), where=where("task"))


class RayExecutor:
    name = "ray"

    def __init__(self, pool: ActorPool, *, steps: Mapping[Any, StepFn], task_retries: int):
        self.pool = pool
        self.steps = dict(steps)
        self.task_retries = task_retries
        self._task = ray.remote(_run_task)
        self._running: dict[Any, Work] = {}
        # Steps run in worker processes, anywhere on the cluster: their progress meets in one small
        # actor on the driver's node, which the driver reads as it waits.
        self._board = ray.remote(num_cpus=0)(ProgressBoard).remote()
        self._shown: list[StepProgress] = []

    def submit(self, work: Work) -> None:
        if work.role is not None:
            ref = self.pool.submit(work.role, work)
        else:
            options = {"num_cpus": 1, "max_retries": self.task_retries, "retry_exceptions": False}
            ref = self._task.options(name=f"zray:{work.job}:{work.node.id}", **options).remote(
                self.steps[work.node.kind], work, self._board
            )
        self._running[ref] = work

    def wait(self, timeout: float) -> list[Done]:
        if not self._running:
            return []
        ready, _ = ray.wait(list(self._running), num_returns=1, timeout=timeout)
        if ready:  # everything else that is already done, without waiting again
            ready += [
                r
                for r in ray.wait(list(self._running), num_returns=len(self._running), timeout=0)[0]
                if r not in ready
            ]
        done = []
        for ref in ready:
            work = self._running.pop(ref)
            self.pool.done(ref)
            self._board.forget.remote(work.job, work.node.id)
            try:
                outcome = ray.get(ref)
            except RayError as exc:
                outcome = Outcome(
                    None, {}, 0.0, 0.0, error=describe_error(exc), where={"executor": self.name}
                )
            done.append(Done(work, outcome))
        return done

    def pending(self) -> int:
        return len(self._running)

    def progress(self) -> list[StepProgress]:
        """The running steps' latest progress reports (the last known ones if the board is slow)."""
        with contextlib.suppress(RayError, TimeoutError):
            latest = ray.get(self._board.snapshot.remote(), timeout=PROGRESS_TIMEOUT_S)
            running = {(w.job, w.node.id) for w in self._running.values()}
            self._shown = [p for p in latest if (p.job, p.node) in running]
        return self._shown

    def lost(self) -> list[Work]:
        works = []
        for ref in self.pool.lost_requests():
            work = self._running.pop(ref, None)
            if work is not None:
                with contextlib.suppress(RayError, ValueError, TypeError):
                    ray.cancel(ref)
                works.append(work)
        return works

    def cancel(self) -> None:
        for ref in self._running:
            with contextlib.suppress(RayError, ValueError, TypeError):
                ray.cancel(ref, force=False)

    def close(self) -> None:
        self.pool.shutdown()
        with contextlib.suppress(RayError, ValueError):
            ray.kill(self._board)


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
