"""The executor boundary: how the scheduler gets work done, without knowing where it runs.

The scheduler (`zray.pipeline.driver`) decides what is ready, what to submit, what to send again;
an executor runs it. Ray is one executor (`zray.actors.executor`: tasks, resident actors,
placement), the in-process one another (`zray.pipeline.executor`). This module holds the
interface, the unit of work and its outcome, the one function every executor runs a unit of work
with (`perform`), and the progress a running step reports. It sits below both the planner and the
actors, so neither has to import the other to agree on what a unit of work is.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from zray.errors import ZrayError
from zray.nodes import ROLES, Node, Result, read_result, to_json
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
class StepProgress:
    """How far a long step has got (frames encoded of its total), as the step last said."""

    job: str
    node: str
    done: int
    total: int
    unit: str = "frames"
    at: float = 0.0  # epoch seconds of the report


ProgressSink = Callable[[StepProgress], None]
# Where the running step's reports go: set by `perform` for the unit of work it runs; None
# outside a step (tests calling media code directly), where reporting costs nothing.
_REPORT: contextvars.ContextVar[Callable[[int, int, str], None] | None] = contextvars.ContextVar(
    "zray_step_progress", default=None
)
# Reports from inside a step are throttled: the driver shows them a few times a second at most.
REPORT_INTERVAL_S = 0.5


def report_progress(done: int, total: int, unit: str = "frames") -> None:
    """Tell whoever watches the run how far the running step has got (no-op outside a step)."""
    report = _REPORT.get()
    if report is not None:
        report(done, total, unit)


def progress_callback(total: int, unit: str = "frames", *, start: int = 0) -> Callable[[int], None]:
    """A `done -> None` callback for media code (done counted from `start`), throttled to one report
    every REPORT_INTERVAL_S and always reporting the last item."""
    last = 0.0

    def tick(done: int) -> None:
        nonlocal last
        now = time.monotonic()
        if start + done >= total or now - last >= REPORT_INTERVAL_S:
            last = now
            report_progress(start + done, total, unit)

    return tick


def counted(items: Iterable[Any], total: int, unit: str = "frames", *, start: int = 0) -> Iterator[Any]:
    """`items`, reporting the step's progress as they are taken (for frames fed to an encoder)."""
    tick = progress_callback(total, unit, start=start)
    for done, item in enumerate(items, start=1):
        yield item
        tick(done)


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


def perform(work: Work, step: StepFn, *, threads: int = 1, progress: ProgressSink | None = None) -> Outcome:
    """Run one unit of work: inputs checked against their recorded hashes, outputs' records taken
    as they are written. Exceptions from the step become a one-line error, never a crash of the
    executor; exceptions that mean the process itself is going (KeyboardInterrupt) pass. The
    step's progress reports (`report_progress`) go to `progress`."""
    store = work.store.fresh()
    store.expect(dict(work.expected))
    started = time.time()
    token = _THREADS.set(max(1, threads))

    def report(done: int, total: int, unit: str) -> None:
        if progress is not None:
            progress(StepProgress(work.job, work.node.id, done, total, unit, time.time()))

    reporting = _REPORT.set(report)
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
        _REPORT.reset(reporting)
        _THREADS.reset(token)
    return Outcome(result, files, started, time.time())


class ProgressBoard:
    """The latest progress of each running step, as its reports arrive (from any thread)."""

    def __init__(self) -> None:
        self._latest: dict[tuple[str, str], StepProgress] = {}
        self._lock = threading.Lock()

    def report(self, progress: StepProgress) -> None:
        with self._lock:
            self._latest[(progress.job, progress.node)] = progress

    def forget(self, job: str, node: str) -> None:
        with self._lock:
            self._latest.pop((job, node), None)

    def snapshot(self) -> list[StepProgress]:
        with self._lock:
            return list(self._latest.values())


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
