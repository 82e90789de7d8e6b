"""The output format of a video, validated once: what the config accepts, the encoder accepts.

Stdlib only, so planning (which puts these settings into cache keys) never loads PyAV.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from zray.errors import InvalidInput
from zray.media.constants import SAMPLE_RATE

__all__ = ["PRESETS", "VideoError", "VideoSettings", "X264Preset", "check_fps", "check_gop", "check_size"]


class VideoError(InvalidInput, ValueError):
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
MIN_GOP = 3


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_size(name: str, value: object) -> int:
    # Diffusion models and H.264 macroblocks both want multiples of 16; yuv420p needs even sizes.
    if not _is_int(value) or value <= 0:  # type: ignore[operator]
        raise VideoError(f"{name} must be a positive whole number of pixels, got {value!r}")
    if value % 16:  # type: ignore[operator]
        lower = value - value % 16  # type: ignore[operator]
        raise VideoError(f"{name} {value} is not a multiple of 16 (try {lower or 16})")
    return value  # type: ignore[return-value]


def check_fps(value: object, *, sample_rate: int = SAMPLE_RATE) -> int:
    if not _is_int(value) or not 0 < value <= 120:  # type: ignore[operator]
        raise VideoError(f"fps must be a whole number from 1 to 120, got {value!r}")
    if sample_rate % value:  # type: ignore[operator]
        good = ", ".join(str(f) for f in (24, 25, 30, 48, 50, 60) if sample_rate % f == 0)
        raise VideoError(
            f"fps {value} does not divide {sample_rate} (a frame must be a whole number of audio samples); "
            f"use {good}"
        )
    return value  # type: ignore[return-value]


def check_gop(value: object) -> int:
    # A GOP of at least 3 lets a scene avoid ending on a lone IDR picture (see the muxer's packet order).
    if not _is_int(value) or value < MIN_GOP:  # type: ignore[operator]
        raise VideoError(f"gop must be a whole number of frames, at least {MIN_GOP}, got {value!r}")
    return value  # type: ignore[return-value]


def check_preset(value: object) -> str:
    if value not in PRESETS:
        raise VideoError(f"preset {value!r} is unknown; choose one of {', '.join(sorted(PRESETS))}")
    return value  # type: ignore[return-value]


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
        if self.sample_rate not in AAC_SAMPLE_RATES:
            raise VideoError(
                f"sample_rate {self.sample_rate!r} is not an AAC sample rate; use one of {AAC_SAMPLE_RATES}"
            )
        check_size("width", self.width)
        check_size("height", self.height)
        check_fps(self.fps, sample_rate=self.sample_rate)
        check_preset(self.preset)
        check_gop(self.gop)
        if not isinstance(self.keep_metadata, bool):
            raise VideoError(f"keep_metadata must be true or false, got {self.keep_metadata!r}")

    @property
    def samples_per_frame(self) -> int:
        return self.sample_rate // self.fps

    def key_fields(self) -> dict[str, Any]:
        """What goes into cache keys: every field (an encoded segment depends on all of them)."""
        return asdict(self)
