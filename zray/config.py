"""Run configuration: defaults, then a TOML file, then `ZRAY_*` environment variables, then flags.

Every key is documented in the README's configuration table. Nested keys use `__` in the
environment: `ZRAY_VIDEO__WIDTH=1280`, `ZRAY_VOICES__ES=es`.
"""

from __future__ import annotations

import contextlib
import os
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from zray.errors import ZrayError
from zray.input_files import InputFileError, json_depth, read_input
from zray.media import levels
from zray.media.caption_box import SHORTS_BOX, CaptionBox, parse_colour
from zray.media.constants import SAMPLE_RATE
from zray.media.video import settings as video_rules
from zray.media.video.settings import VideoSettings
from zray.publish.settings import WebConfig, YouTubeConfig
from zray.validation_words import plain_message

Profile = Literal["auto", "draft", "production"]
ModelDtype = Literal["auto", "bfloat16", "float16", "float32"]
# A crossfade longer than this would eat most of a scene's pause and read as a slow dissolve.
MAX_TRANSITION_SECONDS = 5.0


class ConfigError(ZrayError, ValueError):
    """A setting with a bad value; the message names the setting and where it came from."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _shared_rule(check: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run one of media's rules for a setting and report its message as the setting's error."""
    try:
        return check(*args, **kwargs)
    except ValueError as error:
        # A custom error keeps pydantic from prefixing "Value error, " to the rule's own sentence.
        raise PydanticCustomError("media_setting", "{reason}", {"reason": str(error)}) from None


class VideoConfig(Strict):
    """The output format; each field is checked by the rule `VideoSettings` itself applies
    (zray.media.video.settings), so what the config accepts, the encoder accepts."""

    width: int = 1920
    height: int = 1072
    fps: int = 24
    preset: Literal["fast", "final"] = "final"
    gop: int = 48
    keep_metadata: bool = False
    # How scenes move and change (see zray.media.moves and zray.media.shots); "auto" is decided by
    # the profile: gentle motion and 0.5 s crossfades in production, a still slideshow in draft.
    # "generate": every scene's picture becomes the first frame of a clip from the video engine.
    motion: Literal["auto", "none", "gentle", "generate"] = "auto"
    transition: float | Literal["auto"] = "auto"  # seconds of crossfade into each scene; 0 = a cut
    fit: Literal["contain", "cover"] = "cover"  # how a studio clip fills the frame
    clip_fill: Literal["hold", "loop"] = "hold"  # a clip shorter than its scene: hold its last frame, or loop

    @field_validator("transition", mode="before")
    @classmethod
    def _transition(cls, value: object) -> object:
        if value == "auto":
            return value
        seconds = value
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                seconds = float(value)
        if isinstance(seconds, bool) or not (
            isinstance(seconds, int | float) and 0 <= seconds <= MAX_TRANSITION_SECONDS
        ):
            raise PydanticCustomError(
                "media_setting",
                "transition must be auto or seconds from 0 (a hard cut) to {most}, got {value}; 0.5 is usual",
                {"most": MAX_TRANSITION_SECONDS, "value": value},
            )
        return float(seconds)

    @field_validator("width", "height")
    @classmethod
    def _frame_size(cls, value: int, info: ValidationInfo) -> int:
        _shared_rule(video_rules.check_frame_size, info.field_name, value)
        # Stricter than the encoder: diffusion models generate images in multiples of 16 pixels.
        if value % 16:
            raise PydanticCustomError(
                "media_setting",
                "{name} {value} is not a multiple of 16, which image models need (try {lower})",
                {"name": info.field_name, "value": value, "lower": value - value % 16},
            )
        return value

    @field_validator("fps")
    @classmethod
    def _fps(cls, value: int) -> int:
        return _shared_rule(video_rules.check_fps, value, sample_rate=SAMPLE_RATE)

    @field_validator("preset", mode="before")
    @classmethod
    def _preset(cls, value: object) -> object:
        return _shared_rule(video_rules.check_preset, value)

    @field_validator("gop")
    @classmethod
    def _gop(cls, value: int) -> int:
        return _shared_rule(video_rules.check_gop, value)

    def to_settings(self) -> VideoSettings:
        """The media type the encoder takes, at the project sample rate."""
        fields = ("width", "height", "fps", "preset", "gop", "keep_metadata")
        return VideoSettings(**self.model_dump(include=set(fields)), sample_rate=SAMPLE_RATE)


