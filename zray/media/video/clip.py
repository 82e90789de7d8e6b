"""Clips (an intro of any size and frame rate) re-encoded into a segment that joins the still ones.

Frames are retimed by their timestamps to the output rate, letterboxed to the output size, and
encoded with the same encoder settings as every still, so the MP4 track keeps one SPS/PPS.
A generated clip (a video engine's frames) is kept as an MP4 of its own (`write_clip`), which the
scene's segments then read as they read a studio clip.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import ColorRange, Colorspace

from zray.media.video.encoder import open_encoder, to_yuv
from zray.media.video.settings import VideoError, VideoSettings, check_threads

# A generated clip is an intermediate: near-lossless, so the scene's own encode loses what it would
# have lost from the raw frames. One thread: x264's output depends on its thread count, and a clip
# is content-addressed (the same frames, the same file).
CLIP_CRF = 10
CLIP_THREADS = 1


def _encode_frames(
    frames: Iterator[av.VideoFrame], dest: str | os.PathLike[str], ctx: av.VideoCodecContext
) -> int:
    """Encode frames into a raw Annex B file at dest; remove it if anything fails."""
    path = Path(dest)
    count = 0
    try:
        with path.open("wb") as out:
            for frame in frames:
                frame.pts = count
                for packet in ctx.encode(frame):
                    out.write(bytes(packet))
                count += 1
            for packet in ctx.encode(None):
                out.write(bytes(packet))
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return count


def retimed(frames: Iterator[av.VideoFrame], *, fps: int, fallback_rate: Fraction) -> Iterator[av.VideoFrame]:
    """Turn decoded frames into a constant-rate sequence: output tick i shows the frame on screen at i/fps.

    Frames are duplicated or dropped by their timestamps; the clip keeps its length, rounded to whole frames.
    """
    shown: av.VideoFrame | None = None
    start = shown_at = Fraction(0)
    shown_for = 1 / fallback_rate
    emitted = 0
    for frame in frames:
        if frame.pts is not None and frame.time_base is not None:
            at = Fraction(frame.pts) * frame.time_base
        else:
            at = shown_at + shown_for if shown is not None else Fraction(0)
        if shown is None:
            start = at
        at -= start
        if shown is not None:
            while Fraction(emitted, fps) < at:
                yield shown
                emitted += 1
        shown, shown_at = frame, at
        if frame.duration and frame.time_base is not None:
            shown_for = Fraction(frame.duration) * frame.time_base
        else:
            shown_for = 1 / fallback_rate
    if shown is not None:
        total = max(round((shown_at + shown_for) * fps), emitted, 1)
        while emitted < total:
            yield shown
            emitted += 1


def _held_off_idr(frames: Iterator[av.VideoFrame], *, gop: int) -> Iterator[av.VideoFrame]:
    """Show the last frame once more when the clip would otherwise end on a lone IDR picture.

    x264 numbers its IDR pictures 0, 1, 0, ..., and every still segment opens with IDR 0; an IDR
    as the clip's last frame could meet the next scene's IDR with the same idr_pic_id.
    """
    count = 0
    last: av.VideoFrame | None = None
    for frame in frames:
        if last is not None:
            yield last
            count += 1
        last = frame
    if last is not None:
        yield last
        if count % gop == 0:
            yield last


def write_clip(frames: Iterable[np.ndarray], dest: str | os.PathLike[str], *, fps: int) -> int:
    """Encode RGB frames (uint8 arrays shaped (height, width, 3), all one size) into an MP4 at dest,
    at `fps`, BT.709 limited-range yuv420p; return the number written. Nothing is left at dest if
    anything fails."""
    path = Path(dest)
    count = 0
    try:
        with av.open(os.fspath(path), "w", format="mp4") as container:
            stream: av.VideoStream | None = None
            for array in frames:
                if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
                    raise VideoError(
                        f"clip frame {count} is {array.shape} {array.dtype}, not (h, w, 3) uint8"
                    )
                height, width = array.shape[:2]
                if stream is None:
                    if width % 2 or height % 2:
                        raise VideoError(f"a clip's frames must have even sides, got {width}x{height}")
                    stream = container.add_stream("libx264", rate=fps)
                    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
                    stream.codec_context.colorspace = Colorspace.ITU709
                    stream.codec_context.color_range = ColorRange.MPEG
                    stream.options = {"crf": str(CLIP_CRF), "preset": "medium", "threads": str(CLIP_THREADS)}
                elif (width, height) != (stream.width, stream.height):
                    raise VideoError(
                        f"clip frame {count} is {width}x{height}, the first was {stream.width}x{stream.height}"
                    )
                frame = to_yuv(
                    av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format="rgb24"), width, height
                )
                frame.pts = count
                container.mux(stream.encode(frame))
                count += 1
            if stream is None:
                raise VideoError("a clip needs at least one frame")
            container.mux(stream.encode(None))
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return count


def letterboxed(
    frame: av.VideoFrame, *, width: int, height: int, aspect: Fraction, interpolation: str = "BICUBIC"
) -> av.VideoFrame:
    """Scale to fit inside width x height keeping the display aspect; pad the rest with black."""
    display_width = frame.width * aspect
    scale = min(Fraction(width) / display_width, Fraction(height, frame.height))
    fit_w = min(width, max(2, 2 * round(display_width * scale / 2)))
    fit_h = min(height, max(2, 2 * round(frame.height * scale / 2)))
    fitted = to_yuv(frame, fit_w, fit_h, interpolation=interpolation)
    if (fit_w, fit_h) == (width, height):
        return fitted
    planes = fitted.to_ndarray()  # yuv420p: Y rows, then U and V rows packed at half width
    canvas = np.empty((height * 3 // 2, width), dtype=np.uint8)
    canvas[:height] = 16  # black in limited range
    canvas[height:] = 128
    # Offsets stay even so the half-resolution chroma lines up with luma.
    x0 = (width - fit_w) // 4 * 2
    y0 = (height - fit_h) // 4 * 2
    canvas[y0 : y0 + fit_h, x0 : x0 + fit_w] = planes[:fit_h]
    chroma = planes[fit_h:].reshape(2, fit_h // 2, fit_w // 2)
    out_chroma = canvas[height:].reshape(2, height // 2, width // 2)
    out_chroma[:, y0 // 2 : (y0 + fit_h) // 2, x0 // 2 : (x0 + fit_w) // 2] = chroma
    boxed = av.VideoFrame.from_ndarray(canvas, format="yuv420p")
    boxed.colorspace = Colorspace.ITU709
    boxed.color_range = ColorRange.MPEG
    boxed.pts, boxed.time_base, boxed.duration = frame.pts, frame.time_base, frame.duration
    return boxed


def encode_clip(
    source: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    *,
    settings: VideoSettings,
    threads: int = 0,
) -> int:
    """Re-encode a clip (an intro of any size and frame rate) into a segment at dest; return its frame count.

    Frames are duplicated or dropped by timestamp to `settings.fps`, scaled to fit and letterboxed
    in black. The clip's audio is left to the caller. `threads` is as for `encode_still`.
    """
    check_threads(threads)
    name = os.fspath(source)
    try:
        container = av.open(name)
    except (av.FFmpegError, OSError) as error:
        raise VideoError(f"cannot read intro clip {name}: {error}") from error
    with container:
        if not container.streams.video:
            raise VideoError(f"intro clip {name} has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        aspect = stream.codec_context.sample_aspect_ratio or Fraction(1)
        rate = stream.average_rate or stream.guessed_rate or Fraction(settings.fps)
        # Letterbox each decoded frame once, before retiming repeats some of them.
        boxed = (
            letterboxed(frame, width=settings.width, height=settings.height, aspect=Fraction(aspect))
            for frame in container.decode(stream)
        )
        retimed_frames = retimed(boxed, fps=settings.fps, fallback_rate=Fraction(rate))
        frames = _held_off_idr(retimed_frames, gop=settings.gop)
        try:
            count = _encode_frames(frames, dest, open_encoder(settings, still=False, threads=threads))
        except av.FFmpegError as error:
            raise VideoError(f"cannot decode intro clip {name}: {error}") from error
    if count == 0:
        Path(dest).unlink(missing_ok=True)
        raise VideoError(f"intro clip {name} has no video frames")
    return count
