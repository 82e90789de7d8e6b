"""What a person watching a run sees: a progress bar per stage, log lines, a closing summary."""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from rich.console import Console
from rich.logging import RichHandler
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from zray.nodes import STAGES, Node

log = logging.getLogger("zray")


def _bar(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description:<11}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[note]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


class _Bars:
    """Progress bars that show only when enabled (not with --quiet)."""

    enabled: bool
    progress: Progress

    def __enter__(self) -> _Bars:
        if self.enabled:
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self.progress.stop()


class StageProgress(_Bars):
    """One episode: a bar per stage; cached work counts as done from the start."""

    def __init__(self, console: Console, jobs: list[Any], *, enabled: bool):
        job = jobs[0]
        totals = Counter(n.stage for n in job.plan.nodes.values())
        todo = Counter(n.stage for n in job.stale)
        self.enabled = enabled
        self.progress = _bar(console)
        self.tasks = {
            stage: self.progress.add_task(
                stage,
                total=totals[stage],
                completed=totals[stage] - todo[stage],
                note=f"({totals[stage] - todo[stage]} cached)" if totals[stage] - todo[stage] else "",
            )
            for stage in STAGES
            if totals[stage]
        }
        self.failed: Counter[str] = Counter()

    def node_done(self, job: Any, node: Node, ok: bool) -> None:
        if not ok:
            self.failed[node.stage] += 1
            self.progress.update(self.tasks[node.stage], note=f"[red]{self.failed[node.stage]} failed")
        self.progress.advance(self.tasks[node.stage])

    def job_done(self, job: Any, report: Any) -> None:
        return None


class EpisodeProgress(_Bars):
    """A batch: one line per episode in flight, plus overall counts and an ETA."""

    def __init__(self, console: Console, jobs: list[Any], *, enabled: bool):
        self.enabled = enabled
        self.progress = _bar(console)
        self.jobs = len(jobs)
        self.finished = 0
        self.overall = self.progress.add_task(
            "all", total=sum(len(j.stale) for j in jobs), note=f"0/{self.jobs} episodes"
        )
        self.lines: dict[int, TaskID] = {}

    def node_done(self, job: Any, node: Node, ok: bool) -> None:
        line = self.lines.get(id(job))
        if line is None:
            name = job.name.rsplit("/", 1)[-1][:11]
            line = self.lines[id(job)] = self.progress.add_task(name, total=len(job.stale), note="")
        if not ok:
            self.progress.update(line, note="[red]failing")
        self.progress.advance(line)
        self.progress.advance(self.overall)

    def job_done(self, job: Any, report: Any) -> None:
        self.finished += 1
        self.progress.update(self.overall, note=f"{self.finished}/{self.jobs} episodes")
        line = self.lines.pop(id(job), None)
        if line is not None:
            self.progress.remove_task(line)
        status = "[red]FAILED" if report.failed else "[green]done"
        self.progress.console.print(f"{status}[/] {job.name} ({len(job.built)} steps)", highlight=False)


def setup_logging(console: Console, *, quiet: bool) -> logging.Logger:
    logger = logging.getLogger("zray")
    logger.setLevel(logging.DEBUG)
    for handler in list(logger.handlers):
        if getattr(handler, "_zray_console", False):
            logger.removeHandler(handler)
    handler = RichHandler(
        console=console, show_path=False, show_time=quiet, markup=False, rich_tracebacks=False
    )
    handler.setLevel(logging.INFO)
    handler._zray_console = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.propagate = False
    return logger


def summary_table(rows: list[dict[str, str]]) -> Table:
    table = Table(title="zray: finished", show_lines=False)
    for column in ("language", "file", "duration", "size", "status"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(row.get(c, "") for c in ("language", "file", "duration", "size", "status")))
    return table
