"""From config to engines: which engine serves each role and language, with which settings, checked
before any work and before Ray starts.

`choose_engines` picks (profile defaults, overridden by `engines.*`) and builds each engine's settings
with its builder in `SETTINGS_BUILDERS`, one small function per engine: engines never see `Config`.
`prepare_engines` also checks what a user can get wrong (an engine that is not one, a missing extra,
a language without a voice, a voice name that does not exist, no Google key) and computes the
identities that go into cache keys. Every problem is one `EngineSetupError` line that names the
setting responsible. The specs it returns are small, picklable and free of secrets: they travel to
Ray actors, which build their engines from them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zray.config import Config
from zray.engines.ambient import AmbientSettings
from zray.engines.base import EngineError, EngineSettings, requirement_problem
from zray.engines.espeak import EspeakSettings
from zray.engines.google_tts import GoogleTTSSettings, api_key_available
from zray.engines.kokoro import KokoroSettings
from zray.engines.kokoro import language as kokoro_language
from zray.engines.library import LibrarySettings
from zray.engines.musicgen import MusicGenSettings
from zray.engines.parallax import ParallaxSettings
from zray.engines.registry import KOKORO_LANGUAGES, PROFILES, EngineSpec, RoleEngines, engine_class
from zray.engines.storyboard import StoryboardSettings
from zray.engines.wan import DEFAULT_STEPS as WAN_STEPS
from zray.engines.wan import NATIVE_PIXELS, WanSettings
from zray.engines.zimage import TURBO_STEPS, ZImageSettings
from zray.errors import RunError

log = logging.getLogger("zray")

__all__ = [
    "SETTINGS_BUILDERS",
    "EngineChoice",
    "EngineIdentities",
    "EngineSetup",
    "EngineSetupError",
    "choose_engines",
    "prepare_engines",
    "settings_for",
    "unserved_languages",
]


class EngineSetupError(EngineError, RunError):
    """The engines config asks for cannot serve this run; the line names the setting and the fix.

    An EngineError (so a ZrayError), so callers that handle engine errors handle these too."""


# --- settings builders: one per built-in engine ---------------------------------------------------

SettingsBuilder = Callable[[Config, list[str]], EngineSettings]


def _voices(config: Config, languages: list[str]) -> dict[str, str]:
    return {lang: config.voices[lang] for lang in languages if lang in config.voices}


def _speeds(config: Config, languages: list[str]) -> dict[str, float]:
    return {lang: config.speeds[lang] for lang in languages if lang in config.speeds}


def _kokoro_languages(languages: list[str]) -> list[str]:
    """The languages Kokoro speaks: voices for the others would be refused as settings, while the
    language check says it better (which engine to pick instead)."""
    spoken = []
    for lang in languages:
        try:
            kokoro_language(lang)
        except EngineError:
            continue
        spoken.append(lang)
    return spoken


def _device(config: Config) -> str:
    return config.models.device or "auto"


def _storyboard(config: Config, languages: list[str]) -> StoryboardSettings:
    return StoryboardSettings()


def _espeak(config: Config, languages: list[str]) -> EspeakSettings:
    return EspeakSettings(voices=_voices(config, languages))


def _ambient(config: Config, languages: list[str]) -> AmbientSettings:
    return AmbientSettings()


def _zimage(config: Config, languages: list[str]) -> ZImageSettings:
    models = config.models
    return ZImageSettings(
        model=models.image,
        memory=models.image_memory,
        vae_tiling=models.vae_tiling,
        steps=models.image_steps or TURBO_STEPS,
        device=_device(config),
        dtype=models.image_dtype,
        attention=models.image_attention,
        compile=models.image_compile,
    )


def _parallax(config: Config, languages: list[str]) -> ParallaxSettings:
    return ParallaxSettings()


def _wan(config: Config, languages: list[str]) -> WanSettings:
    models = config.models
    return WanSettings(
        model=models.video,
        steps=models.video_steps or WAN_STEPS,
        max_pixels=models.video_pixels or NATIVE_PIXELS,
        memory=models.video_memory,
        device=_device(config),
        dtype=models.video_dtype,
        cache_threshold=models.video_cache,
    )


def _kokoro(config: Config, languages: list[str]) -> KokoroSettings:
    spoken = _kokoro_languages(languages)
    return KokoroSettings(
        model=config.models.kokoro,
        voices=_voices(config, spoken),
        speeds=_speeds(config, spoken),
        device=_device(config),
    )


def _google(config: Config, languages: list[str]) -> GoogleTTSSettings:
    google = config.google_tts
    return GoogleTTSSettings(
        voices={**google.voices, **_voices(config, languages)},
        endpoint=google.endpoint,
        retries=google.retries,
        timeout=google.timeout,
    )


def _musicgen(config: Config, languages: list[str]) -> MusicGenSettings:
    models = config.models
    return MusicGenSettings(
        model=models.musicgen,
        window=models.music_window,
        device=_device(config),
        dtype=models.musicgen_dtype,
        method=models.music_method,
    )


def _library(config: Config, languages: list[str]) -> LibrarySettings:
    # The folder as configured (the identity names it); resolved against this run's working
    # directory, since an actor may run in another.
    return LibrarySettings(folder=config.library.folder, base_dir=str(Path.cwd()))


SETTINGS_BUILDERS: dict[str, SettingsBuilder] = {
    "storyboard": _storyboard,
    "espeak": _espeak,
    "ambient": _ambient,
    "zimage": _zimage,
    "kokoro": _kokoro,
    "google": _google,
    "musicgen": _musicgen,
    "library": _library,
    "parallax": _parallax,
    "wan": _wan,
}


def settings_for(name: str, config: Config, languages: list[str]) -> EngineSettings | None:
    """A built-in engine's settings from config for the languages it serves; None for a custom
    `module:Class` engine, which takes its class's defaults."""
    builder = SETTINGS_BUILDERS.get(name)
    return builder(config, languages) if builder else None


