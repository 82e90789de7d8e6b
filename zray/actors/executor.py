"""The Ray executor: CPU steps as Ray tasks, model calls on resident engine actors.

It implements `zray.pipeline.executor.Executor`; the scheduler above it knows nothing of Ray.
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
from zray.pipeline.executor import Done, Outcome, StepFn, Work, perform


def _run_task(step: StepFn, work: Work) -> Outcome:
    return dataclasses.replace(perform(work, step), where=where("task"))


class RayExecutor:
    name = "ray"

    def __init__(self, pool: ActorPool, *, steps: Mapping[Any, StepFn], task_retries: int):
        self.pool = pool
        self.steps = dict(steps)
        self.task_retries = task_retries
        self._task = ray.remote(_run_task)
        self._running: dict[Any, Work] = {}

    def submit(self, work: Work) -> None:
        if work.role is not None:
            ref = self.pool.submit(work.role, work)
        else:
            options = {"num_cpus": 1, "max_retries": self.task_retries, "retry_exceptions": False}
            ref = self._task.options(name=f"zray:{work.job}:{work.node.id}", **options).remote(
                self.steps[work.node.kind], work
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
