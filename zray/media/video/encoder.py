"""libx264 as zray opens it for every segment, and the one colour conversion into it.

Every segment of a video, still or clip, comes from an encoder opened here with the same settings,
so they share one SPS/PPS and can be joined into one MP4 track (see `mux`).
"""

from __future__ import annotations

from fractions import Fraction
from typing import cast

import av
from av.video.reformatter import ColorPrimaries, ColorRange, Colorspace, ColorTrc

from zray.media.video.settings import PRESETS, VideoSettings


def open_encoder(settings: VideoSettings, *, still: bool, threads: int) -> av.VideoCodecContext:
    preset = PRESETS[settings.preset]
    params = [
        f"keyint={settings.gop}",
        f"min-keyint={settings.gop}",
        "scenecut=0",
        "bframes=0",
        # Headers may not depend on the content, so separately encoded segments share one SPS/PPS.
        "stitchable=1",
    ]
    if still:
        # Only x264's lookahead searches motion in a still, and nothing moves: a diamond search
        # finds the zero vector as the preset's does (the IDR comes out byte for byte the same).
        params.append("me=dia")
    ctx = cast(av.VideoCodecContext, av.CodecContext.create("libx264", "w"))
    ctx.width = settings.width
    ctx.height = settings.height
    ctx.pix_fmt = "yuv420p"
    ctx.time_base = Fraction(1, settings.fps)
    ctx.framerate = Fraction(settings.fps)
    ctx.gop_size = settings.gop
    ctx.max_b_frames = 0
    # x264's own frame threading: slice threads split every picture and cost bits for nothing here.
    ctx.thread_type = "FRAME"
    # Tag BT.709 in the VUI so players do not guess BT.601 for HD material.
    ctx.colorspace = Colorspace.ITU709
    ctx.color_range = ColorRange.MPEG
    ctx.color_primaries = ColorPrimaries.BT709
    ctx.color_trc = ColorTrc.BT709
    ctx.options = {
        "preset": preset.x264_preset,
        "crf": str(preset.crf),
        "threads": str(threads),
        "x264-params": ":".join(params),
    }
    return ctx


def to_yuv(frame: av.VideoFrame, width: int, height: int, *, interpolation: str = "BICUBIC") -> av.VideoFrame:
    """The frame scaled to width x height as what every stream here carries: BT.709, limited range,
    yuv420p (players assume BT.709 for HD when a stream says nothing else)."""
    return frame.reformat(
        width=width,
        height=height,
        format="yuv420p",
        dst_colorspace=Colorspace.ITU709,
        dst_color_range=ColorRange.MPEG,
        interpolation=interpolation,
    )