class AudioConfig(Strict):
    music_level: float = Field(0.08, ge=0, le=1)
    duck: bool = False
    # Checked by the rules the mastering code applies (zray.media.levels).
    target_lufs: float = -14.0
    peak_dbfs: float = -1.0
    music_seconds: float = Field(60.0, gt=0, le=600)
    # Pacing, in seconds (each rounded up to whole frames): silence after each scene's narration,
    # before the first scene's, and after the last one's while the picture holds and the music fades.
    scene_gap: float = Field(0.5, ge=0, le=10)
    lead: float = Field(0.3, ge=0, le=10)
    tail: float = Field(2.0, ge=0, le=30)
    music_fade_in: float = Field(0.5, ge=0, le=10)

    @field_validator("target_lufs")
    @classmethod
    def _target_lufs(cls, value: float) -> float:
        return _shared_rule(levels.check_target_lufs, value)

    @field_validator("peak_dbfs")
    @classmethod
    def _peak_dbfs(cls, value: float) -> float:
        return _shared_rule(levels.check_peak_dbfs, value)


class CaptionsConfig(Strict):
    """Burned-in captions (zray.media.captions): drawn into the picture, the spoken word highlighted."""

    # None: on the Shorts only; true: on the long video too; false: nowhere.
    burn: bool | None = None
    highlight: str = "#ffd60a"
    font: str = ""  # a TrueType/OpenType file; empty: the bundled Roboto Black

    @field_validator("highlight")
    @classmethod
    def _highlight(cls, value: str) -> str:
        _shared_rule(parse_colour, value, setting="captions.highlight")
        return value

    def font_path(self) -> str:
        from zray.media.thumbnail import FONT_PATH  # Pillow: only when captions are drawn

        return self.font or os.fspath(FONT_PATH)

    def on_long_video(self) -> bool:
        return self.burn is True

    def on_shorts(self) -> bool:
        return self.burn is not False


