"""The table a run ends with: each language's video and Shorts, their length and size, or why they
failed; the same lines go to the run's log."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from zray import episode as layout
from zray.pipeline.progress import summary_table, why_lines
from zray.pipeline.report import RunReport


def summary_lines(report: RunReport) -> list[str]:
    """The final table as plain lines (for the run log)."""
    return [
        " | ".join(str(row.get(c, "")) for c in ("language", "file", "duration", "size", "status"))
        for row in _rows(report)
    ] + why_lines(report.why)


def print_summary(report: RunReport) -> None:
    """The final table goes to stdout (it is the result); progress and logs went to stderr."""
    console = Console()
    console.print(summary_table(_rows(report)))
    for line in why_lines(report.why):
        console.print(line, highlight=False, markup=False)
    console.print(
        f"{report.episode}: {report.built} steps run, {report.cached} cached, {report.seconds:.1f} s"
        + (f" ({report.executor})" if report.executor else ""),
        highlight=False,
        markup=False,
    )


def _rows(report: RunReport) -> list[dict[str, str]]:
    rows = []
    for lang in report.languages:
        name = report.video_names.get(lang, "")
        info = report.outputs.get(name)
        reason = report.failed.reason(lang)
        if reason:
            rows.append({"language": lang, "file": name, "status": f"FAILED: {reason}"})
            continue
        if info:
            rows.append(_row(lang, name, info))
        shorts = f"{layout.SHORTS_DIR}/{lang}/"
        rows += [
            _row(lang, path, info)
            for path, info in report.outputs.items()
            if path.startswith(shorts) and path.endswith(".mp4")
        ]
    return rows


def _row(lang: str, name: str, info: dict[str, Any]) -> dict[str, str]:
    return {
        "language": lang,
        "file": name,
        "duration": clock(info.get("duration") or 0),
        "size": f"{info['size'] / 1e6:.1f} MB",
        "status": "ok",
    }


def clock(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}:{secs:02d}"