# --- the choice -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class EngineChoice(RoleEngines):
    """The engine spec per role and per language, and what chose each (for messages).

    `origins` maps "image", "music", "video" and "tts:<lang>" to the setting that picked the engine.
    `video` makes the clips of scenes with motion "generate"; it is loaded, and its extras checked,
    only for an episode that has such a scene (`EngineSetup.video_identity`).
    """

    profile: str
    origins: dict[str, str] = field(default_factory=dict)

    def specs(self) -> list[EngineSpec]:
        """Each distinct spec once: image, music, then the voices in language order."""
        return list(dict.fromkeys([self.image, self.music, *self.tts.values()]))

    def languages_of(self, spec: EngineSpec) -> list[str]:
        return [lang for lang, chosen in self.tts.items() if chosen == spec]

    def describe(self) -> str:
        voices = ", ".join(f"{lang}={spec.name}" for lang, spec in self.tts.items())
        return (
            f"profile {self.profile}: images={self.image.name}, narration {voices}, music={self.music.name}"
        )


def choose_engines(config: Config, languages: list[str], *, profile: str) -> EngineChoice:
    """The engines for a run: the profile's defaults, overridden per role and language by config.

    Names are resolved and custom `module:Class` engines imported and checked against their role's
    interface; settings are built from config. Nothing is loaded.
    """
    if profile not in PROFILES:
        raise EngineSetupError(f"profile must be draft or production, not {profile!r}")
    defaults = PROFILES[profile]
    engines = config.engines
    names: dict[str, str] = {}
    origins: dict[str, str] = {}
    for lang in languages:
        if engines.tts.get(lang):
            names[lang], origins[f"tts:{lang}"] = engines.tts[lang], f"engines.tts.{lang}"
        elif engines.tts_default:
            names[lang], origins[f"tts:{lang}"] = engines.tts_default, "engines.tts_default"
        elif profile == "production" and lang not in KOKORO_LANGUAGES:
            names[lang], origins[f"tts:{lang}"] = "google", f"profile {profile}"  # Kokoro has no voice
        else:
            names[lang], origins[f"tts:{lang}"] = defaults["tts"], f"profile {profile}"
    for role in ("image", "music", "video"):
        origins[role] = f"engines.{role}" if getattr(engines, role) else f"profile {profile}"
    by_name = {
        name: _spec(name, "tts", config, [lang for lang, n in names.items() if n == name], origins)
        for name in dict.fromkeys(names.values())
    }
    return EngineChoice(
        profile=profile,
        image=_spec(engines.image or defaults["image"], "image", config, [], origins),
        music=_spec(engines.music or defaults["music"], "music", config, [], origins),
        tts={lang: by_name[name] for lang, name in names.items()},
        origins=origins,
        video=_spec(engines.video or defaults["video"], "video", config, [], origins),
    )


def _spec(name: str, role: str, config: Config, languages: list[str], origins: dict[str, str]) -> EngineSpec:
    try:
        engine_class(name, role)
        return EngineSpec(name, role, settings_for(name, config, languages))
    except EngineError as exc:
        raise EngineSetupError(f"{_origin(origins, role, name, languages)}: {exc}") from None


