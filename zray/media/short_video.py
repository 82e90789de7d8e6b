"""A Short's picture: its scenes panned across in turn, crossfading, captions burned in, one stream.

Scene k fills frames [b_k, b_k+1) of the Short's body; a crossfade into scene k takes the last
`transition` frames before b_k (the previous scene still panning, fading into scene k's first
frame), so each scene's picture is fully shown on its boundary frame, as in the long video.
Pans alternate direction from scene to scene. Frames are rendered as they are encoded, never
held all at once; only the current and the next picture are in memory.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from zray.media.caption_yuv import burn
from zray.media.captions import CaptionState
from zray.media.pan import PanPicture, plan_pan
from zray.media.video.aac import EncodedAudio
from zray.media.video.mux import AssemblyInfo, Segment, assemble
from zray.media.video.sequence import encode_frames
from zray.media.video.settings import VideoError, VideoSettings
from zray.media.video.still import _load_image

__all__ = ["ShortScene", "crossfade", "render_short", "short_frames"]


@dataclass(frozen=True)
class ShortScene:
    """One scene of a Short: its picture, the frames it fills, the frames of crossfade into it."""

    picture: str | os.PathLike[str] | Image.Image
    frames: int
    transition: int = 0

    def __post_init__(self) -> None:
        if self.frames < 1 or self.transition < 0:
            raise VideoError(
                f"a scene fills at least one frame after a crossfade of 0 or more, got frames={self.frames}, "
                f"transition={self.transition}"
            )


def crossfade(outgoing: np.ndarray, incoming: np.ndarray, step: int, count: int) -> np.ndarray:
    """Frame `step` of `count` fading from `outgoing` to `incoming`, whose full picture comes on the
    frame after the last of them: it weighs (step + 1) / (count + 1)."""
    weight = round(256 * (step + 1) / (count + 1))
    mixed = outgoing.astype(np.uint16) * (256 - weight)
    mixed += incoming.astype(np.uint16) * weight
    mixed += 128
    mixed >>= 8
    return mixed.astype(np.uint8)


def short_frames(scenes: Sequence[ShortScene], *, width: int, height: int, fps: int) -> Iterator[np.ndarray]:
    """The body's frames in order (packed yuv420p)."""
    for k, scene in enumerate(scenes):
        if k + 1 < len(scenes) and scenes[k + 1].transition >= scene.frames:
            raise VideoError(
                f"the crossfade into scene {k + 2} ({scenes[k + 1].transition} frames) must be shorter "
                f"than scene {k + 1} ({scene.frames} frames)"
            )
    following: PanPicture | None = None
    for k, scene in enumerate(scenes):
        picture = following or PanPicture(_load_image(scene.picture), width=width, height=height)
        pan = plan_pan(picture.margin, width=width, frames=scene.frames, fps=fps, rightwards=k % 2 == 0)
        fade = scenes[k + 1].transition if k + 1 < len(scenes) else 0
        following, incoming = None, None
        if fade:
            following = PanPicture(_load_image(scenes[k + 1].picture), width=width, height=height)
            nxt = plan_pan(
                following.margin, width=width, frames=scenes[k + 1].frames, fps=fps, rightwards=k % 2 == 1
            )
            incoming = following.render(nxt.at(0))
        for index in range(scene.frames):
            frame = picture.render(pan.at(index))
            step = index - (scene.frames - fade)
            if incoming is not None and step >= 0:
                frame = crossfade(frame, incoming, step, fade)
            yield frame


def render_short(
    scenes: Sequence[ShortScene],
    dest: str | os.PathLike[str],
    *,
    settings: VideoSettings,
    states: Sequence[CaptionState],
    audio: EncodedAudio,
    intro: Segment | None = None,
    threads: int = 0,
) -> AssemblyInfo:
    """Encode the Short's body as one x264 stream with its captions (states in body frames), and mux
    it after the intro segment, if any, with the encoded audio (which covers both) into dest."""
    count = sum(scene.frames for scene in scenes)
    frames = burn(
        short_frames(scenes, width=settings.width, height=settings.height, fps=settings.fps), states
    )
    with tempfile.TemporaryDirectory(prefix="zray-short-") as tmp:
        body = Path(tmp) / "body.h264"
        encode_frames(frames, body, count=count, settings=settings, threads=threads)
        segments = [*([intro] if intro else []), Segment(path=str(body), frames=count)]
        return assemble(segments, audio, dest, settings=settings, threads=threads)
