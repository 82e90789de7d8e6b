"""The executor boundary: how the scheduler gets work done, without knowing where it runs.

The scheduler (`zray.pipeline.driver`) decides what is ready, what to submit, what to send again;
an executor runs it. Ray is one executor (`zray.actors.executor`: tasks, resident actors,
placement); this module holds the interface, the one function every executor runs a unit of work
with (`perform`), and the in-process executor that tests, benchmarks and small reruns use.
"""

from __future__ import annotations

import concurrent.futures as futures
import contextvars
import dataclasses
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from zray.errors import ZrayError
from zray.nodes import ROLES, Kind, Node, Result, read_result, to_json
from zray.store import DamagedFile, FileRecord, Store

# A step: (episode folder, typed request, typed inputs) -> typed result.
StepFn = Callable[[Store, Any, Any], Result]

# How many threads the running step may use for its own work (x264, AAC chunks): one for a Ray
# task, which holds one CPU; every core in this process, where only a few steps run at once.
_THREADS: contextvars.ContextVar[int] = contextvars.ContextVar("zray_step_threads", default=1)


# x264's bitstream depends on its thread count: every encode uses this many, wherever it runs, so a
# rerun on another executor or machine writes the bytes a fresh build would.
ENCODE_THREADS = 1


def step_threads() -> int:
    return _THREADS.get()


@dataclass(frozen=True)
class Work:
    """One node to run for one episode, with everything the step needs."""

    job: str  # the episode, for names and logs
    node: Node
    inputs: Any  # the node's typed inputs (results of the nodes it consumes)
    store: Store  # the episode folder
    expected: Mapping[str, str] = field(default_factory=dict)  # input files -> sha256 as recorded

    @property
    def role(self) -> str | None:
        return ROLES.get(self.node.kind)


@dataclass(frozen=True)
class Outcome:
    """What running a unit of work gave, wherever it ran."""

    result: Result | None
    files: dict[str, FileRecord]
    started: float  # epoch seconds
    ended: float
    error: str | None = None  # one line
    damaged: str | None = None  # an input file whose bytes were not the recorded ones
    where: dict[str, Any] = field(default_factory=dict)  # executor, worker, node, gpu


@dataclass(frozen=True)
class Done:
    work: Work
    outcome: Outcome


def describe(exc: BaseException) -> str:
    if isinstance(exc, ZrayError):
        return str(exc)
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[-1] if text else ''}".rstrip(": ")


def perform(work: Work, step: StepFn, *, threads: int = 1) -> Outcome:
    """Run one unit of work: inputs checked against their recorded hashes, outputs' records taken
    as they are written. Exceptions from the step become a one-line error, never a crash of the
    executor; exceptions that mean the process itself is going (KeyboardInterrupt) pass."""
    store = work.store.fresh()
    store.expect(dict(work.expected))
    started = time.time()
    token = _THREADS.set(max(1, threads))
    try:
        # The result as its record will say it (floats rounded once, by `to_json`): what consumes it
        # in this run sees exactly what a later run reads back from run.json, so a rerun that reuses
        # it builds the bytes a fresh run builds.
        result = read_result(work.node.kind, to_json(step(store, work.node.request, work.inputs)))
        files = {path: store.file_record(path) for path in work.node.produced(result)}
    except DamagedFile as exc:
        return Outcome(None, {}, started, time.time(), error=str(exc), damaged=exc.key)
    except Exception as exc:
        return Outcome(None, {}, started, time.time(), error=describe(exc))
    finally:
        _THREADS.reset(token)
    return Outcome(result, files, started, time.time())


class Executor(Protocol):
    """What the scheduler needs from whatever runs the work."""

    name: str

    def submit(self, work: Work) -> None: ...

    def wait(self, timeout: float) -> list[Done]:
        """Work finished since the last call; waits up to `timeout` seconds for at least one."""
        ...

    def pending(self) -> int: ...

    def lost(self) -> list[Work]:
        """Submitted work that will never finish (its machine died); the scheduler sends it again."""
        ...

    def cancel(self) -> None: ...

    def close(self) -> None: ...


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
            outcome = perform(work, step, threads=self.threads)
            return dataclasses.replace(outcome, where={"executor": self.name, "worker": work.role or "task"})

        self._running[self._pool.submit(run)] = work

    def wait(self, timeout: float) -> list[Done]:
        if not self._running:
            return []
        finished, _ = futures.wait(list(self._running), timeout=timeout, return_when=futures.FIRST_COMPLETED)
        return [Done(self._running.pop(f), f.result()) for f in finished]

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
