"""Moving pictures (a camera move, a clip, a crossfade) encoded into a segment that joins the rest.

The frames come ready (yuv420p arrays at the output size, see `zray.media.frames`) and go through
the encoder every segment uses, so the MP4 track keeps one SPS/PPS. GOPs are closed and `gop`
frames long, starting on the segment's first frame, so a segment's first whole GOPs can be played
on their own (a shorter language plays only those, see `zray.media.shots`). Burned-in captions
ride here too: a changing caption band cannot ride on a still's repeated GOP (one IDR per caption
state would cost about 0.4 s each and repeat `idr_pic_id`, which H.264 forbids), while an ordinary
stream codes each change as a small P picture.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import av
import numpy as np
from av.video.frame import PictureType
from av.video.reformatter import ColorRange, Colorspace

from zray.media.video.encoder import open_encoder
from zray.media.video.settings import VideoError, VideoSettings, check_threads


def encode_frames(
    frames: Iterable[np.ndarray],
    dest: str | os.PathLike[str],
    *,
    count: int,
    settings: VideoSettings,
    threads: int = 0,
) -> int:
    """Encode `count` yuv420p frames (arrays shaped (height * 3 // 2, width)) into a raw H.264
    segment at dest; return the number encoded.

    The segment never ends on a lone IDR picture: the next segment opens with one, and two IDR
    pictures back to back from separate encoders carry the same idr_pic_id, which H.264 forbids
    (7.4.3). When `count` is one more than a whole number of GOPs, the last GOP starts a frame
    early instead (a forced keyframe), so the final picture is a P picture. `threads` is as for
    `encode_still`.
    """
    check_threads(threads)
    if count < 2:
        raise VideoError(f"a moving segment needs at least 2 frames (one would be a lone IDR), got {count}")
    early_key = count - 2 if count % settings.gop == 1 else None
    ctx = open_encoder(settings, still=False, threads=threads)
    shape = (settings.height * 3 // 2, settings.width)
    path = Path(dest)
    written = 0
    try:
        with path.open("wb") as out:
            for index, array in enumerate(frames):
                if index >= count:
                    break
                if array.shape != shape or array.dtype != np.uint8:
                    raise VideoError(
                        f"frame {index} is {array.shape} {array.dtype}, the encoder takes {shape} uint8"
                    )
                frame = av.VideoFrame.from_ndarray(array, format="yuv420p")
                frame.colorspace = Colorspace.ITU709
                frame.color_range = ColorRange.MPEG
                frame.pts = index
                if index == early_key:
                    frame.pict_type = PictureType.I
                for packet in ctx.encode(frame):
                    out.write(bytes(packet))
                written += 1
            for packet in ctx.encode(None):
                out.write(bytes(packet))
        if written != count:
            raise VideoError(f"asked to encode {count} frames, got {written}")
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return written
