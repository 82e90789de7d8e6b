"""`zray batch`: many episodes on one set of resident models, each failing alone.

Scripts are found (folders, globs, fsspec URLs) and validated first; invalid ones are listed and
skipped. The valid ones share one Ray session and one driver, several episodes in flight at once.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from zray.config import Config
from zray.pipeline.prepare import RunRequest, open_store
from zray.pipeline.progress import setup_logging
from zray.pipeline.report import RunReport
from zray.pipeline.run import execute
from zray.pipeline.summary import clock
from zray.script import Problem, Script, check_file
from zray.store import expand, fetch

log = logging.getLogger("zray")
BATCH_FILE = "batch.json"


@dataclass
class BatchReport:
    reports: list[RunReport] = field(default_factory=list)
    invalid: dict[str, list[Problem]] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.invalid and all(r.ok for r in self.reports)


def find_scripts(
    patterns: list[str], workdir: Path
) -> tuple[list[tuple[Path, str]], dict[str, list[Problem]]]:
    """(local path, where it came from) of every script named; remote ones are copied under
    workdir/scripts/<project>/<name> and keep their URL as their origin."""
    found: list[tuple[Path, str]] = []
    missing: dict[str, list[Problem]] = {}
    for pattern in patterns:
        try:
            matches = expand(pattern)
        except (OSError, ValueError, ImportError) as exc:
            missing[pattern] = [Problem("", f"cannot list it: {exc}")]
            continue
        if not matches:
            missing[pattern] = [Problem("", "no script found there")]
        for match in matches:
            if "://" in match:
                found.append((_fetch_script(match, workdir), match))
            else:
                found.append((Path(match), str(Path(match).resolve())))
    return list(dict.fromkeys(found)), missing


def _fetch_script(url: str, workdir: Path) -> Path:
    """Copy a remote script to workdir/scripts/<project>/<name>; in the seed's layout
    (.../scripts/<project>/X.json), the project's intro*.mp4 from .../assets/<project>/ comes with it,
    so the local copy finds its intro as a local script would."""
    parts = url.rstrip("/").split("/")
    project, name = parts[-2], parts[-1]
    local = fetch(url, workdir / "scripts" / project / name)
    _fetch_studio_files(url, local)
    if (
        len(parts) > 3
        and parts[-3] == "scripts"
        and not any((workdir / "assets" / project).glob("intro*.mp4"))
    ):
        assets = "/".join([*parts[:-3], "assets", project])
        try:
            intros = expand(assets + "/intro*.mp4")
            if intros:
                fetch(intros[0], workdir / "assets" / project / intros[0].rsplit("/", 1)[-1])
        except OSError as exc:
            log.warning(
                "%s: cannot read the intro there (%s); episodes of %s go without it", assets, exc, project
            )
    return local


def _fetch_studio_files(url: str, local: Path) -> None:
    """The studio files a remote script names (image_file, clip_file, thumbnail_file) come with it,
    from beside it in the bucket; a script that does not parse is left to validation to report."""
    try:
        data = json.loads(local.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError, RecursionError):
        return
    names: list[str] = []
    for scene in data.get("scenes") or [] if isinstance(data, dict) else []:
        if isinstance(scene, dict):
            names += [scene[f] for f in ("image_file", "clip_file") if isinstance(scene.get(f), str)]
    seo = data.get("seo") if isinstance(data, dict) else None
    if isinstance(seo, dict):
        names += [
            v["thumbnail_file"]
            for v in seo.values()
            if isinstance(v, dict) and isinstance(v.get("thumbnail_file"), str)
        ]
    base = url.rsplit("/", 1)[0]
    for name in names:
        if "://" in name or name.startswith("/") or ".." in name.split("/"):
            continue  # validation refuses it with its JSON path
        try:
            fetch(f"{base}/{name}", local.parent / name)
        except OSError as exc:
            log.warning("%s: cannot read %s next to it (%s)", url, name, exc)


def run_batch(
    patterns: list[str],
    config: Config,
    *,
    languages: list[str] | None = None,
    clean: bool = False,
    max_episodes: int = 4,
    console: Console | None = None,
) -> BatchReport:
    console = console or Console(stderr=True)
    setup_logging(console, quiet=config.quiet)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="zray-batch-") as tmp:
        paths, invalid = find_scripts(patterns, Path(tmp))
        items: list[tuple[RunRequest, Script]] = []
        for path, origin in paths:
            checked = check_file(path, limits=config.limits.script_limits())
            if checked.ok and checked.script is not None:
                usable = [
                    lang
                    for lang in (languages or checked.script.languages)
                    if lang in checked.script.languages
                ]
                items.append(
                    (RunRequest(script=path, languages=usable, clean=clean, source=origin), checked.script)
                )
            else:
                invalid[str(path)] = checked.errors
        for name, problems in invalid.items():
            for problem in problems:
                log.error("skipped: %s", problem.render(name))
        log.info("batch: %d episodes to make, %d scripts skipped", len(items), len(invalid))
        reports = (
            execute(items, config, console=console, isolate=True, max_jobs=max_episodes) if items else []
        )
    report = BatchReport(reports=reports, invalid=invalid, seconds=time.monotonic() - started)
    _write_batch_file(config, report)
    console.print(batch_table(report))
    return report


def batch_table(report: BatchReport) -> Table:
    table = Table(title=f"zray batch: {len(report.reports)} episodes, {report.seconds:.0f} s")
    for column in ("episode", "languages", "status", "duration", "time", "cache hits"):
        table.add_column(column, overflow="fold")
    for r in report.reports:
        durations = [o.get("duration") or 0 for o in r.outputs.values() if o.get("duration")]
        reason = next(iter(r.failed.values()), "")
        table.add_row(
            r.episode.rsplit("/", 2)[-2] + "/" + r.episode.rsplit("/", 1)[-1] if r.episode else str(r.script),
            ", ".join(r.languages),
            "[green]ok[/]" if r.ok else f"[red]FAILED[/] {reason}",
            clock(max(durations)) if durations else "",
            f"{r.seconds:.0f} s",
            f"{r.cached}/{r.cached + r.built}",
        )
    for name, problems in report.invalid.items():
        table.add_row(name, "", f"[red]INVALID[/] {problems[0].message if problems else ''}", "", "", "")
    return table


def _write_batch_file(config: Config, report: BatchReport) -> None:
    record: dict[str, Any] = {
        "finished": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "seconds": round(report.seconds, 3),
        "ok": report.ok,
        "episodes": [
            {
                "script": str(r.script),
                "episode": r.episode,
                "languages": r.languages,
                "status": "ok" if r.ok else "failed",
                "failed": r.failed,
                "seconds": round(r.seconds, 3),
                "cache_hits": r.cached,
                "built": r.built,
                "outputs": {name: info.get("size") for name, info in r.outputs.items()},
            }
            for r in report.reports
        ],
        "invalid": {name: [p.render(name) for p in problems] for name, problems in report.invalid.items()},
    }
    try:
        open_store(config.output).write_text(BATCH_FILE, json.dumps(record, indent=1, ensure_ascii=False))
    except OSError as exc:
        log.warning("could not write %s: %s", BATCH_FILE, exc)