def _origin(origins: dict[str, str], role: str, name: str, languages: list[str] | None = None) -> str:
    """Where an engine was chosen, for the start of an error line: `engines.image = 'x:Y'`, or
    `profile production's image engine zimage`."""
    if role == "tts":
        lang = (languages or [""])[0]
        where = origins.get(f"tts:{lang}", "engines.tts_default")
        what = f"{', '.join(languages or [])} voice engine"
    else:
        where, what = origins.get(role, f"engines.{role}"), f"{role} engine"
    if where.startswith(("engines.", "google_tts.")):
        return f"{where} = {name!r}"
    return f"{where}'s {what} {name}"


# --- the checked setup ----------------------------------------------------------------------------


@dataclass(frozen=True)
class EngineIdentities:
    """What goes into cache keys: per role, per language (`identity_for`), and per engine name."""

    image: dict[str, Any]
    music: dict[str, Any]
    tts: dict[str, dict[str, Any]]
    engines: dict[str, dict[str, Any]]

    def records(self) -> dict[str, dict[str, Any]]:
        """The run record's shape: engine name -> identity, and "tts:<lang>" -> that language's."""
        return {**self.engines, **{f"tts:{lang}": identity for lang, identity in self.tts.items()}}


@dataclass(frozen=True)
class EngineSetup(EngineChoice):
    """A checked choice with its identities: every language has a voice, every voice exists."""

    identities: EngineIdentities = field(default_factory=lambda: EngineIdentities({}, {}, {}, {}))

    def describe(self) -> str:
        def named(spec: EngineSpec, identity: dict[str, Any]) -> str:
            details = [str(identity[k]) for k in ("model", "dtype") if identity.get(k)]
            return f"{spec.name} ({', '.join(details)})" if details else spec.name

        voices = ", ".join(
            f"{lang}={named(spec, self.identities.tts.get(lang, {}))}" for lang, spec in self.tts.items()
        )
        return (
            f"profile {self.profile}: images={named(self.image, self.identities.image)}, "
            f"narration {voices}, music={named(self.music, self.identities.music)}"
        )

    def check_music_file(self, file: str | None) -> None:
        """One line when a script's `music_file` cannot be played by the chosen music engine."""
        if file is None:
            return
        cls = self.music.engine_class
        if not getattr(cls, "accepts_file", False):
            raise EngineSetupError(
                f"music_file {file!r}: the {self.music.name} music engine ({self.origins.get('music', 'config')}) "
                'makes its own music and cannot play a file; set engines.music = "library" with the track '
                "in library.folder, or remove music_file from the script"
            )
        self.music_identity(prompt="", file=file)

    def video_identity(self, *, check_extras: bool = True) -> dict[str, Any]:
        """The video engine's identity, for an episode with generated clips: one line naming the
        setting when its extras are missing (`check_extras`: on this machine) or it cannot be built."""
        spec = self.video
        if spec is None:
            raise EngineSetupError("no video engine was chosen; set engines.video")
        where = _origin(self.origins, "video", spec.name)
        problem = requirement_problem(spec.engine_class) if check_extras else None
        if problem:
            raise EngineSetupError(f"{where}: {problem}")
        try:
            return dict(spec.create().identity())
        except EngineError as exc:
            raise EngineSetupError(f"{where}: {exc}") from None

    def music_identity(self, *, prompt: str, file: str | None = None) -> dict[str, Any]:
        """What decides the bed for this prompt and `music_file` (the music engine's `identity_for`)."""
        try:
            return dict(self.music.create().identity_for(prompt, file=file))
        except EngineError as exc:
            where = f"music_file {file!r}" if file else _origin(self.origins, "music", self.music.name)
            raise EngineSetupError(f"{where}: {exc}") from None


