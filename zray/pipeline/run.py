"""`zray run` and `zray batch`: scripts in, finished videos out.

Every episode is planned before Ray starts; a rerun with nothing to do never starts Ray. The
episodes that have work share one Ray session, one set of resident engine actors and one driver.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from zray import __version__
from zray.config import Config
from zray.engines.registry import EngineChoice
from zray.keys import content_key, safe_name
from zray.pipeline.manifest import Manifest
from zray.pipeline.plan import Intro, Plan
from zray.pipeline.prepare import (
    Prepared,
    RunError,
    RunRequest,
    check_writable,
    cluster_gpus,
    open_store,
    prepare_engines,
    prepare_episode,
    resolve_profile,
)
from zray.pipeline.progress import EpisodeProgress, StageProgress, setup_logging, summary_table
from zray.script import Script, load_script
from zray.store import Store, StoreError

log = logging.getLogger("zray")

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
    ray_started: bool = False
    video_names: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed


def run_episode(request: RunRequest, config: Config, *, console: Console | None = None) -> RunReport:
    """One script; anything wrong with it raises (ScriptError, RunError) before any work."""
    console = console or Console(stderr=True)
    setup_logging(console, quiet=config.quiet)
    started = time.monotonic()
    script, warnings = load_script(request.script)
    for warning in warnings:
        log.warning("%s", warning.render(str(request.script)))
    report = execute([(request, script)], config, console=console, isolate=False)[0]
    report.seconds = time.monotonic() - started
    print_summary(console, report)
    return report


def execute(
    items: list[tuple[RunRequest, Script]],
    config: Config,
    *,
    console: Console,
    isolate: bool,
    max_jobs: int = 1,
) -> list[RunReport]:
    """Plan every episode, then run all the stale work on one Ray session.

    With `isolate`, an episode that cannot start (a broken intro, a bad --lang) is reported failed
    and the others go on; without it, its error is raised.
    """
    store = open_store(config.output)
    languages = list(
        dict.fromkeys(lang for request, script in items for lang in (request.languages or script.languages))
    )
    profile = resolve_profile(config, gpus=cluster_gpus(config))
    try:
        engines, identities = prepare_engines(languages, config, profile)
        unserved: dict[str, str] = {}
    except RunError:
        unserved = _unserved_languages(languages, config, profile) if isolate else {}
        if not unserved or len(unserved) == len(languages):
            raise
        served = [lang for lang in languages if lang not in unserved]
        engines, identities = prepare_engines(served, config, profile)
    log.info("engines: %s", engines.describe())
    if engines.music.name == "musicgen":
        log.warning("MusicGen weights are licensed CC-BY-NC-4.0: not for monetised videos")

    reports: dict[int, RunReport] = {}
    prepared: dict[int, Prepared] = {}
    for index, (request, script) in enumerate(items):
        missing = [lang for lang in request.languages or script.languages if lang in unserved]
        if missing:
            log.error("%s: %s", request.script, unserved[missing[0]])
            reports[index] = RunReport(
                script=request.script, episode="", failed={missing[0]: unserved[missing[0]]}
            )
            continue
        try:
            prepared[index] = prepare_episode(request, script, config, store, engines, identities)
        except RunError as exc:
            if not isolate:
                raise
            log.error("%s: %s", request.script, exc)
            reports[index] = RunReport(script=request.script, episode="", failed={"all": str(exc)})

    stale = {i: p for i, p in prepared.items() if p.stale}
    capture = _LogCapture()
    log.addHandler(capture)
    try:
        if stale:
            _run_on_ray(
                stale,
                store,
                config,
                engines,
                identities,
                console,
                capture,
                reports,
                isolate=isolate,
                max_jobs=max_jobs,
            )
        for index, prep in prepared.items():
            if index not in stale:
                log.info("%s: everything is up to date (%d steps cached)", prep.episode, len(prep.plan.nodes))
                reports[index] = finish(prep, store, config, identities, profile, capture, job=None)
    finally:
        log.removeHandler(capture)
    return [reports[i] for i in range(len(items))]


def _unserved_languages(languages: list[str], config: Config, profile: str) -> dict[str, str]:
    """Languages no engine serves, each with its reason: in a batch, the episodes that need one
    fail alone instead of stopping the batch."""
    unserved: dict[str, str] = {}
    for lang in languages:
        try:
            prepare_engines([lang], config, profile)
        except RunError as exc:
            unserved[lang] = str(exc)
    return unserved


def _run_on_ray(
    stale: dict[int, Prepared],
    store: Store,
    config: Config,
    engines: EngineChoice,
    identities: dict[str, dict[str, Any]],
    console: Console,
    capture: _LogCapture,
    reports: dict[int, RunReport],
    *,
    isolate: bool,
    max_jobs: int,
) -> None:
    import ray

    from zray.actors.pool import ActorPool
    from zray.pipeline.cluster import check_shared_storage, connect
    from zray.pipeline.driver import Driver, Job

    # Everything that can refuse the run does so before the first write.
    embedded = connect(config)
    try:
        check_shared_storage(store, config)
        jobs: list[Job] = []
        by_job: dict[int, int] = {}
        for index, prep in stale.items():
            try:
                check_writable(store, prep.episode)
            except RunError as exc:
                if not isolate:
                    raise
                reports[index] = RunReport(
                    script=prep.request.script, episode=prep.episode, failed={"all": str(exc)}
                )
                continue
            if prep.intro is not None and prep.intro_path is not None and not store.exists(prep.intro.key):
                store.put(prep.intro_path, prep.intro.key)
            log.info(
                "%s: %d of %d steps to run; %d cached",
                prep.episode,
                len(prep.stale),
                len(prep.plan.nodes),
                len(prep.plan.nodes) - len(prep.stale),
            )
            job = Job(name=prep.episode, plan=prep.plan, manifest=prep.manifest, stale=prep.stale)
            job.old_outputs = {n.id: prep.manifest.previous_outputs(n.id) for n in prep.stale if n.final}
            by_job[id(job)] = index
            jobs.append(job)
        roles = {n.kind for job in jobs for n in job.stale if n.kind in ("image", "tts", "music")}
        pool = ActorPool(config, engines, roles)
        progress_cls = StageProgress if len(stale) == 1 else EpisodeProgress
        progress = progress_cls(console, jobs, enabled=not config.quiet)

        def job_done(job: Job) -> None:
            index = by_job[id(job)]
            prep = stale[index]
            _remove_replaced(store, prep.plan, job.old_outputs, set(job.built))
            reports[index] = finish(prep, store, config, identities, engines.profile, capture, job=job)
            progress.job_done(job, reports[index])

        driver = Driver(
            store,
            pool,
            max_in_flight=config.max_in_flight,
            task_retries=config.task_retries,
            max_jobs=max_jobs,
            on_node=progress.node_done,
            on_job=job_done,
        )
        try:
            with progress:
                driver.run(jobs)
        finally:
            pool.shutdown()
    finally:
        if embedded:
            ray.shutdown()


def finish(
    prep: Prepared,
    store: Store,
    config: Config,
    identities: dict[str, Any],
    profile: str,
    capture: _LogCapture,
    *,
    job: Any,
) -> RunReport:
    """Record the episode: script.json, run.json with outputs and checksums, and its log."""
    failed = dict(job.failed) if job is not None else {}
    plan, manifest = prep.plan, prep.manifest
    _save_script(store, prep.episode, prep.request.script)
    outputs = _outputs(store, manifest, plan)
    timings = {stage: round(seconds, 3) for stage, seconds in (job.timings.items() if job else [])}
    manifest.flush(
        force=True,
        zray=__version__,
        script=str(prep.request.script),
        inputs=_inputs_hash(prep.request.script, config, prep.languages, prep.intro),
        finished=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        profile=profile,
        engines=identities,
        timings=timings,
        cache={"hits": len(plan.nodes) - len(prep.stale), "built": len(job.built) if job else 0},
        outputs=outputs,
        failed=failed,
    )
    _write_log(store, prep.episode, prep.script, capture.lines_for(prep.episode))
    return RunReport(
        script=prep.request.script,
        episode=store.url(prep.episode),
        outputs=outputs,
        failed=failed,
        languages=prep.languages,
        built=len(prep.stale),
        cached=len(plan.nodes) - len(prep.stale),
        seconds=(job.finished - job.started) if job else 0.0,
        ray_started=job is not None,
        video_names=dict(plan.video_names),
    )


def print_summary(console: Console, report: RunReport) -> None:
    rows = []
    for lang in report.languages:
        name = report.video_names.get(lang, "")
        info = report.outputs.get(name)
        reason = report.failed.get(lang) or report.failed.get("all")
        if reason:
            rows.append({"language": lang, "file": name, "status": f"FAILED: {reason}"})
        elif info:
            rows.append(
                {
                    "language": lang,
                    "file": name,
                    "duration": clock(info.get("duration") or 0),
                    "size": f"{info['size'] / 1e6:.1f} MB",
                    "status": "ok",
                }
            )
    console.print(summary_table(rows))
    console.print(
        f"{report.episode}: {report.built} steps run, {report.cached} cached, {report.seconds:.1f} s",
        highlight=False,
    )


def clock(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}:{secs:02d}"


# --- records -----------------------------------------------------------------------------------


def _remove_replaced(
    store: Store, plan: Plan, old_outputs: dict[str, tuple[str, ...]], built: set[str]
) -> None:
    """Delete what a rebuilt deliverable replaced under another name (an old title's video)."""
    for node_id, old in old_outputs.items():
        if node_id not in built:
            continue
        for path in set(old) - set(plan.nodes[node_id].outputs):
            store.remove(path)
            log.info("removed %s (replaced)", path.rsplit("/", 1)[-1])


def _outputs(store: Store, manifest: Manifest, plan: Plan) -> dict[str, dict[str, Any]]:
    previous = manifest.data.get("outputs", {})
    outputs: dict[str, dict[str, Any]] = {}
    for node in plan.targets():
        entry = manifest.nodes.get(node.id)
        if entry is None or entry.get("key") != node.key:
            continue
        for path in node.outputs:
            name = path[len(plan.episode) + 1 :]
            old = previous.get(name, {})
            size = store.size(path)
            checksum = old.get("sha256") if old.get("key") == node.key and old.get("size") == size else None
            outputs[name] = {
                "key": node.key,
                "size": size,
                "sha256": checksum or store.checksum(path),
                **({"duration": entry["result"].get("duration")} if node.kind == "video" else {}),
            }
    return outputs


def _save_script(store: Store, episode: str, path: Path) -> None:
    """Keep the script as run beside its outputs, so upload and publish need only the folder."""
    key = f"{episode}/script.json"
    data = path.read_bytes()
    if not store.exists(key) or store.read_bytes(key) != data:
        store.write_bytes(key, data)


def _inputs_hash(script_path: Path, config: Config, languages: list[str], intro: Intro | None) -> str:
    return content_key(
        hashlib.sha256(script_path.read_bytes()).hexdigest(),
        config.model_dump(mode="json", exclude={"quiet", "dashboard"}),
        languages,
        intro.digest if intro else None,
    )


class _LogCapture(logging.Handler):
    """The run's log lines, so each episode's log file gets its own lines and the shared ones."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[tuple[str, str]] = []
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((record.getMessage(), self.format(record)))

    def lines_for(self, episode: str) -> list[str]:
        prefixes = ("engines:", "MusicGen", "GOOGLE_API_KEY")
        return [line for message, line in self.records if message.startswith((episode, *prefixes))]


def _write_log(store: Store, episode: str, script: Script, lines: list[str]) -> None:
    stamp = dt.datetime.now().strftime("%Y%m%d_%H%M%S")
    key = f"{episode}/logs/{safe_name(script.project_title)}_{stamp}.log"
    try:
        store.write_text(key, "\n".join(lines) + "\n")
    except (OSError, StoreError):
        log.warning("could not write the run log to %s", store.url(key))
