"""The output format of one video, and the one set of rules each of its settings must meet.

`zray.config.VideoConfig` calls the `check_*` functions here for its fields, so the config accepts
exactly what the encoder accepts and says why in the same words. Stdlib only: reading a config
never loads PyAV.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeGuard

from zray.errors import ZrayError
from zray.media.constants import SAMPLE_RATE


class VideoError(ZrayError, ValueError):
    """A bad setting, unreadable input or mismatched segment; the message names it."""


@dataclass(frozen=True)
class X264Preset:
    name: str
    x264_preset: str
    crf: int


PRESETS: dict[str, X264Preset] = {
    "fast": X264Preset(name="fast", x264_preset="ultrafast", crf=23),
    "final": X264Preset(name="final", x264_preset="medium", crf=18),
}

AAC_SAMPLE_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200, 96000)
AUDIO_BIT_RATE = 192_000
MAX_FPS = 120
# Frame rates people pick; the error for a bad fps suggests those that fit the sample rate.
_COMMON_FPS = (24, 25, 30, 48, 50, 60)


def is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _or_list(values: list[str]) -> str:
    return values[0] if len(values) == 1 else ", ".join(values[:-1]) + " or " + values[-1]


def check_frame_size(name: str, value: object) -> int:
    """A width or height: yuv420p stores chroma at half size, so it must be even."""
    if not is_int(value) or value <= 0 or value % 2:
        raise VideoError(
            f"{name} must be a positive even number of pixels (yuv420p halves it; "
            f"multiples of 16 are best), got {value!r}"
        )
    return value


def check_fps(value: object, *, sample_rate: int = SAMPLE_RATE) -> int:
    """A whole frame rate that divides the sample rate, so every frame is a whole number of samples
    and scene audio pads to whole frames with integer arithmetic (no drift)."""
    fits = [str(fps) for fps in _COMMON_FPS if sample_rate % fps == 0] or ["24"]
    if not is_int(value) or not 0 < value <= MAX_FPS:
        raise VideoError(
            f"fps must be a whole number of frames per second from 1 to {MAX_FPS}, got {value!r}; "
            f"use {_or_list(fits)}"
        )
    if sample_rate % value:
        raise VideoError(
            f"fps {value} does not divide {sample_rate} (a frame must be a whole number of samples); "
            f"use {_or_list(fits)}"
        )
    return value


def check_preset(value: object) -> str:
    if not isinstance(value, str) or value not in PRESETS:
        raise VideoError(f"preset {value!r} is unknown; choose one of {_or_list(sorted(PRESETS))}")
    return value


def check_gop(value: object) -> int:
    # A GOP of at least 3 lets a scene avoid ending on a lone IDR picture (see mux._packet_order).
    if not is_int(value) or value < 3:
        raise VideoError(
            f"gop must be a whole number of frames, at least 3 (a scene must never end on a lone "
            f"keyframe), got {value!r}; 2 seconds of frames (48 at 24 fps) is the usual choice"
        )
    return value


def check_keep_metadata(value: object) -> bool:
    if not isinstance(value, bool):
        raise VideoError(f"keep_metadata must be true or false, got {value!r}")
    return value


def check_sample_rate(value: object) -> int:
    if not is_int(value) or value not in AAC_SAMPLE_RATES:
        raise VideoError(
            f"sample_rate {value!r} is not an AAC sample rate; use one of {AAC_SAMPLE_RATES} "
            f"({SAMPLE_RATE} is the project rate)"
        )
    return value


def check_threads(threads: object) -> int:
    if not is_int(threads) or threads < 0:
        raise VideoError(f"threads must be 0 (one per core) or a positive number, got {threads!r}")
    return threads


@dataclass(frozen=True)
class VideoSettings:
    """Output format shared by every segment of one video and by its assembly.

    `gop` is the still GOP length L, the keyframe interval: 48 frames (2 s at 24 fps, the most
    streaming guides advise) puts an IDR picture, which carries almost all the bytes, only every
    two seconds. x264 then looks 40 frames ahead before coding the IDR, which is what makes a
    still's encode cheap (about 0.4 s of one core at 1080p); a GOP of 40 frames or fewer is coded
    in full (24 frames: about 0.75 s, a file almost twice as large and IDRs 0.2 dB worse).
    """

    width: int = 1920
    height: int = 1072
    fps: int = 24
    preset: str = "final"
    gop: int = 48
    keep_metadata: bool = False
    sample_rate: int = SAMPLE_RATE

    def __post_init__(self) -> None:
        check_frame_size("width", self.width)
        check_frame_size("height", self.height)
        check_sample_rate(self.sample_rate)
        check_fps(self.fps, sample_rate=self.sample_rate)
        check_preset(self.preset)
        check_gop(self.gop)
        check_keep_metadata(self.keep_metadata)
