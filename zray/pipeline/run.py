"""`zray run`: one script in, finished videos out.

Everything a user can get wrong (script, config, intro, output, languages, engines) is checked
before Ray starts, and a rerun with nothing to do is decided from the store alone.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from zray import __version__
from zray.config import Config
from zray.engines.base import EngineError
from zray.engines.registry import EngineChoice, choose_engines
from zray.keys import content_key, safe_name
from zray.media import video
from zray.pipeline.manifest import Manifest, stale_nodes
from zray.pipeline.plan import Intro, Plan, build_plan
from zray.pipeline.progress import StageProgress, setup_logging, summary_table
from zray.script import Script, load_script
from zray.store import Store, StoreError

log = logging.getLogger("zray")
KEEP_ON_CLEAN = {"published.json"}


class RunError(RuntimeError):
    """A run that cannot start or finish; the message is one line with the fix."""


@dataclass
class RunRequest:
    script: Path
    languages: list[str] = field(default_factory=list)
    intro: Path | None = None
    clean: bool = False


@dataclass
class RunReport:
    episode: str
    outputs: dict[str, dict[str, Any]]
    failed: dict[str, str]
    built: int
    cached: int
    seconds: float
    ray_started: bool

    @property
    def ok(self) -> bool:
        return not self.failed


def project_name(script_path: Path, config: Config) -> str:
    return safe_name(config.project or script_path.resolve().parent.name, fallback="default")


def find_intro(script_path: Path, project: str) -> Path | None:
    """The seed's layout: inputs/scripts/<project>/X.json -> inputs/assets/<project>/intro*.mp4."""
    scripts_dir = script_path.resolve().parent.parent
    if scripts_dir.name != "scripts":
        return None
    candidates = sorted((scripts_dir.parent / "assets" / project).glob("intro*.mp4"))
    return candidates[0] if candidates else None


def resolve_profile(config: Config, *, gpus: float | None = None) -> str:
    if config.profile != "auto":
        return config.profile
    if gpus is None:
        gpus = local_gpu_count()
    return "production" if gpus > 0 else "draft"