def prepare_engines(languages: list[str], config: Config, profile: str) -> EngineSetup:
    """Choose the engines and check, before any work, that they can serve this run.

    Checked in order, each failure one line naming its setting: engine names and custom classes;
    the extras their models need (on this machine; skipped when joining a cluster with `address`,
    whose workers may differ); Google Cloud TTS's key (else `google_tts.fallback` narrates those
    languages, with a warning); that each voice engine speaks each of its languages and that the
    voice configured for it exists. Then the identities are computed, from settings alone.
    """
    choice = _google_key_fallback(choose_engines(config, languages, profile=profile), config)
    if not config.address:
        for spec in choice.specs():
            problem = requirement_problem(spec.engine_class)
            if problem:
                raise EngineSetupError(f"{_spec_origin(choice, spec)}: {problem}")
    engines: dict[EngineSpec, Any] = {}
    for spec in choice.specs():
        try:
            engines[spec] = spec.create()
        except EngineError as exc:
            raise EngineSetupError(f"{_spec_origin(choice, spec)}: {exc}") from None
    for lang, spec in choice.tts.items():
        _check_voice(engines[spec], spec, lang, choice, config)
    by_engine: dict[str, dict[str, Any]] = {}
    by_language: dict[str, dict[str, Any]] = {}
    for spec, engine in engines.items():
        try:
            by_engine[spec.name] = engine.identity()
            for lang in choice.languages_of(spec):
                by_language[lang] = engine.identity_for(lang)
        except EngineError as exc:
            raise EngineSetupError(f"{_spec_origin(choice, spec)}: {exc}") from None
    identities = EngineIdentities(
        image=by_engine[choice.image.name],
        music=by_engine[choice.music.name],
        tts={lang: by_language[lang] for lang in choice.tts},
        engines=by_engine,
    )
    return EngineSetup(
        profile=choice.profile,
        image=choice.image,
        music=choice.music,
        tts=choice.tts,
        origins=choice.origins,
        video=choice.video,
        identities=identities,
    )


def unserved_languages(languages: list[str], config: Config, profile: str) -> dict[str, str]:
    """Languages no engine can serve, each with its one-line reason (a batch can fail just the
    episodes that need them); empty when every language is served."""
    unserved: dict[str, str] = {}
    for lang in languages:
        try:
            prepare_engines([lang], config, profile)
        except EngineSetupError as exc:
            unserved[lang] = str(exc)
    return unserved


def _spec_origin(choice: EngineChoice, spec: EngineSpec) -> str:
    return _origin(choice.origins, spec.role, spec.name, choice.languages_of(spec))


def _check_voice(engine: Any, spec: EngineSpec, lang: str, choice: EngineChoice, config: Config) -> None:
    try:
        supported = engine.supports(lang)
    except EngineError as exc:
        raise EngineSetupError(f"{_origin(choice.origins, 'tts', spec.name, [lang])}: {exc}") from None
    if not supported:
        raise EngineSetupError(
            f"{_origin(choice.origins, 'tts', spec.name, [lang])}: the {spec.name} engine has no voice "
            f"for language {lang!r}; set engines.tts.{lang} to another engine or run with --lang to skip it"
        )
    try:
        engine.check_voice(lang)
    except EngineError as exc:
        if lang in config.voices:
            where = f"voices.{lang} = {config.voices[lang]!r}"
        elif spec.name == "google" and lang in config.google_tts.voices:
            where = f"google_tts.voices.{lang} = {config.google_tts.voices[lang]!r}"
        else:
            where = f"voices.{lang} (unset: the {spec.name} engine's default voice)"
        raise EngineSetupError(f"{where}: {exc}") from None


def _google_key_fallback(choice: EngineChoice, config: Config) -> EngineChoice:
    """Google Cloud TTS without GOOGLE_API_KEY: say so once, now, and use the fallback (or refuse)."""
    google = [lang for lang, spec in choice.tts.items() if spec.name == "google"]
    if not google or api_key_available():
        return choice
    fallback = config.google_tts.fallback
    if not fallback:
        raise EngineSetupError(
            f"GOOGLE_API_KEY is not set (environment or .env) and Google Cloud TTS voices {', '.join(google)}; "
            'set it, or set google_tts.fallback = "espeak"'
        )
    try:
        engine_class(fallback, "tts")
    except EngineError as exc:
        raise EngineSetupError(f"google_tts.fallback = {fallback!r}: {exc}") from None
    log.warning(
        "GOOGLE_API_KEY is not set: narrating %s with %s instead of Google Cloud TTS",
        ", ".join(google),
        fallback,
    )
    engines = config.engines.model_copy(
        update={"tts": {**config.engines.tts, **dict.fromkeys(google, fallback)}}
    )
    rechosen = choose_engines(
        config.model_copy(update={"engines": engines}), list(choice.tts), profile=choice.profile
    )
    origins = {**rechosen.origins, **{f"tts:{lang}": "google_tts.fallback" for lang in google}}
    return EngineChoice(
        profile=rechosen.profile,
        image=rechosen.image,
        music=rechosen.music,
        tts=rechosen.tts,
        origins=origins,
        video=rechosen.video,
    )
