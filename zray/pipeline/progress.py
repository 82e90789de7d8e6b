"""What a person watching a run sees: a progress bar per stage, log lines, a closing summary."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable

from rich.console import Console
from rich.logging import RichHandler
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from zray.pipeline.plan import STAGES, Node

log = logging.getLogger("zray")


class StageProgress:
    """One bar per stage; cached work counts as done from the start."""

    def __init__(self, console: Console, all_nodes: Iterable[Node], stale: Iterable[Node], *, enabled: bool):
        totals = Counter(n.stage for n in all_nodes)
        todo = Counter(n.stage for n in stale)
        self.enabled = enabled
        self.progress = Progress(
            TextColumn("{task.description:<11}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[note]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
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

    def __enter__(self) -> StageProgress:
        if self.enabled:
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self.progress.stop()

    def done(self, node: Node, ok: bool) -> None:
        if ok:
            log.debug("done %s", node.id)
        else:
            self.failed[node.stage] += 1
            self.progress.update(self.tasks[node.stage], note=f"[red]{self.failed[node.stage]} failed")
        self.progress.advance(self.tasks[node.stage])


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
