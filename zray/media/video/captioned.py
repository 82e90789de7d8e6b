"""A still scene of the long video with burned-in captions, as an ordinary x264 stream.

Without captions a still scene is one IDR picture repeated (`still`); its caption band changes
with every word, so here the picture goes through the encoder once per frame (frames without a
caption are the same picture, which x264 codes as skips), and the scene's segment plays once.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence

from PIL import Image

from zray.media.caption_yuv import burn
from zray.media.captions import CaptionState
from zray.media.pan import still_frame
from zray.media.video.sequence import encode_frames
from zray.media.video.settings import VideoError, VideoSettings
from zray.media.video.still import _load_image


def encode_captioned_still(
    image: str | os.PathLike[str] | Image.Image,
    dest: str | os.PathLike[str],
    *,
    frames: int,
    states: Sequence[CaptionState],
    settings: VideoSettings,
    threads: int = 0,
) -> int:
    """Encode `frames` frames of the still (cover-fitted as `encode_still` fits it) with the caption
    states laid over it (frame 0 is the scene's first) into a raw H.264 segment at dest."""
    if frames < 2:
        raise VideoError(f"a captioned scene needs at least 2 frames, got {frames}")
    picture = still_frame(_load_image(image), width=settings.width, height=settings.height)
    return encode_frames(
        burn(itertools.repeat(picture, frames), states),
        dest,
        count=frames,
        settings=settings,
        threads=threads,
    )
