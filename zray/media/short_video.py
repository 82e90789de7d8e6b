"""A Short's picture: its scenes panned across in turn, crossfading, captions burned in, one stream.

Scene k fills frames [b_k, b_k+1) of the Short's body; a crossfade into scene k takes the last
`transition` frames before b_k (the previous scene still panning, fading into scene k's first
frame, `zray.media.frames.crossfade`), so each scene's picture is fully shown on its boundary
frame, as in the long video. A studio clip plays instead of a pan, cover-fitted to the Short; a
generated clip is panned across as a picture is (its last frame held under the pan past its end).
Pans alternate direction from scene to scene. Frames are rendered as they are encoded, never
held all at once; only the current and the next picture are in memory.
"""

from __future__ import annotations

import itertools
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from PIL import Image

from zray.media.caption_yuv import burn
from zray.media.captions import CaptionState
from zray.media.frames import ClipFrames, FrameSource, crossfade
from zray.media.pan import PanPicture, fitted_size, plan_pan, window
from zray.media.video.aac import EncodedAudio
from zray.media.video.mux import AssemblyInfo, Segment, assemble
from zray.media.video.sequence import encode_frames
from zray.media.video.settings import VideoError, VideoSettings
from zray.media.video.still import _load_image

__all__ = ["ShortScene", "render_short", "short_frames"]


@dataclass(frozen=True)
class ShortScene:
    """One scene of a Short: its picture or a clip (panned across), or its frames from elsewhere (a
    studio clip, fitted to the Short), the frames it fills, the frames of crossfade into it."""

    picture: str | os.PathLike[str] | Image.Image | None
    frames: int
    transition: int = 0
    source: FrameSource | None = None  # used instead of a picture
    clip: str | os.PathLike[str] | None = None  # a clip panned across instead of a picture

    def __post_init__(self) -> None:
        if sum(shown is not None for shown in (self.picture, self.source, self.clip)) != 1:
            raise VideoError("a Short's scene shows a picture, a clip or frames from a source, one of them")
        if self.frames < 1 or self.transition < 0:
            raise VideoError(
                f"a scene fills at least one frame after a crossfade of 0 or more, got frames={self.frames}, "
                f"transition={self.transition}"
            )


def short_frames(scenes: Sequence[ShortScene], *, width: int, height: int, fps: int) -> Iterator[np.ndarray]:
    """The body's frames in order (packed yuv420p)."""
    for k, scene in enumerate(scenes):
        if k + 1 < len(scenes) and scenes[k + 1].transition >= scene.frames:
            raise VideoError(
                f"the crossfade into scene {k + 2} ({scenes[k + 1].transition} frames) must be shorter "
                f"than scene {k + 1} ({scene.frames} frames)"
            )
    following: FrameSource | None = None
    for k, scene in enumerate(scenes):
        current = following or _source(scenes, k, width=width, height=height, fps=fps)
        fade = scenes[k + 1].transition if k + 1 < len(scenes) else 0
        following, incoming = None, None
        if fade:
            following = _source(scenes, k + 1, width=width, height=height, fps=fps)
            incoming = next(following.frames(0, 1))
        playing = current.frames(0, scene.frames)
        if incoming is None:
            yield from playing
        else:
            yield from itertools.islice(playing, scene.frames - fade)
            yield from crossfade(playing, incoming, fade)


def _reporting(frames: Iterator[np.ndarray], progress: Callable[[int], None]) -> Iterator[np.ndarray]:
    for done, frame in enumerate(frames, start=1):
        yield frame
        progress(done)


class _Panned:
    """A picture panned across for a scene's frames (alternating direction from scene to scene)."""

    def __init__(self, picture: PanPicture, *, frames: int, fps: int, rightwards: bool) -> None:
        self.picture = picture
        self.pan = plan_pan(
            picture.margin, width=picture.width, frames=frames, fps=fps, rightwards=rightwards
        )

    def frames(self, start: int, count: int) -> Iterator[np.ndarray]:
        return self.picture.frames(self.pan, start, count)


class _PannedClip:
    """A clip panned across for a scene's frames as a picture is: each frame fitted to the Short's
    height with room to travel, seen through the moving window; past the clip's end its last frame
    holds while the window keeps moving, so the scene never freezes."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        width: int,
        height: int,
        frames: int,
        fps: int,
        rightwards: bool,
    ) -> None:
        self.width, self.height = width, height
        wide, _ = fitted_size(*_display_size(path), width=width, height=height)
        # Cover-fitted to wide x height: scaled to that width (or the height), the middle rows kept.
        self.clip = ClipFrames(
            path, width=wide, height=height, fps=fps, fit="cover", fill="hold", interpolation="LANCZOS"
        )
        self.pan = plan_pan(wide - width, width=width, frames=frames, fps=fps, rightwards=rightwards)

    def frames(self, start: int, count: int) -> Iterator[np.ndarray]:
        for index, frame in enumerate(self.clip.frames(start, count), start=start):
            yield window(frame, left=self.pan.at(index), width=self.width, height=self.height)


def _display_size(path: str | os.PathLike[str]) -> tuple[float, int]:
    """A clip's width as shown (its pixels may not be square) and its height."""
    try:
        with av.open(os.fspath(path)) as container:
            if not container.streams.video:
                raise VideoError(f"clip {os.fspath(path)} has no video stream")
            context = container.streams.video[0].codec_context
            aspect = float(context.sample_aspect_ratio or 1)
            return context.width * aspect, context.height
    except (av.FFmpegError, OSError) as error:
        raise VideoError(f"cannot read clip {os.fspath(path)}: {error}") from error


def _source(scenes: Sequence[ShortScene], k: int, *, width: int, height: int, fps: int) -> FrameSource:
    scene = scenes[k]
    if scene.source is not None:
        return scene.source
    if scene.clip is not None:
        return _PannedClip(
            scene.clip, width=width, height=height, frames=scene.frames, fps=fps, rightwards=k % 2 == 0
        )
    assert scene.picture is not None  # ShortScene holds one or the other
    picture = PanPicture(_load_image(scene.picture), width=width, height=height)
    return _Panned(picture, frames=scene.frames, fps=fps, rightwards=k % 2 == 0)


def render_short(
    scenes: Sequence[ShortScene],
    dest: str | os.PathLike[str],
    *,
    settings: VideoSettings,
    states: Sequence[CaptionState],
    audio: EncodedAudio,
    intro: Segment | None = None,
    threads: int = 0,
    language: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> AssemblyInfo:
    """Encode the Short's body as one x264 stream with its captions (states in body frames), and mux
    it after the intro segment, if any, with the encoded audio (which covers both) into dest; the
    audio track is tagged with `language` as the long video's is. `progress(frames)` is called as
    the body's frames are encoded."""
    count = sum(scene.frames for scene in scenes)
    frames = burn(
        short_frames(scenes, width=settings.width, height=settings.height, fps=settings.fps), states
    )
    if progress is not None:
        frames = _reporting(frames, progress)
    with tempfile.TemporaryDirectory(prefix="zray-short-") as tmp:
        body = Path(tmp) / "body.h264"
        encode_frames(frames, body, count=count, settings=settings, threads=threads)
        segments = [*([intro] if intro else []), Segment(path=str(body), frames=count)]
        return assemble(segments, audio, dest, settings=settings, threads=threads, language=language)
