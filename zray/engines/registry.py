"""Engine names, the profiles that pick them, and picklable specs that build them inside actors."""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass, field
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


def choose_engines(config: Config, languages: list[str], *, profile: str) -> EngineChoice:
    """The engines for a run: the profile's defaults, overridden per role and language by config."""
    if profile not in PROFILES:
        raise EngineError(f"profile must be draft or production, not {profile!r}")
    defaults = PROFILES[profile]
    engines = config.engines
    image = _spec(engines.image or defaults["image"], "image", config)
    music = _spec(engines.music or defaults["music"], "music", config)
    tts = {
        lang: _spec(engines.tts.get(lang) or engines.tts_default or defaults["tts"], "tts", config)
        for lang in languages
    }
    return EngineChoice(profile=profile, image=image, music=music, tts=tts)


def _target(name: str) -> str:
    """`module:Class` for an engine name; a name holding a colon is a custom engine's import path."""
    if ":" in name:
        return name
    if name not in ENGINES:
        raise EngineError(f"unknown engine {name!r}; known: {', '.join(sorted(ENGINES))}, or module:Class")
    return ENGINES[name][1]


def _spec(name: str, role: str, config: Config) -> EngineSpec:
    _target(name)
    if name in ENGINES and ENGINES[name][0] != role:
        raise EngineError(f"engine {name!r} makes {ENGINES[name][0]}, not {role}")
    options: dict[str, Any] = {}
    if name == "espeak" and config.voices:
        options["voices"] = dict(config.voices)
    return EngineSpec(name, options)
