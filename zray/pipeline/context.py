"""What one run shares between its episodes while it runs them and records them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from rich.console import Console

from zray.config import Config
from zray.nodes import Kind
from zray.pipeline.engine_setup import EngineSetup
from zray.pipeline.runlog import RunLog
from zray.store import Store
from zray.work import StepFn


@dataclass(frozen=True, kw_only=True)
class RunContext:
    """The output, the settings and the engines of a run, where its progress and log go, and how
    it treats a failing episode (`isolate`: a batch reports it and goes on)."""

    store: Store  # the output, every episode's folder under it
    config: Config
    engines: EngineSetup
    console: Console
    runlog: RunLog
    isolate: bool
    max_jobs: int = 1
    wall: float  # time.monotonic() when the run began
    steps: Mapping[Kind, StepFn] | None = None  # replaces zray's CPU steps (a benchmark's simulated ones)
