"""What a media file holds: frame count, rate, size, durations and codecs of its first streams, and
the loudness and true peak of its audio as ffmpeg's ebur128 filter measures them."""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction

import av
import av.filter
import numpy as np

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


@dataclass(frozen=True)
class AudioLevels:
    integrated_lufs: float  # BS.1770 integrated loudness
    true_peak_dbtp: float  # the largest true peak of any channel


def audio_levels(path: str | os.PathLike[str]) -> AudioLevels:
    """Integrated loudness and true peak of a media file's first audio stream, by libavfilter's
    `ebur128` filter (peak=true), the meter `ffmpeg -af ebur128=peak=true` reports with."""
    name = os.fspath(path)
    try:
        container = av.open(name)
    except (av.FFmpegError, OSError) as error:
        raise VideoError(f"cannot read media file {name}: {error}") from error
    peak, loudness = 0.0, float("-inf")
    with container:
        if not container.streams.audio:
            raise VideoError(f"media file {name} has no audio stream")
        stream = container.streams.audio[0]
        graph = av.filter.Graph()
        context = stream.codec_context
        rate, layout = context.sample_rate, context.layout.name
        # Frames are fed as planar float whatever the codec decodes to, so the tail below fits too.
        resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
        source = graph.add_abuffer(
            format="fltp", sample_rate=rate, layout=layout, time_base=Fraction(1, rate)
        )
        meter = graph.add("ebur128", "peak=true:metadata=1")
        sink = graph.add("abuffersink")
        source.link_to(meter)
        meter.link_to(sink)
        graph.configure()

        def drain() -> None:
            nonlocal peak, loudness
            while True:
                try:
                    frame = graph.pull()
                except (av.BlockingIOError, av.EOFError):
                    return
                # Metadata comes with every full 100 ms frame; both values cover all audio so far.
                if "lavfi.r128.true_peak" in frame.metadata:
                    peak = max(peak, float(frame.metadata["lavfi.r128.true_peak"]))
                    loudness = float(frame.metadata["lavfi.r128.I"])

        end = 0
        for decoded in container.decode(stream):
            for frame in resampler.resample(decoded):
                frame.pts, frame.time_base = end, Fraction(1, rate)
                end += frame.samples
                source.push(frame)
                drain()
        for frame in resampler.resample(None):
            frame.pts, frame.time_base = end, Fraction(1, rate)
            end += frame.samples
            source.push(frame)
        # The filter reports only on full 100 ms frames: 200 ms of silence (which the gate ignores)
        # carries the last samples into one.
        tail = av.AudioFrame.from_ndarray(
            np.zeros((context.channels, context.sample_rate // 5), dtype=np.float32),
            format="fltp",
            layout=context.layout.name,
        )
        tail.sample_rate, tail.pts, tail.time_base = (
            context.sample_rate,
            end,
            Fraction(1, context.sample_rate),
        )
        source.push(tail)
        source.push(None)
        drain()
    true_peak = 20 * float(np.log10(peak)) if peak > 0 else float("-inf")
    return AudioLevels(integrated_lufs=loudness, true_peak_dbtp=true_peak)
