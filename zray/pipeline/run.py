"""`zray run` and `zray batch`: scripts in, finished videos out.

Every episode is planned before any work; a rerun with nothing to do starts nothing. The episodes
that have work share one executor: Ray (one session, one set of resident engine actors), or this
process when the only stale steps are a few that need no GPU (a changed title, a deleted MP4, one
edited line), where starting Ray would cost more than the work.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from zray import __version__
from zray import episode as layout
from zray.actors.workers import WORKERS
from zray.config import Config
from zray.episode import NodeEntry
from zray.errors import ZrayError
from zray.nodes import MODEL_KINDS, ROLES, Kind, Node, ShortsResult, VideoResult
from zray.pipeline.driver import Driver, Job
from zray.pipeline.engine_setup import EngineSetup, EngineSetupError, prepare_engines, unserved_languages
from zray.pipeline.executor import InProcessExecutor
from zray.pipeline.prepare import (
    Prepared,
    RunError,
    RunRequest,
    check_writable,
    episode_prefix,
    open_store,
    prepare_episode,
    put_inputs,
)
from zray.pipeline.profile import cluster_gpus, resolve_profile
from zray.pipeline.progress import EpisodeProgress, StageProgress, setup_logging, summary_table, why_lines
from zray.pipeline.records import RunRecord
from zray.pipeline.runlog import RunLog
from zray.script import Script, load_script
from zray.store import Store
from zray.work import Executor, StepFn

log = logging.getLogger("zray")

# At most this many stale steps, none needing a GPU, run in this process instead of on Ray.
IN_PROCESS_MAX_STEPS = 12

__all__ = ["RunError", "RunReport", "RunRequest", "execute", "run_episode"]


@dataclass
class RunReport:
    script: Path
    episode: str
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    languages: list[str] = field(default_factory=list)
    built: int = 0
    cached: int = 0
    seconds: float = 0.0
    executor: str | None = None  # None: nothing ran
    video_names: dict[str, str] = field(default_factory=dict)
    why: dict[str, str] = field(default_factory=dict)  # each step this run made -> why it ran (--explain's)

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def ray_started(self) -> bool:
        return self.executor == "ray"


def run_episode(request: RunRequest, config: Config, *, console: Console | None = None) -> RunReport:
    """One script; anything wrong with it raises (ScriptError, RunError) before any work."""
    console = console or Console(stderr=True)
    setup_logging(console, quiet=config.quiet)
    started = time.monotonic()
    script, warnings = load_script(request.script, limits=config.limits.script_limits())
    for warning in warnings:
        log.warning("%s", warning.render(str(request.script)))
    report = execute([(request, script)], config, console=console, isolate=False)[0]
    report.seconds = time.monotonic() - started
    print_summary(report)
    return report


def preview(request: RunRequest, config: Config) -> Prepared:
    """The episode planned against its folder without changing anything: for --explain and
    --clean --dry-run."""
    script, _ = load_script(request.script, limits=config.limits.script_limits())
    languages = request.languages or script.languages
    engines, _ = _engines(languages, config, isolate=False)
    return prepare_episode(request, script, config, open_store(config.output), engines, readonly=True)


def execute(
    items: list[tuple[RunRequest, Script]],
    config: Config,
    *,
    console: Console,
    isolate: bool,
    max_jobs: int = 1,
    steps: Mapping[Kind, StepFn] | None = None,
) -> list[RunReport]:
    """Plan every episode, then run all the stale work on one executor.

    With `isolate` (a batch), an episode that cannot start (a broken intro, a bad --lang, a folder
    another script claims) is reported failed and the others go on; without it, its error is raised.
    `steps` replaces zray's CPU steps (`zray.pipeline.steps.STEPS`) for this call only: a benchmark
    hands in simulated ones, which the executor runs wherever it runs the real ones.
    """
    wall = time.monotonic()
    store = open_store(config.output)
    _check_cluster(store, config)  # before anything touches the output
    runlog = RunLog()
    log.addHandler(runlog)
    reports: dict[int, RunReport] = {}
    prepared: dict[int, Prepared] = {}
    try:
        for index, reason in _collisions(items, config).items():
            if not isolate:
                raise RunError(reason)
            log.error("%s", reason)
            reports[index] = RunReport(script=items[index][0].script, episode="", failed={"all": reason})
        languages = list(
            dict.fromkeys(
                lang for request, script in items for lang in (request.languages or script.languages)
            )
        )
        engines, unserved = _engines(languages, config, isolate=isolate)
        log.info("engines: %s", engines.describe())
        if engines.music.name == "musicgen":
            log.warning("MusicGen weights are licensed CC-BY-NC-4.0: not for monetised videos")
        for index, (request, script) in enumerate(items):
            if index in reports:
                continue
            wanted = request.languages or script.languages
            missing = [lang for lang in wanted if lang in unserved]
            if missing:
                log.error("%s: %s", request.script, unserved[missing[0]])
                reports[index] = RunReport(
                    script=request.script, episode="", failed={missing[0]: unserved[missing[0]]}
                )
                continue
            try:
                prepared[index] = prepare_episode(request, script, config, store, engines)
            except RunError as exc:
                if not isolate:
                    raise
                log.error("%s: %s", request.script, exc)
                reports[index] = RunReport(script=request.script, episode="", failed={"all": str(exc)})

        stale = {i: p for i, p in prepared.items() if p.stale}
        if stale:
            _run(
                stale,
                store,
                config,
                engines,
                console,
                runlog,
                reports,
                isolate=isolate,
                max_jobs=max_jobs,
                wall=wall,
                steps=steps,
            )
        for index, prep in prepared.items():
            if index not in stale:
                log.info("%s: everything is up to date (%d steps cached)", prep.episode, len(prep.plan.nodes))
                reports[index] = _report(prep, job=None, executor=None)
                prep.record.flush()  # only if checking found something to remember (a new fingerprint)
    finally:
        for prep in prepared.values():
            prep.release()
        log.removeHandler(runlog)
    return [reports[i] for i in range(len(items))]


def _check_cluster(store: Store, config: Config) -> None:
    """Joining a cluster: it answers, and a local output is one every node sees. An embedded
    instance is this machine alone, so it needs neither check (nor Ray started to make them)."""
    if config.address:
        from zray.actors.cluster import check_reachable

        check_reachable(config.address)
    elif "ray" not in sys.modules or not sys.modules["ray"].is_initialized():
        return
    from zray.actors.cluster import check_shared_storage, connect

    connect(config)
    check_shared_storage(store, config)


def _collisions(items: list[tuple[RunRequest, Script]], config: Config) -> dict[int, str]:
    """Different scripts that would write the same episode folder: refused, all of them, before any work."""
    by_folder: dict[str, list[int]] = {}
    for index, (request, _) in enumerate(items):
        by_folder.setdefault(episode_prefix(request.script, config), []).append(index)
    refused: dict[int, str] = {}
    for folder, indexes in by_folder.items():
        origins = list(dict.fromkeys(items[i][0].origin for i in indexes))
        if len(origins) > 1:
            reason = (
                f"{' and '.join(origins)} would both write the episode folder {folder}; "
                "rename one script or give it another --project"
            )
            refused.update(dict.fromkeys(indexes, reason))
    return refused


def _engines(languages: list[str], config: Config, *, isolate: bool) -> tuple[EngineSetup, dict[str, str]]:
    profile = resolve_profile(config, gpus=cluster_gpus(config))
    try:
        return prepare_engines(languages, config, profile), {}
    except EngineSetupError:
        unserved = unserved_languages(languages, config, profile) if isolate else {}
        if not unserved or len(unserved) == len(languages):
            raise
        served = [lang for lang in languages if lang not in unserved]
        return prepare_engines(served, config, profile), unserved


def _choose_executor(stale: dict[int, Prepared], config: Config, engines: EngineSetup) -> str:
    if config.executor != "auto":
        return config.executor
    if config.address:
        return "ray"
    nodes = [n for prep in stale.values() for n in prep.stale]
    gpu = any(_spec_of(n, engines).uses_gpu for n in nodes if n.kind in MODEL_KINDS)
    return "in-process" if not gpu and len(nodes) <= IN_PROCESS_MAX_STEPS else "ray"


def _spec_of(node: Node, engines: EngineSetup) -> Any:
    role = ROLES[node.kind]
    return engines.tts[node.lang or ""] if role == "tts" else getattr(engines, role)


@contextlib.contextmanager
def _executor(
    kind: str,
    config: Config,
    engines: EngineSetup,
    roles: set[str],
    store: Store,
    steps: Mapping[Kind, StepFn] | None = None,
) -> Iterator[Executor]:
    if steps is None:
        from zray.pipeline.steps import STEPS  # media libraries: only when there is work

        steps = STEPS

    if kind == "in-process":
        args = {
            "image": (engines.image,),
            "tts": (engines.tts,),
            "music": (engines.music,),
            "video": (engines.video,),
        }
        factories = {role: (lambda role=role: WORKERS[role](*args[role])) for role in roles}
        executor = InProcessExecutor(steps=steps, workers=factories, threads=os.cpu_count() or 1)
        try:
            yield executor
        finally:
            executor.close()
        return
    import ray

    from zray.actors.cluster import check_shared_storage, connect
    from zray.actors.executor import RayExecutor
    from zray.actors.pool import ActorPool

    embedded = connect(config)
    try:
        check_shared_storage(store, config)
        ray_executor = RayExecutor(
            ActorPool(config, engines, roles), steps=steps, task_retries=config.task_retries
        )
        try:
            yield ray_executor
        finally:
            ray_executor.close()
    finally:
        if embedded:
            ray.shutdown()


def _run(
    stale: dict[int, Prepared],
    store: Store,
    config: Config,
    engines: EngineSetup,
    console: Console,
    runlog: RunLog,
    reports: dict[int, RunReport],
    *,
    isolate: bool,
    max_jobs: int,
    wall: float,
    steps: Mapping[Kind, StepFn] | None = None,
) -> None:
    kind = _choose_executor(stale, config, engines)
    jobs: list[Job] = []
    by_job: dict[str, int] = {}
    for index, prep in stale.items():
        try:
            check_writable(prep.store)
            put_inputs(prep)
        except RunError as exc:
            if not isolate:
                raise
            reports[index] = RunReport(
                script=prep.request.script, episode=prep.episode, failed={"all": str(exc)}
            )
            continue
        log.info(
            "%s: %d of %d steps to run; %d cached (%s)",
            prep.episode,
            len(prep.stale),
            len(prep.plan.nodes),
            len(prep.plan.nodes) - len(prep.stale),
            kind,
            extra={"episode": prep.episode},
        )
        job = Job(name=prep.episode, plan=prep.plan, record=prep.record, stale=prep.stale, store=prep.store)
        job.old_entries = {
            n.id: copy.deepcopy(prep.record.nodes[n.id])
            for n in prep.stale
            if n.final and n.id in prep.record.nodes
        }
        by_job[job.name] = index
        jobs.append(job)
    if not jobs:
        return
    roles = {ROLES[n.kind] for job in jobs for n in job.stale if n.kind in MODEL_KINDS}
    progress_cls = StageProgress if len(jobs) == 1 else EpisodeProgress
    progress = progress_cls(console, jobs, enabled=not config.quiet)
    finished: set[str] = set()

    def job_done(job: Job) -> None:
        index = by_job[job.name]
        finished.add(job.name)
        reports[index] = _finish(stale[index], job, config, engines, runlog, executor=kind, wall=wall)
        progress.job_done(job, reports[index])

    try:
        with _executor(kind, config, engines, roles, store, steps) as executor, progress:
            Driver(
                executor,
                max_in_flight=config.max_in_flight,
                max_jobs=max_jobs,
                on_node=progress.node_done,
                on_job=job_done,
                on_progress=progress.step_progress,
            ).run(jobs)
    finally:
        # An interrupted or failed run still leaves its log and its record of what it finished.
        for job in jobs:
            if job.name not in finished:
                index = by_job[job.name]
                job.failed.setdefault("all", "interrupted")
                try:
                    reports[index] = _finish(
                        stale[index], job, config, engines, runlog, executor=kind, wall=wall
                    )
                except ZrayError as exc:  # the storage itself failing: the error on its way up says it
                    log.error("%s: %s", job.name, exc)


def _finish(
    prep: Prepared,
    job: Job,
    config: Config,
    engines: EngineSetup,
    runlog: RunLog,
    *,
    executor: str,
    wall: float,
) -> RunReport:
    """Record the episode: script.json, run.json with outputs and how each step ran, and its log."""
    record, plan, store = prep.record, prep.plan, prep.store
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
        "wall_seconds": round(time.monotonic() - wall, 3),
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
    report = _report(prep, job=job, executor=executor, outputs=outputs)
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


def _report(
    prep: Prepared, *, job: Job | None, executor: str | None, outputs: dict[str, Any] | None = None
) -> RunReport:
    return RunReport(
        script=prep.request.script,
        episode=prep.store.root_url,
        outputs=outputs if outputs is not None else _outputs(prep),
        failed=dict(job.failed) if job else {},
        languages=prep.languages,
        built=len(prep.stale) if job else 0,
        cached=len(prep.plan.nodes) - (len(prep.stale) if job else 0),
        seconds=(job.finished - job.started) if job and job.finished else 0.0,
        executor=executor,
        video_names=dict(prep.plan.video_names),
        why={node: prep.reasons.get(node) or "needed by what is stale" for node in job.built} if job else {},
    )


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
        reason = report.failed.get(lang) or report.failed.get("all")
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
