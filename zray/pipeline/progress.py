"""What a person watching a run sees: a progress bar per stage, a bar for each long step while it
runs (frames encoded of its total, with the time left), log lines, a closing summary. With --quiet,
a long step says how far it has got in a log line every QUIET_INTERVAL_S instead."""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import Any

from rich.console import Console
from rich.logging import RichHandler
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from zray.nodes import STAGES, Node
from zray.work import StepProgress

log = logging.getLogger("zray")
# With --quiet, a step that runs longer than this says how far it has got, once this often.
QUIET_INTERVAL_S = 10.0


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
    """Progress bars that show only when enabled (not with --quiet), and the long steps' progress:
    a bar each while they run, or with --quiet a log line every QUIET_INTERVAL_S."""

    enabled: bool
    progress: Progress

    def __init__(self, console: Console, *, enabled: bool) -> None:
        self.enabled = enabled
        self.progress = _bar(console)
        self._step_rows: dict[tuple[str, str], TaskID] = {}  # (episode, node) -> its bar
        self._step_seen: dict[tuple[str, str], tuple[float, int]] = {}  # first seen: when, frames done
        self._step_logged: dict[tuple[str, str], float] = {}  # last --quiet line

    def __enter__(self) -> _Bars:
        if self.enabled:
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self.progress.stop()

    def step_progress(self, reports: list[StepProgress], *, now: float | None = None) -> None:
        """The running steps' latest reports (`Driver`'s on_progress)."""
        now = time.monotonic() if now is None else now
        rows, seen, logged = self._step_rows, self._step_seen, self._step_logged
        current = set()
        for report in reports:
            key = (report.job, report.node)
            current.add(key)
            first_at, first_done = seen.setdefault(key, (now, report.done))
            if self.enabled:
                row = rows.get(key)
                if row is None:
                    rows[key] = self.progress.add_task(
                        f"  {report.node}", total=report.total, completed=report.done, note=report.unit
                    )
                else:
                    self.progress.update(row, total=report.total, completed=report.done)
                continue
            if now - first_at >= QUIET_INTERVAL_S and now - logged.get(key, first_at) >= QUIET_INTERVAL_S:
                logged[key] = now
                log.info("%s", quiet_line(report, elapsed=now - first_at, done_before=first_done))
        for key in [k for k in rows if k not in current]:
            self.progress.remove_task(rows.pop(key))
        for key in [k for k in seen if k not in current]:
            seen.pop(key)
            logged.pop(key, None)


def quiet_line(report: StepProgress, *, elapsed: float, done_before: int) -> str:
    """`video:es: 1200/4800 frames, about 1:30 left` (no time left until some progress is seen)."""
    line = f"{report.job}: {report.node}: {report.done}/{report.total} {report.unit}"
    rate = (report.done - done_before) / elapsed if elapsed > 0 else 0.0
    if rate > 0 and report.total > report.done:
        left = round((report.total - report.done) / rate)
        line += f", about {left // 60}:{left % 60:02d} left"
    return line


class StageProgress(_Bars):
    """One episode: a bar per stage; cached work counts as done from the start."""

    def __init__(self, console: Console, jobs: list[Any], *, enabled: bool):
        super().__init__(console, enabled=enabled)
        job = jobs[0]
        totals = Counter(n.stage for n in job.plan.nodes.values())
        todo = Counter(n.stage for n in job.stale)
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
        super().__init__(console, enabled=enabled)
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


class UploadProgress:
    """Bytes sent per video during an upload (`progress(slot, acknowledged, total)`): a bar each on
    a terminal; elsewhere a line per video every QUIET_INTERVAL_S and when it is all sent."""

    def __init__(self, console: Console, *, clock: Any = time.monotonic) -> None:
        self.console, self.clock = console, clock
        self.bars = console.is_terminal
        self.progress = Progress(
            TextColumn("{task.description:<14}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console,
        )
        self.rows: dict[str, TaskID] = {}
        self.said: dict[str, float] = {}

    def __enter__(self) -> UploadProgress:
        if self.bars:
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bars:
            self.progress.stop()

    def __call__(self, slot: str, acknowledged: int, total: int) -> None:
        if self.bars:
            row = self.rows.get(slot)
            if row is None:
                row = self.rows[slot] = self.progress.add_task(slot, total=total)
            self.progress.update(row, completed=acknowledged, total=total)
            return
        now = self.clock()
        first = self.said.setdefault(slot, now)
        if acknowledged >= total or now - first >= QUIET_INTERVAL_S:
            self.said[slot] = now
            self.console.print(
                f"{slot}: {acknowledged / 1e6:.1f} of {total / 1e6:.1f} MB sent",
                highlight=False,
                markup=False,
            )


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


# Step ids named per reason in the final table; the rest are counted.
WHY_NAMED = 6


def why_lines(why: dict[str, str]) -> list[str]:
    """Why the steps of this run ran, one line per reason (as --explain words them), most steps first:
    `3 steps: narration changed (pad:es:1, video:es, subs:es)`."""
    by_reason: dict[str, list[str]] = {}
    for node, reason in why.items():
        # Which step needed a missing one is --explain's detail; here the missing ones go together.
        by_reason.setdefault(reason.split(" (needed by ", 1)[0], []).append(node)
    lines = []
    for reason, nodes in sorted(by_reason.items(), key=lambda item: (-len(item[1]), item[0])):
        named = ", ".join(nodes[:WHY_NAMED]) + (
            f", and {len(nodes) - WHY_NAMED} more" if len(nodes) > WHY_NAMED else ""
        )
        lines.append(f"{len(nodes)} step{'s' * (len(nodes) != 1)}: {reason} ({named})")
    return lines
