"""Which engines a run uses, and what they put into cache keys (until engine setup moves to
`zray.pipeline.engine_setup`)."""

from __future__ import annotations

import logging
import os
from typing import Any

from zray.config import Config
from zray.engines.base import EngineError
from zray.engines.registry import EngineChoice, choose_engines
from zray.pipeline.plan import EngineIdentities
from zray.pipeline.prepare import RunError

log = logging.getLogger("zray")


class EngineSetupError(RunError):
    """No engine can serve what the run asks for."""


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
        raise EngineSetupError(str(exc)) from None
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
        raise EngineSetupError(
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


def cluster_gpus(config: Config) -> float | None:
    """GPUs for --profile auto: the cluster's when joining one, else this machine's."""
    if config.profile != "auto" or not config.address:
        return None
    import ray

    from zray.actors.cluster import connect

    connect(config)
    return float(ray.cluster_resources().get("GPU", 0))


def plan_identities(
    choice: EngineChoice, identities: dict[str, dict[str, Any]], languages: list[str]
) -> EngineIdentities:
    return EngineIdentities(
        image=identities[choice.image.name],
        music=identities[choice.music.name],
        speech={
            lang: identities.get(f"tts:{lang}") or identities[choice.tts[lang].name]
            for lang in languages
            if lang in choice.tts
        },
    )


def unserved_languages(languages: list[str], config: Config, profile: str) -> dict[str, str]:
    """Languages no engine serves, each with its reason: in a batch, the episodes that need one
    fail alone instead of stopping the batch."""
    unserved: dict[str, str] = {}
    for lang in languages:
        try:
            prepare_engines([lang], config, profile)
        except EngineSetupError as exc:
            unserved[lang] = str(exc)
    return unserved
