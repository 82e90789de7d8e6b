"""Engine names, the profiles that pick them, and picklable specs that build them inside actors."""

from __future__ import annotations

import importlib
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

    def create(self) -> Any:
        if self.name not in ENGINES:
            raise EngineError(f"unknown engine {self.name!r}; known: {', '.join(sorted(ENGINES))}")
        module_name, _, class_name = ENGINES[self.name][1].partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise EngineError(
                f"engine {self.name!r} is not available ({exc}); install it with: pip install 'zray[models]'"
            ) from None
        return getattr(module, class_name)(**self.options)


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


def _spec(name: str, role: str, config: Config) -> EngineSpec:
    if name not in ENGINES:
        raise EngineError(f"unknown {role} engine {name!r}; known: {', '.join(sorted(ENGINES))}")
    if ENGINES[name][0] != role:
        raise EngineError(f"engine {name!r} makes {ENGINES[name][0]}, not {role}")
    options: dict[str, Any] = {}
    if name == "espeak" and config.voices:
        options["voices"] = dict(config.voices)
    return EngineSpec(name, options)
