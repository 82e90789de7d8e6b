"""The in-process executor: runs the scheduler's work on a few threads of this process.

Tests, benchmarks and small reruns use it; Ray is the other executor (`zray.actors.executor`). Both
implement `zray.work.Executor` and run each unit of work through `zray.work.perform`.
"""

from __future__ import annotations

import concurrent.futures as futures
import dataclasses
import threading
from collections.abc import Callable, Mapping
from typing import Any

from zray.errors import ZrayError
from zray.nodes import Kind
from zray.work import Done, Outcome, ProgressBoard, StepFn, StepProgress, Work, perform


class InProcessExecutor:
    """Runs steps in this process, on a few threads (PyAV, numpy and x264 release the GIL).

    Model work goes to engine holders built here on first use (`workers`: role -> a factory of an
    object with `run(store, request, inputs)`), so draft engines run without Ray at all.
    """

    name = "in-process"

    def __init__(
        self,
        *,
        steps: Mapping[Kind, StepFn],
        workers: Mapping[str, Callable[[], Any]] | None = None,
        threads: int = 1,
    ):
        self.steps = dict(steps)
        self._factories = dict(workers or {})
        self._workers: dict[str, Any] = {}
        self._loaded: set[str] = set()
        self._load_lock = threading.Lock()
        self._turns: dict[str, threading.Lock] = {}
        self.threads = max(1, threads)
        self._pool = futures.ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="zray-step")
        self._running: dict[futures.Future[Outcome], Work] = {}
        self._board = ProgressBoard()

    def _step_for(self, work: Work) -> StepFn:
        role = work.role
        if role is None:
            return self.steps[work.node.kind]
        if role not in self._workers:
            if role not in self._factories:
                raise ZrayError(f"the in-process executor has no {role} engine")
            self._workers[role] = self._factories[role]()
        worker = self._workers[role]
        # A holder that batches (music, video) takes concurrent calls, as its actor does; the others
        # hold one pipeline whose scheduler state a second call on another thread would overwrite.
        concurrent = getattr(worker, "BATCH_MAX", 1) > 1
        self._turns.setdefault(role, threading.Lock())

        def run(store: Any, request: Any, inputs: Any) -> Any:
            # Loads take turns (runs do not): diffusers and transformers build a model's modules on
            # the meta device under a process-wide switch (accelerate's init_empty_weights), so two
            # loads on two threads see each other's ("Unsupported device type 'meta'").
            if role not in self._loaded:
                with self._load_lock:
                    if role not in self._loaded:
                        ready = getattr(worker, "ready", None)
                        if ready is not None:
                            ready()
                        self._loaded.add(role)
            if concurrent:
                return worker.run(store, request, inputs)
            with self._turns[role]:  # as a Ray actor: one call at a time
                return worker.run(store, request, inputs)

        return run

    def submit(self, work: Work) -> None:
        step = self._step_for(work)

        def run() -> Outcome:
            outcome = perform(work, step, threads=self.threads, progress=self._board.report)
            return dataclasses.replace(outcome, where={"executor": self.name, "worker": work.role or "task"})

        self._running[self._pool.submit(run)] = work

    def wait(self, timeout: float) -> list[Done]:
        if not self._running:
            return []
        finished, _ = futures.wait(list(self._running), timeout=timeout, return_when=futures.FIRST_COMPLETED)
        done = [Done(self._running.pop(f), f.result()) for f in finished]
        for item in done:
            self._board.forget(item.work.job, item.work.node.id)
        return done

    def progress(self) -> list[StepProgress]:
        """The running steps' latest progress reports."""
        return self._board.snapshot()

    def pending(self) -> int:
        return len(self._running)

    def lost(self) -> list[Work]:
        return []

    def cancel(self) -> None:
        for future in self._running:
            future.cancel()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._running.clear()
