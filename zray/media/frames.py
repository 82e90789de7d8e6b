"""Where a moving scene's frames come from: a still under a camera move, a studio clip, or an
already encoded segment (the intro), as yuv420p frames ready for the encoder.

Frames are numpy arrays shaped (height * 3 // 2, width): the Y plane, then U and V at half size,
PyAV's packed yuv420p layout. A picture is converted to YUV once at its own size; each frame is then
one resampling of its planes through the move's window (Pillow's `resize(box=...)`, which places
the window with sub-pixel precision, so the move glides rather than steps a pixel at a time). A
crossfade is a weighted sum of two such frames.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Iterator
from fractions import Fraction
from typing import Literal, Protocol

import av
import numpy as np
from PIL import Image

from zray.media.moves import Move, Window, cover_box, window
from zray.media.video import clip, encoder
from zray.media.video.settings import VideoError

Fit = Literal["contain", "cover"]
# Past a clip's end: hold its last frame, start it over, or go on from its last frame under a move.
Fill = Literal["hold", "loop", "move"]

# Black in limited-range BT.709: the letterbox of a clip shown whole.


class FrameSource(Protocol):
    def frames(self, start: int, count: int) -> Iterator[np.ndarray]:
        """Frames start .. start + count - 1 of the scene, in order."""
        ...


def _yuv_planes(frame: av.VideoFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    packed = frame.to_ndarray()
    h, w = frame.height, frame.width
    chroma = packed[h:].reshape(2, h // 2, w // 2)
    return packed[:h], chroma[0], chroma[1]


def _unpacked(packed: np.ndarray, *, width: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    chroma = packed[height:].reshape(2, height // 2, width // 2)
    return packed[:height], chroma[0], chroma[1]


def _packed(y: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    h, w = y.shape
    out = np.empty((h * 3 // 2, w), dtype=np.uint8)
    out[:h] = y
    chroma = out[h:].reshape(2, h // 2, w // 2)
    chroma[0], chroma[1] = u, v
    return out


def to_yuv(image: Image.Image, *, width: int | None = None, height: int | None = None) -> av.VideoFrame:
    """An RGB picture as a BT.709 limited-range yuv420p frame (at its own size, made even, unless given)."""
    rgb = image.convert("RGB")
    w = width or max(2, rgb.width // 2 * 2)
    h = height or max(2, rgb.height // 2 * 2)
    return encoder.to_yuv(av.VideoFrame.from_image(rgb), w, h)


class Picture:
    """A still, converted to YUV once, from which any window is rendered at the output size."""

    def __init__(self, image: Image.Image, *, width: int, height: int, zoom: float = 1.0) -> None:
        if width % 2 or height % 2:
            raise VideoError(f"frame size must be even, got {width}x{height}")
        # A picture with more pixels than the deepest window shows is shrunk once, so that each
        # frame resamples no more than it needs (the window then maps about 1:1 at the deepest point).
        need = max(width / image.width, height / image.height) * zoom
        if need < 1:
            size = (max(2, math.ceil(image.width * need)), max(2, math.ceil(image.height * need)))
            image = image.convert("RGB").resize(size, Image.Resampling.LANCZOS)
        frame = to_yuv(image)
        self.y, self.u, self.v = (Image.fromarray(p) for p in _yuv_planes(frame))
        self.width, self.height = width, height
        self.base = cover_box(frame.width, frame.height, frame_width=width, frame_height=height)

    @classmethod
    def from_frame(cls, packed: np.ndarray, *, width: int, height: int) -> Picture:
        """A picture from a frame already at the output size (yuv420p, packed as the encoder takes it)."""
        picture = cls.__new__(cls)
        y, u, v = _unpacked(packed, width=width, height=height)
        picture.y, picture.u, picture.v = (Image.fromarray(np.ascontiguousarray(p)) for p in (y, u, v))
        picture.width, picture.height = width, height
        picture.base = Window(0.0, 0.0, float(width), float(height))
        return picture

    def render(self, box: Window) -> np.ndarray:
        # Bicubic: sharp under the slight magnification of a move; its window coordinates are exact
        # floats, so consecutive windows give smoothly shifting pixels.
        size, half = (self.width, self.height), (self.width // 2, self.height // 2)
        luma = self.y.resize(size, Image.Resampling.BICUBIC, box=_inside(box.box, self.y.size))
        cbox = _inside(tuple(c / 2 for c in box.box), self.u.size)
        u = self.u.resize(half, Image.Resampling.BICUBIC, box=cbox)
        v = self.v.resize(half, Image.Resampling.BICUBIC, box=cbox)
        return _packed(np.asarray(luma), np.asarray(u), np.asarray(v))


def _inside(box: tuple[float, ...], size: tuple[int, int]) -> tuple[float, float, float, float]:
    # Rounding in a window's arithmetic may step a hair past the picture; Pillow refuses that.
    left, top, right, bottom = box
    return (max(0.0, left), max(0.0, top), min(float(size[0]), right), min(float(size[1]), bottom))


class MovingStill:
    """A still under a camera move (or none): frame i shows the move's window at i / fps."""

    def __init__(self, picture: Picture, move: Move | None, *, fps: int) -> None:
        self.picture, self.move, self.fps = picture, move, fps
        self._still: np.ndarray | None = None

    def window(self, index: int) -> Window:
        return window(self.move, index / self.fps, base=self.picture.base)

    def frames(self, start: int, count: int) -> Iterator[np.ndarray]:
        for index in range(start, start + count):
            if self.move is None:
                if self._still is None:
                    self._still = self.picture.render(self.picture.base)
                yield self._still
            else:
                yield self.picture.render(self.window(index))


