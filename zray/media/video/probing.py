"""What a media file holds: frame count, rate, size, durations and codecs of its first streams."""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction

import av

from zray.media.video.settings import VideoError


@dataclass(frozen=True)
class MediaInfo:
    width: int
    height: int
    fps: Fraction | None
    frames: int
    video_duration: float
    video_codec: str | None
    audio_codec: str | None
    sample_rate: int
    channels: int
    audio_duration: float


def probe(path: str | os.PathLike[str]) -> MediaInfo:
    """Frame count, rate, size, durations and codecs of a media file's first video and audio streams."""
    name = os.fspath(path)
    try:
        container = av.open(name)
    except (av.FFmpegError, OSError) as error:
        raise VideoError(f"cannot read media file {name}: {error}") from error
    with container:
        video = container.streams.video[0] if container.streams.video else None
        sound = container.streams.audio[0] if container.streams.audio else None
        frames = 0
        fps: Fraction | None = None
        video_duration = 0.0
        if video is not None:
            frames = video.frames or sum(1 for packet in container.demux(video) if packet.size)
            fps = video.average_rate
            if video.duration is not None and video.time_base is not None:
                video_duration = float(video.duration * video.time_base)
            elif fps:
                video_duration = float(frames / fps)
        audio_duration = 0.0
        if sound is not None and sound.duration is not None and sound.time_base is not None:
            audio_duration = float(sound.duration * sound.time_base)
        return MediaInfo(
            width=video.codec_context.width if video is not None else 0,
            height=video.codec_context.height if video is not None else 0,
            fps=fps,
            frames=frames,
            video_duration=video_duration,
            video_codec=video.codec_context.name if video is not None else None,
            audio_codec=sound.codec_context.name if sound is not None else None,
            sample_rate=sound.codec_context.sample_rate if sound is not None else 0,
            channels=sound.codec_context.channels if sound is not None else 0,
            audio_duration=audio_duration,
        )
