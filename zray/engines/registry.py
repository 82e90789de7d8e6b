"""Engine names, the profiles that pick them, and picklable specs that build them inside actors."""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zray.config import Config
from zray.engines.base import EngineError

# name -> (role, "module:Class")
ENGINES: dict[str, tuple[str, str]] = {
    "storyboard": ("image", "zray.engines.storyboard:StoryboardImageEngine"),
    "espeak": ("tts", "zray.engines.espeak:EspeakTTSEngine"),
    "ambient": ("music", "zray.engines.ambient:AmbientMusicEngine"),
    "zimage": ("image", "zray.engines.zimage:ZImageEngine"),
    "kokoro": ("tts", "zray.engines.kokoro:KokoroTTSEngine"),
    "google": ("tts", "zray.engines.google_tts:GoogleTTSEngine"),
    "musicgen": ("music", "zray.engines.musicgen:MusicGenEngine"),
    "library": ("music", "zray.engines.library:LibraryMusicEngine"),
}

PROFILES: dict[str, dict[str, str]] = {
    "draft": {"image": "storyboard", "tts": "espeak", "music": "ambient"},
    "production": {"image": "zimage", "tts": "kokoro", "music": "musicgen"},
}


@dataclass(frozen=True)
class EngineSpec:
    """What an actor needs to build an engine: small, picklable, free of secrets."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)

    def __hash__(self) -> int:  # options is a dict: hash its canonical JSON
        return hash((self.name, json.dumps(self.options, sort_keys=True, default=str)))

    def create(self) -> Any:
        module_name, _, class_name = _target(self.name).partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            if ":" in self.name:
                raise EngineError(f"custom engine {self.name!r} cannot be imported: {exc}") from None
            raise EngineError(
                f"engine {self.name!r} is not available ({exc}); install it with: pip install 'zray[models]'"
            ) from None
        factory = getattr(module, class_name, None)
        if factory is None:
            raise EngineError(f"engine {self.name!r}: {module_name} has no {class_name}")
        return factory(**self.options)


@dataclass(frozen=True)
class EngineChoice:
    profile: str
    image: EngineSpec
    music: EngineSpec
    tts: dict[str, EngineSpec]  # per language

    def describe(self) -> str:
        voices = ", ".join(f"{lang}={spec.name}" for lang, spec in self.tts.items())
        return (
            f"profile {self.profile}: images={self.image.name}, narration {voices}, music={self.music.name}"
        )


# Kokoro's languages (zray codes); production narrates the rest with Google Cloud TTS.
KOKORO_LANGUAGES = frozenset({"en", "en-us", "en-gb", "es", "fr", "hi", "it", "pt", "pt-br", "ja", "zh"})
# Engines that want a GPU when the cluster has one.
GPU_ENGINES = frozenset({"zimage", "kokoro", "musicgen"})


def choose_engines(config: Config, languages: list[str], *, profile: str) -> EngineChoice:
    """The engines for a run: the profile's defaults, overridden per role and language by config."""
    if profile not in PROFILES:
        raise EngineError(f"profile must be draft or production, not {profile!r}")
    defaults = PROFILES[profile]
    engines = config.engines

    def default_tts(lang: str) -> str:
        if profile == "production" and lang not in KOKORO_LANGUAGES:
            return "google"
        return defaults["tts"]

    names = {lang: engines.tts.get(lang) or engines.tts_default or default_tts(lang) for lang in languages}
    tts = {
        lang: _spec(name, "tts", config, [other for other, n in names.items() if n == name])
        for lang, name in names.items()
    }
    image = _spec(engines.image or defaults["image"], "image", config, [])
    music = _spec(engines.music or defaults["music"], "music", config, [])
    return EngineChoice(profile=profile, image=image, music=music, tts=tts)


def engine_options(name: str, config: Config, languages: list[str]) -> dict[str, Any]:
    """Constructor options for a built-in engine, from config. Never secrets: keys are read from the
    environment by the engine itself, so they are not pickled to actors."""
    models = config.models
    voices = {lang: config.voices[lang] for lang in languages if lang in config.voices}
    speeds = {lang: config.speeds[lang] for lang in languages if lang in config.speeds}
    if name == "espeak":
        return {"voices": voices} if voices else {}
    if name == "zimage":
        return {
            "model": models.image,
            "memory": models.image_memory,
            "vae_tiling": models.vae_tiling,
            "steps": models.image_steps,
            "device": models.device,
        }
    if name == "kokoro":
        return {"model": models.kokoro, "voices": voices, "speeds": speeds, "device": models.device}
    if name == "google":
        google = config.google_tts
        return {
            "voices": {**google.voices, **voices},
            "endpoint": google.endpoint,
            "retries": google.retries,
            "timeout": google.timeout,
        }
    if name == "musicgen":
        return {"model": models.musicgen, "window": models.music_window, "device": models.device}
    if name == "library":
        # Absolute: the actor that reads it may run in another working directory.
        return {"folder": str(Path(config.library.folder).resolve())}
    return {}


def _target(name: str) -> str:
    """`module:Class` for an engine name; a name holding a colon is a custom engine's import path."""
    if ":" in name:
        return name
    if name not in ENGINES:
        raise EngineError(f"unknown engine {name!r}; known: {', '.join(sorted(ENGINES))}, or module:Class")
    return ENGINES[name][1]


def _spec(name: str, role: str, config: Config, languages: list[str]) -> EngineSpec:
    _target(name)
    if name in ENGINES and ENGINES[name][0] != role:
        raise EngineError(f"engine {name!r} makes {ENGINES[name][0]}, not {role}")
    return EngineSpec(name, engine_options(name, config, languages))
