"""Engine names, the profiles that pick them, and picklable specs that build engines inside actors.

The built-in engine classes are the single source of truth: each declares its name, role and whether
it uses a GPU, and `ENGINES` and `GPU_ENGINES` are read off them. An engine may also be named as
`module:Class` (tests and benchmarks do, for their own engines): `engine_class` imports it and holds
it to the interface of its role before anything uses it. Config is never read here: the pipeline's
engine setup (`zray.pipeline.engine_setup`) turns config into specs.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from zray.engines.ambient import AmbientMusicEngine
from zray.engines.base import EngineError, EngineSettings, check_engine_class
from zray.engines.espeak import EspeakTTSEngine
from zray.engines.google_tts import GoogleTTSEngine
from zray.engines.kokoro import ALIASES, LANG_CODES, KokoroTTSEngine
from zray.engines.library import LibraryMusicEngine
from zray.engines.musicgen import MusicGenEngine
from zray.engines.parallax import ParallaxVideoEngine
from zray.engines.storyboard import StoryboardImageEngine
from zray.engines.wan import WanVideoEngine
from zray.engines.zimage import ZImageEngine

BUILTIN: dict[str, type] = {
    cls.name: cls
    for cls in (
        StoryboardImageEngine,
        EspeakTTSEngine,
        AmbientMusicEngine,
        ZImageEngine,
        KokoroTTSEngine,
        GoogleTTSEngine,
        MusicGenEngine,
        LibraryMusicEngine,
        ParallaxVideoEngine,
        WanVideoEngine,
    )
}
# name -> (role, "module:Class")
ENGINES: dict[str, tuple[str, str]] = {
    name: (cls.role, f"{cls.__module__}:{cls.__qualname__}") for name, cls in BUILTIN.items()
}
PROFILES: dict[str, dict[str, str]] = {
    "draft": {"image": "storyboard", "tts": "espeak", "music": "ambient", "video": "parallax"},
    "production": {"image": "zimage", "tts": "kokoro", "music": "musicgen", "video": "wan"},
}
# Built-in engines that want a GPU when the cluster has one (a custom engine says so itself).
GPU_ENGINES = frozenset(name for name, cls in BUILTIN.items() if cls.uses_gpu)
# Kokoro's languages (zray codes); production narrates the rest with Google Cloud TTS.
KOKORO_LANGUAGES = frozenset(LANG_CODES) | frozenset(ALIASES)


def engine_class(name: str, role: str) -> type:
    """The class for a built-in engine name or a `module:Class` path, checked to be a `role` engine.

    EngineError in one line otherwise: an unknown name (with the known ones), a module that cannot
    be imported, or a class that is not an engine of that role (saying what it lacks).
    """
    if ":" not in name:
        cls = BUILTIN.get(name)
        if cls is None:
            raise EngineError(
                f"unknown engine {name!r}; known: {', '.join(sorted(BUILTIN))}, or module:Class"
            )
        if cls.role != role:
            raise EngineError(f"engine {name!r} makes {cls.role}, not {role}")
        return cls
    module_name, _, class_name = name.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # an import runs the module: anything may come out of it
        raise EngineError(
            f"engine {name!r}: cannot import {module_name} ({type(exc).__name__}: {exc})"
        ) from None
    found = getattr(module, class_name, None) if class_name else None
    if found is None:
        raise EngineError(
            f"engine {name!r}: {module_name} has no {class_name or 'class named after the colon'}"
        )
    problems = check_engine_class(found, role)
    if problems:
        article = "an" if role[0] in "aeiou" else "a"
        raise EngineError(f"engine {name!r} is not {article} {role} engine: {_listing(problems)}")
    return found


def _listing(problems: list[str]) -> str:
    if problems[0].startswith("it is "):
        return problems[0]
    return f"it lacks {'; '.join(problems)}"


@dataclass(frozen=True)
class EngineSpec:
    """What an actor needs to build an engine: small, picklable, free of secrets.

    `settings` is the engine's own settings object; None gives the class's defaults (a custom
    `module:Class` engine takes none from config).
    """

    name: str
    role: str
    settings: EngineSettings | None = None

    def __hash__(self) -> int:  # settings hold dicts: hash their canonical JSON
        return hash((self.name, self.role, self.settings.canonical() if self.settings else None))

    @property
    def engine_class(self) -> type:
        return engine_class(self.name, self.role)

    @property
    def uses_gpu(self) -> bool:
        return bool(self.engine_class.uses_gpu)

    @property
    def options(self) -> dict[str, Any]:
        """The settings as a dict (what specs carried before settings objects)."""
        return self.settings.to_json() if self.settings else {}

    def create(self) -> Any:
        cls = self.engine_class
        return cls.from_settings(self.settings if self.settings is not None else cls.settings_type())


@dataclass(frozen=True, kw_only=True)
class RoleEngines:
    """The engine spec per model role (the voices per language): what the actors are built from.
    `video` is None where no scene generates its clip."""

    image: EngineSpec
    music: EngineSpec
    tts: dict[str, EngineSpec]
    video: EngineSpec | None = None