def local_gpu_count() -> int:
    """GPUs Ray would see on this machine, without starting Ray."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return 0
    try:
        from ray._private.accelerators import NvidiaGPUAcceleratorManager

        return int(NvidiaGPUAcceleratorManager.get_current_node_num_accelerators())
    except Exception:  # no driver, no NVML: no GPU for our purposes
        return 0


def prepare_engines(
    script: Script, languages: list[str], config: Config, profile: str
) -> tuple[EngineChoice, dict[str, dict[str, Any]]]:
    """Choose engines, check each can serve its languages, and collect identities for cache keys.

    Identities are keyed by engine name, plus `tts:<lang>` for what decides one language's voice.
    """
    try:
        choice = choose_engines(config, languages, profile=profile)
        choice = _google_key_fallback(choice, config)
        identities: dict[str, dict[str, Any]] = {}
        for spec in {choice.image, choice.music, *choice.tts.values()}:
            engine = spec.create()
            identities[spec.name] = engine.identity()
            for lang, lang_spec in choice.tts.items():
                if lang_spec != spec:
                    continue
                if not engine.supports(lang):
                    raise EngineError(
                        f"the {spec.name} voice engine has no voice for language {lang!r}; "
                        f"set engines.tts.{lang} to another engine or run with --lang to skip it"
                    )
                if hasattr(engine, "identity_for"):
                    identities[f"tts:{lang}"] = engine.identity_for(lang)
    except EngineError as exc:
        raise RunError(str(exc)) from None
    return choice, identities


def _google_key_fallback(choice: EngineChoice, config: Config) -> EngineChoice:
    """Google Cloud TTS without GOOGLE_API_KEY: say so once, now, and use the fallback (or refuse)."""
    google = [lang for lang, spec in choice.tts.items() if spec.name == "google"]
    if not google:
        return choice
    from zray.engines.google_tts import api_key_available

    if api_key_available():
        return choice
    fallback = config.google_tts.fallback
    if not fallback:
        raise RunError(
            f"GOOGLE_API_KEY is not set (environment or .env) and Google Cloud TTS voices {', '.join(google)}; "
            'set it, or set google_tts.fallback = "espeak"'
        )
    log.warning(
        "GOOGLE_API_KEY is not set: narrating %s with %s instead of Google Cloud TTS",
        ", ".join(google),
        fallback,
    )
    with_fallback = choose_engines(
        config.model_copy(
            update={
                "engines": config.engines.model_copy(
                    update={"tts": {**config.engines.tts, **dict.fromkeys(google, fallback)}}
                )
            }
        ),
        list(choice.tts),
        profile=choice.profile,
    )
    return with_fallback


def run_episode(request: RunRequest, config: Config, *, console: Console | None = None) -> RunReport:
    console = console or Console(stderr=True)
    setup_logging(console, quiet=config.quiet)
    started = time.monotonic()
    script, warnings = load_script(request.script)
    for warning in warnings:
        log.warning("%s", warning.render(str(request.script)))

    languages = request.languages or script.languages
    unknown = [lang for lang in languages if lang not in script.languages]
    if unknown:
        raise RunError(
            f"--lang {', '.join(unknown)}: the script has no narration in that language "
            f"(it has {', '.join(script.languages)})"
        )
    project = project_name(request.script, config)
    episode = f"{project}/{safe_name(request.script.stem)}"
    store = _open_store(config.output)

    intro_path = request.intro or find_intro(request.script, project)
    if intro_path is not None:
        _check_intro(intro_path)

    profile = resolve_profile(config, gpus=_cluster_gpus(config))
    engines, identities = prepare_engines(script, languages, config, profile)
    log.info("engines: %s", engines.describe())
    if engines.music.name == "musicgen":
        log.warning("MusicGen weights are licensed CC-BY-NC-4.0: not for monetised videos")
    if request.clean:
        _clean(store, episode)

    intro = _intro_ref(intro_path, episode) if intro_path else None
    plan = build_plan(
        script,
        episode=episode,
        languages=languages,
        engines=engines,
        identities=identities,
        config=config,
        intro=intro,
    )
    manifest = Manifest.load(store, episode)
    store.sweep_temps(episode)
    existing = set(store.list(episode))
    _apply_renames(store, manifest, plan, existing)
    stale = stale_nodes(plan, manifest, existing)

    failed: dict[str, str] = {}
    timings: dict[str, float] = {}
    log_lines = _LogCapture()
    if stale:
        # Everything that can refuse the run does so before the first write.
        from zray.pipeline.cluster import connect

        embedded = connect(config)
        log.addHandler(log_lines)
        try:
            _check_writable(store, episode)
            if intro is not None and intro_path is not None and not store.exists(intro.key):
                store.put(intro_path, intro.key)
            log.info(
                "%d of %d steps to run; %d cached", len(stale), len(plan.nodes), len(plan.nodes) - len(stale)
            )
            old_outputs = {n.id: manifest.previous_outputs(n.id) for n in stale if n.final}
            failed, timings, built = _execute(plan, store, manifest, stale, engines, config, console)
            _remove_replaced(store, plan, old_outputs, built)
        finally:
            if embedded:
                import ray

                ray.shutdown()
    else:
        log.addHandler(log_lines)
        log.info("everything is up to date (%d steps cached)", len(plan.nodes))
    try:
        _save_script(store, episode, request.script)
        outputs = _outputs(store, manifest, plan, failed)
        manifest.flush(
            force=True,
            zray=__version__,
            script=str(request.script),
            inputs=_inputs_hash(request.script, config, languages, intro),
            finished=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            profile=profile,
            engines=identities,
            timings={stage: round(seconds, 3) for stage, seconds in timings.items()},
            cache={"hits": len(plan.nodes) - len(stale), "built": len(stale) - len(failed)},
            outputs=outputs,
            failed=failed,
        )
    finally:
        log.removeHandler(log_lines)
        _write_log(store, episode, script, log_lines.lines)
    report = RunReport(
        episode=store.url(episode),
        outputs=outputs,
        failed=failed,
        built=len(stale),
        cached=len(plan.nodes) - len(stale),
        seconds=time.monotonic() - started,
        ray_started=bool(stale),
    )
    _print_summary(console, report, plan)
    return report


# --- execution ---------------------------------------------------------------------------------


def _execute(
    plan: Plan,
    store: Store,
    manifest: Manifest,
    stale: list,
    engines: EngineChoice,
    config: Config,
    console: Console,
) -> tuple[dict[str, str], dict[str, float], set[str]]:

    from zray.actors.pool import ActorPool
    from zray.pipeline.driver import Driver

    pool = ActorPool(config, engines, {n.kind for n in stale if n.kind in ("image", "tts", "music")})
    try:
        progress = StageProgress(console, plan.nodes.values(), stale, enabled=not config.quiet)
        driver = Driver(
            plan,
            store,
            manifest,
            pool,
            max_in_flight=config.max_in_flight,
            task_retries=config.task_retries,
            on_done=progress.done,
        )
        with progress:
            outcome = driver.run(stale)
        return outcome.failed, dict(outcome.timings), set(outcome.built)
    finally:
        pool.shutdown()


def _cluster_gpus(config: Config) -> float | None:
    """GPUs for --profile auto: the cluster's when joining one, else this machine's."""
    if config.profile != "auto" or not config.address:
        return None
    import ray

    from zray.pipeline.cluster import connect

    connect(config)
    return float(ray.cluster_resources().get("GPU", 0))


# --- files -------------------------------------------------------------------------------------


def _open_store(output: str) -> Store:
    try:
        return Store(output)
    except (ValueError, ImportError, OSError) as exc:
        raise RunError(f"--output {output}: cannot open it ({exc})") from None


def _check_writable(store: Store, episode: str) -> None:
    try:
        store.check_writable(episode)
    except StoreError as exc:
        raise RunError(f"{exc}; choose another --output or fix its permissions") from None


def _check_intro(path: Path) -> None:
    try:
        info = video.probe(path)
    except (OSError, ValueError) as exc:
        raise RunError(
            f"--intro {path}: cannot read it as a video ({exc}); fix the file or leave --intro out"
        ) from None
    if not getattr(info, "video_frames", 1) and not getattr(info, "frames", 1):
        raise RunError(f"--intro {path}: it has no video frames")


def _intro_ref(path: Path, episode: str) -> Intro:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return Intro(
        key=f"{episode}/assets/common/intro_{digest[:16]}{path.suffix.lower() or '.mp4'}", digest=digest
    )


def _clean(store: Store, episode: str) -> None:
    for key in store.list(episode):
        if key.rsplit("/", 1)[-1] not in KEEP_ON_CLEAN:
            store.remove(key)
    log.info("--clean: removed the generated files of %s", episode)


def _apply_renames(store: Store, manifest: Manifest, plan: Plan, existing: set[str]) -> None:
    """A changed title renames the finished video instead of rebuilding it."""
    for node, old in manifest.renamed(plan, existing):
        for src, dst in zip(old, node.outputs, strict=True):
            if src != dst:
                store.move(src, dst)
                existing.discard(src)
                existing.add(dst)
                log.info("renamed %s -> %s", src.rsplit("/", 1)[-1], dst.rsplit("/", 1)[-1])
        manifest.record(node, {**manifest.result(node.id), "path": node.outputs[0]})
    manifest.flush(force=True)


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


def _outputs(
    store: Store, manifest: Manifest, plan: Plan, failed: dict[str, str]
) -> dict[str, dict[str, Any]]:
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
        config.model_dump(exclude={"quiet", "dashboard"}),
        languages,
        intro.digest if intro else None,
    )


class _LogCapture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def _write_log(store: Store, episode: str, script: Script, lines: list[str]) -> None:
    stamp = dt.datetime.now().strftime("%Y%m%d_%H%M%S")
    key = f"{episode}/logs/{safe_name(script.project_title)}_{stamp}.log"
    try:
        store.write_text(key, "\n".join(lines) + "\n")
    except (OSError, StoreError):
        log.warning("could not write the run log to %s", store.url(key))


def _print_summary(console: Console, report: RunReport, plan: Plan) -> None:
    rows = []
    for lang in plan.languages:
        name = plan.video_names[lang]
        info = report.outputs.get(name)
        if lang in report.failed or "all" in report.failed:
            rows.append(
                {
                    "language": lang,
                    "file": name,
                    "status": f"FAILED: {report.failed.get(lang) or report.failed['all']}",
                }
            )
        elif info:
            rows.append(
                {
                    "language": lang,
                    "file": name,
                    "duration": _clock(info.get("duration") or 0),
                    "size": f"{info['size'] / 1e6:.1f} MB",
                    "status": "ok",
                }
            )
    console.print(summary_table(rows))
    console.print(
        f"{report.episode}: {report.built} steps run, {report.cached} cached, {report.seconds:.1f} s",
        highlight=False,
    )


def _clock(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}:{secs:02d}"
