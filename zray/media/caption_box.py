"""Where burned-in captions may be drawn, and the error for caption settings that cannot work.

Stdlib only, so the config checks `shorts.caption_box` with the very rule the renderer applies
(`zray.media.captions`) without loading Pillow or numpy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from zray.errors import InvalidInput

__all__ = ["LOWER_THIRD", "SHORTS_BOX", "CaptionBox", "CaptionError", "parse_colour"]


class CaptionError(InvalidInput, ValueError):
    """A caption setting or font that cannot work (a box outside the frame, a font without the
    language's letters); the message names the setting."""


@dataclass(frozen=True)
class CaptionBox:
    """Where captions may be drawn, as fractions of the frame's width (left, right) and height."""

    left: float
    top: float
    right: float
    bottom: float

    def __post_init__(self) -> None:
        if not (0 <= self.left < self.right <= 1 and 0 <= self.top < self.bottom <= 1):
            raise CaptionError(
                f"caption box must lie inside the frame with left < right and top < bottom (fractions "
                f"0-1), got x {self.left}-{self.right}, y {self.top}-{self.bottom}"
            )

    def pixels(self, size: tuple[int, int]) -> tuple[int, int, int, int]:
        width, height = size
        return (
            math.ceil(self.left * width),
            math.ceil(self.top * height),
            math.floor(self.right * width),
            math.floor(self.bottom * height),
        )


# The long video's lower third, and the Shorts player's safe area: clear of its buttons on the right
# and of the title and description at the bottom.
LOWER_THIRD = CaptionBox(left=0.08, top=0.72, right=0.92, bottom=0.94)
SHORTS_BOX = CaptionBox(left=0.06, top=0.58, right=0.82, bottom=0.76)


def parse_colour(value: str, *, setting: str = "captions.highlight") -> tuple[int, int, int]:
    """`#rrggbb` (or `rrggbb`) as three integers 0-255; CaptionError naming the setting otherwise."""
    text = value.strip().removeprefix("#") if isinstance(value, str) else ""
    if len(text) != 6 or any(c not in "0123456789abcdefABCDEF" for c in text):
        raise CaptionError(f"{setting} must be a colour written #rrggbb (like #ffd60a), got {value!r}")
    return int(text[0:2], 16), int(text[2:4], 16), int(text[4:6], 16)
