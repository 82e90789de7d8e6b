"""A slow pan across a picture inside a frame of another shape: a 16:9 scene image in a vertical Short.
A clip is panned across the same way, frame by frame (`window` on each frame fitted by `fitted_size`).

The picture is cover-fitted to the frame's height (so no edge ever shows) and converted to yuv420p
once, at that size; every frame is then one horizontal resampling of its planes through a window
as wide as the frame (Pillow's `resize(box=...)` places the window with sub-pixel precision and,
with the window as tall as the picture, skips the vertical pass). So a frame costs about a third
of an RGB resize and needs no colour conversion. A picture with almost no horizontal margin (a
vertical image) is enlarged a little to make room for the pan.

The pan crosses the middle of the margin at a gentle, steady speed (capped at `SPEED` frame widths
a second, so a long scene does not sweep the whole picture and a short one does not race), easing
in and out over `EASE_SECONDS`. Frames are numpy arrays shaped (height * 3 // 2, width): the Y plane,
then U and V at half size, PyAV's packed yuv420p layout.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import av
import numpy as np
from PIL import Image

from zray.media.video import encoder
from zray.media.video.settings import VideoError

__all__ = ["EASE_SECONDS", "MIN_MARGIN", "SPEED", "Pan", "PanPicture", "fitted_size", "plan_pan", "window"]

SPEED = 0.12  # frame widths a second at most
EASE_SECONDS = 1.0
MIN_MARGIN = 0.06  # of the frame width: the least room a pan gets (a vertical picture is enlarged for it)


@dataclass(frozen=True)
class Pan:
    """The window's left edge moves from `start` to `end` (pixels of the fitted picture) over
    `frames` frames, easing in and out; it holds at `end` after that."""

    start: float
    end: float
    frames: int
    ease: int  # frames of easing at each end

    def at(self, index: int) -> float:
        if self.frames <= 1 or self.start == self.end:
            return self.start
        t = min(max(index, 0), self.frames - 1)
        return self.start + (self.end - self.start) * _eased(t, self.frames - 1, self.ease)


def _eased(t: float, total: float, ease: float) -> float:
    """Progress 0..1 at t of total with a velocity that ramps up linearly over `ease`, holds, and
    ramps down over the last `ease`: smooth, never a jolt, a steady speed in the middle."""
    ease = min(ease, total / 2)
    if ease <= 0:
        return t / total
    cruise = total - ease  # the distance in units of the top speed: ease / 2 at each end, and the middle
    if t < ease:
        travelled = t * t / (2 * ease)
    elif t <= total - ease:
        travelled = ease / 2 + (t - ease)
    else:
        left = total - t
        travelled = cruise - left * left / (2 * ease)
    return travelled / cruise


class PanPicture:
    """A picture cover-fitted to a frame's height (enlarged a little if it has too little horizontal
    margin to pan across), in yuv420p planes, from which any window is rendered at the frame size."""

    def __init__(self, image: Image.Image, *, width: int, height: int) -> None:
        if width % 2 or height % 2 or width <= 0 or height <= 0:
            raise VideoError(f"frame size must be positive and even, got {width}x{height}")
        rgb = image.convert("RGB")
        fitted_w, fitted_h = fitted_size(rgb.width, rgb.height, width=width, height=height)
        frame = encoder.to_yuv(av.VideoFrame.from_image(rgb), fitted_w, fitted_h, interpolation="LANCZOS")
        packed = frame.to_ndarray()
        chroma = packed[fitted_h:].reshape(2, fitted_h // 2, fitted_w // 2)
        # The window never moves vertically: keep the middle rows (an even offset, so chroma lines
        # up), and each frame's resampling is horizontal only.
        top = (fitted_h - height) // 4 * 2
        self.y = Image.fromarray(np.ascontiguousarray(packed[top : top + height]))
        self.u = Image.fromarray(np.ascontiguousarray(chroma[0, top // 2 : (top + height) // 2]))
        self.v = Image.fromarray(np.ascontiguousarray(chroma[1, top // 2 : (top + height) // 2]))
        self.width, self.height = width, height
        self.margin = fitted_w - width  # how far the window can travel

    def render(self, left: float) -> np.ndarray:
        """The frame whose window starts `left` pixels into the fitted picture."""
        return _window(
            self.y, self.u, self.v, left=left, margin=self.margin, width=self.width, height=self.height
        )

    def frames(self, pan: Pan, start: int, count: int) -> Iterator[np.ndarray]:
        for index in range(start, start + count):
            yield self.render(pan.at(index))


def fitted_size(picture_width: float, picture_height: int, *, width: int, height: int) -> tuple[int, int]:
    """The size (even) a picture is fitted to for a pan in a width x height frame: as tall as the
    frame at least, and wide enough to leave `MIN_MARGIN` to travel."""
    scale = max(height / picture_height, width * (1 + MIN_MARGIN) / picture_width)
    fitted_w = max(width + 2, 2 * math.ceil(picture_width * scale / 2))
    fitted_h = max(height, 2 * math.ceil(picture_height * scale / 2))
    return fitted_w, fitted_h


def window(packed: np.ndarray, *, left: float, width: int, height: int) -> np.ndarray:
    """The width x height window starting `left` pixels into a packed yuv420p frame as tall as the
    window (a frame of a clip fitted with `fitted_size`, its middle rows kept)."""
    if packed.shape[0] != height * 3 // 2 or packed.shape[1] % 2:
        raise VideoError(
            f"a {packed.shape[1]}x{packed.shape[0] * 2 // 3} frame cannot be panned at height {height}"
        )
    wide = packed.shape[1]
    chroma = packed[height:].reshape(2, height // 2, wide // 2)
    planes = (Image.fromarray(packed[:height]), Image.fromarray(chroma[0]), Image.fromarray(chroma[1]))
    return _window(*planes, left=left, margin=wide - width, width=width, height=height)


def _window(
    y: Image.Image, u: Image.Image, v: Image.Image, *, left: float, margin: int, width: int, height: int
) -> np.ndarray:
    left = min(max(left, 0.0), float(margin))
    w, h = width, height
    out = np.empty((h * 3 // 2, w), dtype=np.uint8)
    out[:h] = np.asarray(y.resize((w, h), Image.Resampling.BICUBIC, box=(left, 0, left + w, h)))
    chroma = out[h:].reshape(2, h // 2, w // 2)
    box = (left / 2, 0, left / 2 + w / 2, h / 2)
    chroma[0] = np.asarray(u.resize((w // 2, h // 2), Image.Resampling.BICUBIC, box=box))
    chroma[1] = np.asarray(v.resize((w // 2, h // 2), Image.Resampling.BICUBIC, box=box))
    return out


def plan_pan(margin: int, *, width: int, frames: int, fps: int, rightwards: bool) -> Pan:
    """The pan of a scene shown for `frames` frames: across the middle of the margin, as far as
    `SPEED` allows in that time."""
    travel = min(float(margin), SPEED * width * frames / fps)
    start = (margin - travel) / 2
    end = start + travel
    if not rightwards:
        start, end = end, start
    return Pan(start=start, end=end, frames=frames, ease=round(EASE_SECONDS * fps))
