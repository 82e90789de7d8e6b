"""Everything decided before Ray starts: engines, the episode's plan, and what is stale.

Everything a user can get wrong (script, config, intro, output, languages, engines) is checked
here, and a rerun with nothing to do is decided from the store alone.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zray.config import Config
from zray.engines.base import EngineError
from zray.engines.registry import EngineChoice, choose_engines
from zray.keys import safe_name
from zray.media import video
from zray.pipeline.manifest import Manifest, stale_nodes
from zray.pipeline.plan import Intro, Node, Plan, build_plan
from zray.script import Script
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
    languages: list[str], config: Config, profile: str
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
    log.info("%s: --clean removed the generated files", episode)


def _apply_renames(store: Store, manifest: Manifest, plan: Plan, existing: set[str]) -> None:
    """A changed title renames the finished video instead of rebuilding it."""
    for node, old in manifest.renamed(plan, existing):
        for src, dst in zip(old, node.outputs, strict=True):
            if src != dst:
                store.move(src, dst)
                existing.discard(src)
                existing.add(dst)
                log.info("%s: renamed %s -> %s", plan.episode, src.rsplit("/", 1)[-1], dst.rsplit("/", 1)[-1])
        manifest.record(node, {**manifest.result(node.id), "path": node.outputs[0]})
    manifest.flush(force=True)


@dataclass
class Prepared:
    """One episode, planned: its store prefix, plan, record, and the stale nodes to run."""

    request: RunRequest
    script: Script
    episode: str
    plan: Plan
    manifest: Manifest
    stale: list[Node]
    intro: Intro | None
    intro_path: Path | None
    languages: list[str] = field(default_factory=list)


def episode_prefix(script_path: Path, config: Config) -> str:
    return f"{project_name(script_path, config)}/{safe_name(script_path.stem)}"


def prepare_episode(
    request: RunRequest,
    script: Script,
    config: Config,
    store: Store,
    engines: EngineChoice,
    identities: dict[str, dict[str, Any]],
) -> Prepared:
    """Check the episode's own inputs, plan it, and find what is stale (reads only, unless --clean)."""
    languages = request.languages or script.languages
    unknown = [lang for lang in languages if lang not in script.languages]
    if unknown:
        raise RunError(
            f"--lang {', '.join(unknown)}: the script has no narration in that language "
            f"(it has {', '.join(script.languages)})"
        )
    project = project_name(request.script, config)
    episode = episode_prefix(request.script, config)
    intro_path = request.intro or find_intro(request.script, project)
    if intro_path is not None:
        _check_intro(intro_path)
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
    return Prepared(request, script, episode, plan, manifest, stale, intro, intro_path, languages)


def open_store(output: str) -> Store:
    try:
        return Store(output)
    except (ValueError, ImportError, OSError) as exc:
        raise RunError(f"--output {output}: cannot open it ({exc})") from None


def check_writable(store: Store, episode: str) -> None:
    try:
        store.check_writable(episode)
    except StoreError as exc:
        raise RunError(f"{exc}; choose another --output or fix its permissions") from None


def cluster_gpus(config: Config) -> float | None:
    """GPUs for --profile auto: the cluster's when joining one, else this machine's."""
    if config.profile != "auto" or not config.address:
        return None
    import ray

    from zray.pipeline.cluster import connect

    connect(config)
    return float(ray.cluster_resources().get("GPU", 0))
