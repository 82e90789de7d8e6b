"""`zray run` and `zray batch`: scripts in, finished videos out.

Every episode is planned before any work; a rerun with nothing to do starts nothing. The episodes
that have work share one executor (`zray.pipeline.executor_choice` picks it); each is recorded as
it finishes (`zray.pipeline.finish`), and the run ends with its summary (`zray.pipeline.summary`).
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Mapping

from rich.console import Console

from zray.config import Config
from zray.errors import ZrayError
from zray.nodes import MODEL_KINDS, ROLES, Kind
from zray.pipeline.context import RunContext
from zray.pipeline.driver import Driver, Job
from zray.pipeline.engine_setup import EngineSetup, EngineSetupError, prepare_engines, unserved_languages
from zray.pipeline.executor_choice import check_cluster, choose_executor, open_executor
from zray.pipeline.finish import finish, report_of
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
from zray.pipeline.progress import EpisodeProgress, StageProgress, setup_logging
from zray.pipeline.report import EPISODE, Failures, RunReport
from zray.pipeline.runlog import RunLog
from zray.pipeline.summary import print_summary
from zray.script import Script, load_script
from zray.work import StepFn

log = logging.getLogger("zray")

__all__ = ["RunError", "RunReport", "RunRequest", "execute", "run_episode"]


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
    check_cluster(store, config)  # before anything touches the output
    runlog = RunLog()
    log.addHandler(runlog)
    reports: dict[int, RunReport] = {}
    prepared: dict[int, Prepared] = {}
    try:
        for index, reason in _collisions(items, config).items():
            if not isolate:
                raise RunError(reason)
            log.error("%s", reason)
            reports[index] = RunReport(
                script=items[index][0].script, episode="", failed=Failures.of_episode(reason)
            )
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
                    script=request.script,
                    episode="",
                    failed=Failures.of_language(missing[0], unserved[missing[0]]),
                )
                continue
            try:
                prepared[index] = prepare_episode(request, script, config, store, engines)
            except RunError as exc:
                if not isolate:
                    raise
                log.error("%s: %s", request.script, exc)
                reports[index] = RunReport(
                    script=request.script, episode="", failed=Failures.of_episode(str(exc))
                )

        stale = {i: p for i, p in prepared.items() if p.stale}
        if stale:
            context = RunContext(
                store=store,
                config=config,
                engines=engines,
                console=console,
                runlog=runlog,
                isolate=isolate,
                max_jobs=max_jobs,
                wall=wall,
                steps=steps,
            )
            _run(context, stale, reports)
        for index, prep in prepared.items():
            if index not in stale:
                log.info("%s: everything is up to date (%d steps cached)", prep.episode, len(prep.plan.nodes))
                reports[index] = report_of(prep, job=None, executor=None)
                prep.record.flush()  # only if checking found something to remember (a new fingerprint)
    finally:
        for prep in prepared.values():
            prep.release()
        log.removeHandler(runlog)
    return [reports[i] for i in range(len(items))]


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


def _run(context: RunContext, stale: dict[int, Prepared], reports: dict[int, RunReport]) -> None:
    """Run the stale episodes' work on one executor; each episode is recorded as it finishes, and
    one the run did not finish (interrupted, failed) is recorded too."""
    config, engines = context.config, context.engines
    kind = choose_executor(stale, config, engines)
    jobs: list[Job] = []
    by_job: dict[str, int] = {}
    for index, prep in stale.items():
        try:
            check_writable(prep.store)
            put_inputs(prep)
        except RunError as exc:
            if not context.isolate:
                raise
            reports[index] = RunReport(
                script=prep.request.script, episode=prep.episode, failed=Failures.of_episode(str(exc))
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
    progress = progress_cls(context.console, jobs, enabled=not config.quiet)
    finished: set[str] = set()

    def job_done(job: Job) -> None:
        index = by_job[job.name]
        finished.add(job.name)
        reports[index] = finish(stale[index], job, context, executor=kind)
        progress.job_done(job, reports[index])

    try:
        with open_executor(kind, config, engines, roles, context.store, context.steps) as executor, progress:
            Driver(
                executor,
                max_in_flight=config.max_in_flight,
                max_jobs=context.max_jobs,
                on_node=progress.node_done,
                on_job=job_done,
                on_progress=progress.step_progress,
            ).run(jobs)
    finally:
        # An interrupted or failed run still leaves its log and its record of what it finished.
        for job in jobs:
            if job.name not in finished:
                index = by_job[job.name]
                job.failed.setdefault(EPISODE, "interrupted")
                try:
                    reports[index] = finish(stale[index], job, context, executor=kind)
                except ZrayError as exc:  # the storage itself failing: the error on its way up says it
                    log.error("%s: %s", job.name, exc)