class ClipFrames:
    """A studio or generated clip on the output's frame grid: frame i is the clip frame on screen at
    i / fps, fitted to the frame (`cover` crops the overflow, `contain` letterboxes in black); past
    the clip's end its last frame holds, the clip starts over (`loop`), or (`move`, for generated
    clips) the scene goes on from its last frame under `move`: the first frame past the end is the
    move one frame in, so the picture neither stops nor jumps.

    Frames are decoded as they are asked for, never all held at once (a scene-long clip at 1080p
    would be gigabytes of raw frames). `interpolation` is the scaling filter (PyAV's names).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        width: int,
        height: int,
        fps: int,
        fit: Fit,
        fill: Fill,
        move: Move | None = None,
        interpolation: str = "BICUBIC",
    ) -> None:
        if fill == "move" and move is None:
            raise VideoError(f"clip {os.fspath(path)}: going on past its end needs a move")
        self.path, self.width, self.height, self.fps = os.fspath(path), width, height, fps
        self.fit, self.fill, self.move, self.interpolation = fit, fill, move, interpolation
        self._length: int | None = None
        self._last: np.ndarray | None = None
        self._aspect = Fraction(1)
        self._final: av.VideoFrame | None = None

    def _ticks(self) -> Iterator[av.VideoFrame]:
        """One pass through the clip on the output grid: the decoded frame on screen at each tick."""
        try:
            container = av.open(self.path)
        except (av.FFmpegError, OSError) as error:
            raise VideoError(f"cannot read clip {self.path}: {error}") from error
        with container:
            if not container.streams.video:
                raise VideoError(f"clip {self.path} has no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            rate = Fraction(stream.average_rate or stream.guessed_rate or self.fps)
            self._aspect = Fraction(stream.codec_context.sample_aspect_ratio or 1)
            self._final = None

            def decoded() -> Iterator[av.VideoFrame]:
                for frame in container.decode(stream):
                    self._final = frame  # the grid may step over the clip's own last frame
                    yield frame

            try:
                yield from clip.retimed(decoded(), fps=self.fps, fallback_rate=rate)
            except av.FFmpegError as error:
                raise VideoError(f"cannot decode clip {self.path}: {error}") from error
            if self._final is None:
                raise VideoError(f"clip {self.path} has no video frames")

    def _fitted(self, frame: av.VideoFrame) -> np.ndarray:
        width, height = self.width, self.height
        if self.fit == "contain":
            boxed = clip.letterboxed(
                frame, width=width, height=height, aspect=self._aspect, interpolation=self.interpolation
            )
            return boxed.to_ndarray()
        display_w = frame.width * self._aspect  # pixels may not be square
        scale = max(Fraction(width) / display_w, Fraction(height, frame.height))
        fit_w = max(2, 2 * round(display_w * scale / 2))
        fit_h = max(2, 2 * round(frame.height * scale / 2))
        y, u, v = _yuv_planes(encoder.to_yuv(frame, fit_w, fit_h, interpolation=self.interpolation))
        # Cropped to the frame; offsets stay even so the half-size chroma lines up with luma.
        x0, y0 = (fit_w - width) // 4 * 2, (fit_h - height) // 4 * 2
        rows, cols = slice(y0 // 2, (y0 + height) // 2), slice(x0 // 2, (x0 + width) // 2)
        return _packed(y[y0 : y0 + height, x0 : x0 + width], u[rows, cols], v[rows, cols])

    def _pass(self, start: int) -> Iterator[np.ndarray]:
        """The clip's grid frames from `start` to its end, each decoded frame fitted once; then
        records the clip's length and its last frame, fitted (held past its end)."""
        last: av.VideoFrame | None = None
        fitted: np.ndarray | None = None
        count = 0
        for count, frame in enumerate(self._ticks(), start=1):
            if count > start:
                if frame is not last or fitted is None:
                    fitted = self._fitted(frame)
                yield fitted
            last = frame
        self._length = count
        # The clip's own last frame, which the frame grid may have stepped over.
        final = self._final
        assert final is not None  # _ticks raises for a clip without frames
        self._last = fitted if final is last and fitted is not None else self._fitted(final)

    def frames(self, start: int, count: int) -> Iterator[np.ndarray]:
        produced, index = 0, start
        while produced < count:
            offset = index % self._length if self.fill == "loop" and self._length else index
            for frame in self._pass(offset):
                yield frame
                produced += 1
                index += 1
                if produced == count:
                    return
            if self.fill == "hold":
                assert self._last is not None
                yield from itertools.repeat(self._last, count - produced)
                return
            if self.fill == "move":
                yield from self._beyond(index, count - produced)
                return

    def _beyond(self, start: int, count: int) -> Iterator[np.ndarray]:
        """Frames `start` .. of the scene past the clip's end, from its last frame under the move."""
        assert self._last is not None and self._length is not None and self.move is not None
        picture = Picture.from_frame(self._last, width=self.width, height=self.height)
        # Frame `length` is the move one frame in: the clip's last frame is the move's frame 0.
        carried_on = MovingStill(picture, self.move, fps=self.fps)
        yield from carried_on.frames(start - self._length + 1, count)


class SegmentFrames:
    """The frames of an encoded H.264 segment (the intro), decoded."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)

    def frames(self, start: int, count: int) -> Iterator[np.ndarray]:
        try:
            with av.open(self.path, format="h264") as container:
                for index, frame in enumerate(container.decode(video=0)):
                    if index >= start + count:
                        return
                    if index >= start:
                        yield frame.reformat(format="yuv420p").to_ndarray()
        except av.FFmpegError as error:
            raise VideoError(f"cannot decode segment {self.path}: {error}") from error


def crossfade(outgoing: Iterator[np.ndarray], incoming: np.ndarray, count: int) -> Iterator[np.ndarray]:
    """`count` frames fading from `outgoing` (still playing) to `incoming`, whose full picture comes
    on the frame after the last of these: frame j weighs it (j + 1) / (count + 1)."""
    target = incoming.astype(np.float32)
    for j, frame in zip(range(count), outgoing, strict=False):
        alpha = (j + 1) / (count + 1)
        mixed = frame.astype(np.float32) * (1.0 - alpha) + target * alpha
        yield np.rint(mixed).astype(np.uint8)