class ShortsConfig(Strict):
    """Vertical Shorts made from each language's chapters (zray.pipeline.shorts)."""

    enabled: bool = False
    max_seconds: float = Field(60.0, gt=0, le=180)  # YouTube classifies vertical videos up to 3 min as Shorts
    min_seconds: float = Field(10.0, ge=0)
    width: int = 1080
    height: int = 1920
    images: Literal["pan", "generate"] = "pan"
    intro: Path | None = None  # a clip before each Short; none by default
    # Where captions go, as fractions of the frame: left, top, right, bottom (clear of the player's
    # buttons on the right and of the title at the bottom).
    caption_box: tuple[float, float, float, float] = (
        SHORTS_BOX.left,
        SHORTS_BOX.top,
        SHORTS_BOX.right,
        SHORTS_BOX.bottom,
    )

    @field_validator("width", "height")
    @classmethod
    def _frame_size(cls, value: int, info: ValidationInfo) -> int:
        return _shared_rule(video_rules.check_frame_size, info.field_name, value)

    @field_validator("caption_box")
    @classmethod
    def _caption_box(cls, value: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        _shared_rule(lambda box: CaptionBox(*box), value)
        return value

    @field_validator("min_seconds")
    @classmethod
    def _min_below_max(cls, value: float, info: ValidationInfo) -> float:
        most = info.data.get("max_seconds")
        if most is not None and value > most:
            raise PydanticCustomError(
                "media_setting",
                "min_seconds {value} is more than max_seconds {most}",
                {"value": value, "most": most},
            )
        return value

    def box(self) -> CaptionBox:
        return CaptionBox(*self.caption_box)


class ActorConfig(Strict):
    num_cpus: float = Field(0.25, ge=0)
    # None: a share of one GPU for GPU engines when the cluster has GPUs, else none.
    num_gpus: float | None = Field(None, ge=0)
    max_restarts: int = Field(3, ge=-1)
    max_task_retries: int = Field(3, ge=-1)
    # None: one actor per GPU for a role with a GPU share (see zray.actors.placement), else one actor.
    count: int | None = Field(None, ge=1)


class ActorsConfig(Strict):
    image: ActorConfig = ActorConfig()
    tts: ActorConfig = ActorConfig()
    music: ActorConfig = ActorConfig()
    video: ActorConfig = ActorConfig()


class EnginesConfig(Strict):
    """Engine names per role; empty means the profile's default."""

    image: str = ""
    music: str = ""
    video: str = ""  # scenes with motion "generate": parallax (draft) or wan (production)
    tts_default: str = ""
    tts: dict[str, str] = Field(default_factory=dict)


class ModelsConfig(Strict):
    """Production model ids (Hugging Face ids or local directories) and how to hold them."""

    image: str = "Tongyi-MAI/Z-Image-Turbo"
    image_memory: Literal["resident", "group_offload", "model_offload", "sequential_offload"] = "resident"
    vae_tiling: bool = False
    image_steps: int | None = Field(None, gt=0)  # None: 8 transformer forwards, the Turbo setting
    # "auto": float32 when device is "cpu", else bfloat16; decided from config, never from the host.
    image_dtype: ModelDtype = "auto"
    kokoro: str = "hexgrad/Kokoro-82M"
    musicgen: str = "facebook/musicgen-small"
    music_window: float = Field(30.0, gt=0, le=30.0)  # MusicGen writes about 30 s at a time
    musicgen_dtype: ModelDtype = "auto"  # as image_dtype (EnCodec always runs in float32)
    # auto: MusicGen's decoder on a static cache replayed as a CUDA graph on a GPU (11.6x faster per
    # step on an H200, the same tokens), transformers' generate on a CPU.
    music_method: Literal["auto", "generate", "graphs"] = "auto"
    # diffusers' attention backend for Z-Image ("default" keeps torch's choice, which measured fastest).
    image_attention: str = "default"
    # Regional torch.compile of Z-Image's transformer: 2.01 s instead of 2.79 s an image on an H200
    # once compiled, but the first image takes 23 s: worth it from about 30 images (a batch).
    image_compile: bool = False
    # Image-to-video for scenes with motion "generate" (Apache-2.0); any diffusers Wan image-to-video
    # checkpoint, by id or local folder.
    video: str = "Wan-AI/Wan2.2-TI2V-5B-Diffusers"
    video_steps: int | None = Field(None, gt=0)  # None: 50 UniPC steps, Wan2.2's default
    # A clip's length: 4 * round(seconds * 24 / 4) + 1 frames at 24 fps (121 for 5 s); a longer scene
    # goes on from the clip's last frame with the gentle move.
    video_seconds: float = Field(5.0, gt=0, le=20)
    # Pixels a clip is made at (the frame's shape scaled to about this many, then fitted to the
    # frame); None: the model's native 1280x704. Wan2.1's 480p checkpoints want 832 * 480.
    video_pixels: int | None = Field(None, ge=1024)
    video_memory: Literal["resident", "group_offload", "model_offload"] = "resident"
    video_dtype: ModelDtype = "auto"  # as image_dtype
    # diffusers' FirstBlockCache threshold for Wan's transformer (0: off); it changes pixels.
    video_cache: float = Field(0.0, ge=0, lt=1)
    device: str | None = None  # None: CUDA where the worker has it, else CPU


class GoogleTTSConfig(Strict):
    endpoint: str = "https://texttospeech.googleapis.com"
    voices: dict[str, str] = Field(default_factory=lambda: {"ca": "ca-ES-Standard-B"})
    fallback: str = "espeak"  # engine used when GOOGLE_API_KEY is missing; "" makes that an error
    retries: int = Field(5, ge=0)
    timeout: float = Field(60.0, gt=0)


class LibraryConfig(Strict):
    folder: str = "inputs/music"


class LimitsConfig(Strict):
    """Caps checked before a script is read or run."""

    narration_chars: int = Field(5_000, ge=100, le=100_000)  # one scene's narration in one language
    script_bytes: int = Field(5 * 1024 * 1024, ge=1024, le=100 * 1024 * 1024)

    def script_limits(self) -> Any:
        from zray.script import ScriptLimits

        return ScriptLimits(narration_chars=self.narration_chars, script_bytes=self.script_bytes)


class ReviewConfig(Strict):
    """The `[review]` table: whether `upload` and `publish` need an approval from `zray review`."""

    required: bool = False


class Config(Strict):
    """Everything a run can be told; see the README for each key."""

    output: str = "outputs/"
    profile: Profile = "auto"
    project: str | None = None
    address: str | None = None
    # A local output path that every node of a multi-node cluster mounts (NFS and the like).
    shared_storage: bool = False
    dashboard: bool = False
    quiet: bool = False
    # auto: this process for a few stale steps that need no GPU, else Ray.
    executor: Literal["auto", "ray", "in-process"] = "auto"
    max_in_flight: int = Field(64, ge=1)
    task_retries: int = Field(2, ge=0)
    video: VideoConfig = VideoConfig()
    audio: AudioConfig = AudioConfig()
    actors: ActorsConfig = ActorsConfig()
    engines: EnginesConfig = EnginesConfig()
    voices: dict[str, str] = Field(default_factory=dict)
    speeds: dict[str, float] = Field(default_factory=dict)
    models: ModelsConfig = ModelsConfig()
    google_tts: GoogleTTSConfig = GoogleTTSConfig()
    library: LibraryConfig = LibraryConfig()
    web: WebConfig = WebConfig()
    youtube: YouTubeConfig = YouTubeConfig()
    limits: LimitsConfig = LimitsConfig()
    captions: CaptionsConfig = CaptionsConfig()
    shorts: ShortsConfig = ShortsConfig()

    review: ReviewConfig = ReviewConfig()


def load_config(
    file: str | Path | None = None, *, flag_names: dict[str, str] | None = None, **flags: Any
) -> Config:
    """Build the config from a TOML file, the environment and flags (None flags are ignored).

    Keys of `flags` are setting paths with `__` between levels (`video__preset`); `flag_names`
    maps them to the command-line flag that set them, so an error can name it.
    """
    data: dict[str, Any] = {}
    if file is not None:
        data = _read_file(Path(file))
    file_data = json_copy(data)
    env = {k: v for k, v in os.environ.items() if k.startswith("ZRAY_")}
    given = {k: v for k, v in flags.items() if v is not None}
    # Precedence: defaults < file < environment < flags.
    merged = _deep_merge(data, _env_overrides(env, given))
    for key, value in given.items():
        *parents, leaf = key.split("__")
        node = merged
        for parent in parents:
            child = node.get(parent)
            if not isinstance(child, dict):
                child = node[parent] = {}
            node = child
        node[leaf] = value
    try:
        return Config.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(
            _describe(
                exc,
                file=str(file) if file else None,
                file_data=file_data,
                env=env,
                flags=given,
                flag_names=flag_names or {},
            )
        ) from None


def json_copy(data: dict[str, Any]) -> dict[str, Any]:
    return {k: json_copy(v) if isinstance(v, dict) else v for k, v in data.items()}


CONFIG_MAX_BYTES = 1 << 20  # a config is a few kilobytes
CONFIG_MAX_DEPTH = 16  # no setting nests more than a few levels


def _read_file(path: Path) -> dict[str, Any]:
    try:
        raw = read_input(path, limit=CONFIG_MAX_BYTES)
    except InputFileError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"{path}: the config file is not UTF-8 text (byte 0x{raw[exc.start]:02x} on line {line})"
        ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except RecursionError:
        data = None
    if data is None or json_depth(data) > CONFIG_MAX_DEPTH:
        raise ConfigError(f"{path}: nested more than {CONFIG_MAX_DEPTH} levels deep; no zray setting is")
    return data


def _env_overrides(env: dict[str, str], flags: dict[str, Any]) -> dict[str, Any]:
    """Environment values, nested by `__`, minus anything a flag sets."""
    out: dict[str, Any] = {}
    origin: dict[str, str] = {}  # dotted path -> the variable that set it, to name conflicts
    for name in sorted(env):
        path = name[len("ZRAY_") :].lower().split("__")
        if "__".join(path) in flags or not all(path):
            continue
        node = out
        for depth, part in enumerate(path[:-1]):
            child = node.get(part)
            if child is not None and not isinstance(child, dict):
                raise ConfigError(
                    f"environment variables {origin['.'.join(path[: depth + 1])]} and {name} conflict: "
                    f"{'.'.join(path[: depth + 1])} is a table of settings, not a value; unset {origin['.'.join(path[: depth + 1])]}"
                )
            node = node.setdefault(part, {})
            origin.setdefault(".".join(path[: depth + 1]), name)
        if isinstance(node.get(path[-1]), dict):
            raise ConfigError(
                f"environment variables {name} and {origin['.'.join(path)]} conflict: "
                f"{'.'.join(path)} is a table of settings, not a value; unset {name}"
            )
        node[path[-1]] = env[name]
        origin[".".join(path)] = name
    return out


def _deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _describe(
    exc: ValidationError,
    *,
    file: str | None,
    file_data: dict[str, Any],
    env: dict[str, str],
    flags: dict[str, Any],
    flag_names: dict[str, str],
) -> str:
    err = exc.errors()[0]
    loc = [str(p) for p in err["loc"]]
    dotted = ".".join(loc)
    message = "unknown setting" if err["type"] == "extra_forbidden" else _message(err)
    # A message that starts with the bad value need not be told it twice.
    named = err["type"] == "extra_forbidden" or message.startswith(repr(err.get("input")))
    # The deepest source that set this path (or a table above it) is the one to name.
    for depth in range(len(loc), 0, -1):
        key, env_name = "__".join(loc[:depth]), "ZRAY_" + "__".join(loc[:depth]).upper()
        if key in flags:
            flag = flag_names.get(key, "--" + key.replace("__", "-"))
            return f"{flag}: {message}" if named else f"{flag} {_shown(flags[key])}: {message}"
        if env_name in env:
            shown = "" if named else f"={_shown(env[env_name])}"
            return f"environment variable {env_name}{shown}: {message}"
        node: Any = file_data
        for part in loc[:depth]:
            node = node.get(part) if isinstance(node, dict) else None
        if node is not None and file:
            value = "" if named else f" = {_shown(err['input'])}"
            return f"setting {dotted}{value} ({file}): {message}"
    return f"setting {dotted} (defaults): {message}"


def _message(err: Any) -> str:
    return plain_message(err)
