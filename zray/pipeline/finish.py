"""Finishing an episode's run: run.json with its outputs and how each step ran, the script as run,
the run's log and report, and what a rebuild replaced or left unchanged."""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from zray import __version__
from zray import episode as layout
from zray.config import Config
from zray.episode import NodeEntry
from zray.errors import ZrayError
from zray.nodes import Kind, ShortsResult, VideoResult
from zray.pipeline.context import RunContext
from zray.pipeline.driver import Job
from zray.pipeline.prepare import Prepared
from zray.pipeline.records import RunRecord
from zray.pipeline.report import Failures, RunReport
from zray.pipeline.summary import summary_lines
from zray.store import Store

log = logging.getLogger("zray")


def finish(prep: Prepared, job: Job, context: RunContext, *, executor: str) -> RunReport:
    """Record the episode: script.json, run.json with outputs and how each step ran, and its log."""
    record, plan, store = prep.record, prep.plan, prep.store
    config, engines, runlog = context.config, context.engines, context.runlog
    _remove_replaced(store, record, job.old_entries, set(job.built))
    _follow_unchanged(prep, job.old_entries, set(job.built))
    _save_script(store, prep.request.script)
    outputs = _outputs(prep)
    steps: dict[str, Any] = {}
    for node in plan.nodes.values():
        steps[node.id] = job.steps.get(node.id) or (
            {"state": "cached"} if node.id in record.nodes else {"state": "not run"}
        )
    run = {
        "version": __version__,
        "command": " ".join(["zray", *sys.argv[1:]]),
        "executor": executor,
        "profile": engines.profile,
        "options": effective_options(config, prep),
        "wall_seconds": round(time.monotonic() - context.wall, 3),
        "step_seconds_by_stage": {stage: round(seconds, 3) for stage, seconds in job.timings.items()},
        "steps": steps,
        "warnings": runlog.warnings_for(prep.episode),
        "notes": list(job.notes),
        "failed": dict(job.failed),
    }
    identities = engines.identities.records()
    # The video engine is loaded only for an episode with generated clips: its identity is theirs.
    video = next((n.engine for n in plan.nodes.values() if n.kind is Kind.CLIP and n.engine), None)
    if video is not None:
        identities[str(video.get("engine", "video"))] = dict(video)
    record.set(
        zray=__version__,
        finished=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        profile=engines.profile,
        engines=identities,
        cache={"hits": len(plan.nodes) - len(prep.stale), "built": len(job.built)},
        outputs=outputs,
        failed=dict(job.failed),
        last_run=run,
    )
    record.add_generated(
        layout.SCRIPT_FILE, *(intro.key for intro in (prep.intro, prep.shorts_intro) if intro is not None)
    )
    report = report_of(prep, job=job, executor=executor, outputs=outputs)
    extra = [
        f"engine {name}: {json.dumps(identity, sort_keys=True)}" for name, identity in identities.items()
    ]
    extra += [f"step {node_id}: {_step_line(info)}" for node_id, info in steps.items()]
    extra += [
        f"stage {stage}: {seconds:.2f} s of steps" for stage, seconds in run["step_seconds_by_stage"].items()
    ]
    extra += [*(f"result {line}" for line in summary_lines(report)), f"wall time {run['wall_seconds']:.1f} s"]
    log_key = runlog.write(store, title=prep.script.project_title, episode=prep.episode, extra=extra)
    if log_key:
        record.add_generated(log_key)
    record.add_generated(layout.REPORT_FILE)
    record.flush(force=True)
    _write_report(store)
    return report


def _write_report(store: Store) -> None:
    """report.html from the run.json just written; a report that cannot be made is a warning, not
    a failed run."""
    from zray.review.report import write_report

    try:
        write_report(store)
    except (ZrayError, OSError, ValueError) as exc:
        log.warning("could not write the run report %s: %s", store.url(layout.REPORT_FILE), exc)


def _step_line(info: dict[str, Any]) -> str:
    parts = [info.get("state", "")]
    if "seconds" in info:
        parts.append(f"{info['seconds']:.2f} s")
    for name in ("executor", "worker", "node", "gpu"):
        if info.get(name):
            parts.append(f"{name}={info[name]}")
    if info.get("error"):
        parts.append(f"error: {info['error']}")
    return ", ".join(parts)


def effective_options(config: Config, prep: Prepared) -> dict[str, Any]:
    """What a rebuild needs to run this episode again the same way (no secrets: config holds none)."""
    return {
        "script": prep.request.origin,
        "languages": prep.languages,
        "intro": str(prep.intro_path) if prep.intro_path else None,
        "config": config.model_dump(mode="json", exclude={"quiet", "dashboard"}),
    }


def report_of(
    prep: Prepared, *, job: Job | None, executor: str | None, outputs: dict[str, Any] | None = None
) -> RunReport:
    return RunReport(
        script=prep.request.script,
        episode=prep.store.root_url,
        outputs=outputs if outputs is not None else _outputs(prep),
        failed=Failures(job.failed) if job else Failures(),
        languages=prep.languages,
        built=len(prep.stale) if job else 0,
        cached=len(prep.plan.nodes) - (len(prep.stale) if job else 0),
        seconds=(job.finished - job.started) if job and job.finished else 0.0,
        executor=executor,
        video_names=dict(prep.plan.video_names),
        why={node: prep.reasons.get(node) or "needed by what is stale" for node in job.built} if job else {},
    )


# --- records -----------------------------------------------------------------------------------


def _remove_replaced(
    store: Store, record: RunRecord, old_entries: dict[str, NodeEntry], built: set[str]
) -> None:
    """Delete what a rebuilt deliverable replaced under another name (an old title's video): only
    files inside the folder that this episode's own record said it made. What it replaced them with
    is what the record now holds (a step with dynamic outputs names its files only once it ran)."""
    for node_id, entry in old_entries.items():
        if node_id not in built:
            continue
        for path in set(entry.outputs) - set(record.previous_outputs(node_id)):
            if layout.inside(path):
                store.remove(path)
                log.info("removed %s (replaced)", path)


def _follow_unchanged(prep: Prepared, old_entries: dict[str, NodeEntry], built: set[str]) -> None:
    """A video or Short made again with the bytes it had keeps its upload record and approval under
    its new content key (`episode.follow_content_keys`): YouTube's copy, and the approved one, are
    still the file in the folder."""
    moved: dict[str, str] = {}
    for node_id, old in old_entries.items():
        new, node = prep.record.nodes.get(node_id), prep.plan.nodes[node_id]
        if node_id not in built or new is None:
            continue
        before, after = _videos_by_sha(old, node.kind), _videos_by_sha(new, node.kind)
        moved.update({key: after[sha] for sha, key in before.items() if sha in after and after[sha] != key})
    for name in layout.follow_content_keys(prep.store, moved):
        log.info("%s: %s follows videos made again with the same bytes", prep.episode, name)


def _videos_by_sha(entry: NodeEntry, kind: Kind) -> dict[str, str]:
    """The content key of each video a deliverable's record holds, by the sha256 of its file."""
    if kind == Kind.VIDEO and entry.outputs and entry.outputs[0] in entry.files:
        return {entry.files[entry.outputs[0]].sha256: entry.key}
    if kind != Kind.SHORTS:
        return {}
    try:
        result = entry.typed_result(kind)
    except ValueError:
        return {}
    assert isinstance(result, ShortsResult)
    return {entry.files[s.path].sha256: s.key for s in result.shorts if s.path in entry.files}


def _outputs(prep: Prepared) -> dict[str, dict[str, Any]]:
    """The deliverables with their sizes and hashes, as recorded when they were written, and the
    videos' lengths (a long video's, each Short's) from their typed results."""
    outputs: dict[str, dict[str, Any]] = {}
    for node in prep.plan.targets():
        entry = prep.record.nodes.get(node.id)
        if entry is None or entry.key != node.key:
            continue
        try:
            result = prep.record.result(node)
        except ValueError:
            continue
        durations: dict[str, float] = {}
        if isinstance(result, VideoResult):
            durations[result.path] = result.duration
        elif isinstance(result, ShortsResult):
            durations = {short.path: short.duration for short in result.shorts}
        for path in entry.outputs:
            rec = entry.files.get(path)
            if rec is None:
                continue
            outputs[path] = {"key": node.key, "size": rec.size, "sha256": rec.sha256}
            if path in durations:
                outputs[path]["duration"] = durations[path]
    return outputs


def _save_script(store: Store, path: Path) -> None:
    """Keep the script as run beside its outputs, so upload and publish need only the folder."""
    data = path.read_bytes()
    with contextlib.suppress(FileNotFoundError):
        if store.read_bytes(layout.SCRIPT_FILE) == data:
            return
    store.write_bytes(layout.SCRIPT_FILE, data)
