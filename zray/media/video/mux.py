"""Muxing: segments, in order, and an AAC track into one faststart MP4.

A still's GOP is repeated to fill its scene (see `still`), a clip's packets play once; each packet
is restamped onto one constant-rate timeline. Encoders never set the global-header flag: the MP4
muxer builds the avc1 sample entry from the first packet's in-band SPS/PPS, which is identical in
every segment encoded with the same settings. Segments are files because the pipeline encodes them
in parallel on different machines and hands them to one assembly task. Nothing here knows about Ray.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from zray.media.video.aac import AacPacket, EncodedAudio, encode_audio, stereo_track
from zray.media.video.bitstream import NAL_IDR, NAL_PPS, NAL_SPS, access_units, is_encoder_sei
from zray.media.video.settings import AUDIO_BIT_RATE, VideoError, VideoSettings, check_threads, is_int


@dataclass(frozen=True)
class Segment:
    """A segment file and the number of output frames it fills.

    Its packets play cyclically: a still's GOP repeats, a clip with exactly `frames` packets plays once.
    """

    path: str
    frames: int

    def __post_init__(self) -> None:
        if not is_int(self.frames) or self.frames < 1:
            raise VideoError(f"segment {self.path} must fill at least one frame, got frames={self.frames!r}")


@dataclass(frozen=True)
class AssemblyInfo:
    frames: int
    duration: float
    video_bytes: int
    audio_bytes: int
    file_bytes: int


@dataclass(frozen=True)
class _SegmentPackets:
    path: str
    frames: int
    packets: list[bytes]  # one Annex B access unit each, the first an IDR
    keyframes: list[bool]
    headers: tuple[bytes, ...]  # the first packet's SPS and PPS


def _read_segment(segment: Segment, *, keep_metadata: bool) -> _SegmentPackets:
    name = os.fspath(segment.path)
    try:
        data = Path(name).read_bytes()
    except OSError as error:
        raise VideoError(f"cannot read segment {name}: {error}") from error
    pictures = access_units(data)
    if not pictures or not any(unit[0] & 0x1F == NAL_IDR for unit in pictures[0]):
        raise VideoError(f"segment {name} is not an H.264 stream starting with an IDR picture")
    packets, keyframes = [], []
    for picture in pictures:
        units = picture if keep_metadata else [unit for unit in picture if not is_encoder_sei(unit)]
        packets.append(b"".join(b"\x00\x00\x00\x01" + unit for unit in units))
        keyframes.append(any(unit[0] & 0x1F == NAL_IDR for unit in units))
    headers = tuple(unit for unit in pictures[0] if unit[0] & 0x1F in (NAL_SPS, NAL_PPS))
    if not headers:
        raise VideoError(f"segment {name} has no in-band SPS/PPS; encode it with encode_still or encode_clip")
    return _SegmentPackets(name, segment.frames, packets, keyframes, headers)


# ISO 639-1 codes (as scripts name languages) to the ISO 639-2/T codes an MP4 track's language
# box holds; players show it and pick a track by it.
_ISO639_2 = {
    "ar": "ara", "ca": "cat", "cs": "ces", "da": "dan", "de": "deu", "el": "ell", "en": "eng",
    "es": "spa", "eu": "eus", "fi": "fin", "fr": "fra", "gl": "glg", "he": "heb", "hi": "hin",
    "hu": "hun", "id": "ind", "it": "ita", "ja": "jpn", "ko": "kor", "nl": "nld", "no": "nor",
    "pl": "pol", "pt": "por", "ro": "ron", "ru": "rus", "sv": "swe", "th": "tha", "tr": "tur",
    "uk": "ukr", "vi": "vie", "zh": "zho",
}  # fmt: skip


def track_language(lang: str | None) -> str:
    """The ISO 639-2 code for a script's language (`es`, `pt-br`, or already three letters);
    `und` (undetermined) for one not in the table."""
    base = (lang or "").lower().split("-")[0]
    if len(base) == 3 and base.isalpha() and base.isascii():
        return base
    return _ISO639_2.get(base, "und")


def _packet_order(count: int, frames: int) -> Iterator[int]:
    """Indices into a segment's packets that fill `frames` frames, playing the packets cyclically.

    Every copy restarts at the IDR. When a repeating segment would end on a lone IDR picture, the
    last two copies become count - 1 and 2 packets, because two consecutive IDR pictures from the
    same encoder carry the same idr_pic_id, which H.264 forbids (7.4.3).
    """
    pieces = [count] * (frames // count) + ([frames % count] if frames % count else [])
    if len(pieces) > 1 and pieces[-1] == 1 and count >= 3:
        pieces[-2:] = [count - 1, 2]
    for piece in pieces:
        yield from range(piece)


def _picture_size(packet: bytes, name: str) -> tuple[int, int]:
    decoder = av.CodecContext.create("h264", "r")
    try:
        frames = decoder.decode(av.Packet(packet)) + decoder.decode(None)
    except av.FFmpegError as error:
        raise VideoError(f"segment {name} does not decode: {error}") from error
    if not frames:
        raise VideoError(f"segment {name} does not decode to a picture")
    return frames[0].width, frames[0].height


def assemble(
    segments: Sequence[Segment],
    audio: np.ndarray | EncodedAudio,
    dest: str | os.PathLike[str],
    *,
    settings: VideoSettings,
    threads: int = 0,
    language: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> AssemblyInfo:
    """Mux segments, in order, and an audio track into one faststart MP4 at dest.

    `audio` is either float32 (channels, samples) at `settings.sample_rate`, mono duplicated to
    stereo, padded with silence or trimmed to exactly the video's length and encoded here by up to
    `threads` AAC encoders at once (0: one per core); or an `EncodedAudio` already encoded (see
    `zray.media.mastering.encode_track`), which must last exactly as long as the video. Encoder and
    creation metadata are left out unless `settings.keep_metadata`. `language` (a script's code,
    `es`) tags the audio track (`spa`, see `track_language`). `progress(frames)` is called as the
    video's frames are muxed. dest is written in place: the caller renames it into the store.
    """
    check_threads(threads)
    if not segments:
        raise VideoError("assemble needs at least one segment")
    parts = [_read_segment(segment, keep_metadata=settings.keep_metadata) for segment in segments]
    first = parts[0]
    size = _picture_size(first.packets[0], first.path)
    if size != (settings.width, settings.height):
        raise VideoError(
            f"segment {first.path} is {size[0]}x{size[1]}, the settings ask for {settings.width}x{settings.height}"
        )
    for part in parts[1:]:
        if part.headers != first.headers:
            raise VideoError(
                f"segment {part.path} was encoded with other settings (size, preset or gop) than {first.path}; "
                "one MP4 track holds one SPS/PPS"
            )
    frames = sum(part.frames for part in parts)
    samples = round(Fraction(frames * settings.sample_rate, settings.fps))
    if isinstance(audio, EncodedAudio):
        if audio.sample_rate != settings.sample_rate or audio.samples != samples:
            raise VideoError(
                f"the encoded audio holds {audio.samples} samples at {audio.sample_rate} Hz; "
                f"{frames} frames at {settings.fps} fps need {samples} at {settings.sample_rate} Hz"
            )
        encoded = audio
    else:
        encoded = encode_audio(
            stereo_track(audio, samples=samples), settings.sample_rate, workers=threads or os.cpu_count() or 1
        )

    options = {"movflags": "+faststart"}
    if not settings.keep_metadata:
        # bitexact keeps libavformat from writing its "Lavf..." encoder tag.
        options["fflags"] = "+bitexact"
    fps = settings.fps
    frame_time = Fraction(1, fps)
    video_bytes = audio_bytes = 0
    with av.open(os.fspath(dest), "w", format="mp4", options=options) as out:
        video = out.add_mux_stream(
            "h264", rate=settings.fps, width=settings.width, height=settings.height, time_base=frame_time
        )
        # Opened only for its AudioSpecificConfig, the same as every chunk encoder's.
        sound = out.add_stream("aac", rate=settings.sample_rate, layout="stereo")
        sound.bit_rate = AUDIO_BIT_RATE
        if language is not None:
            sound.metadata["language"] = track_language(language)
        if settings.keep_metadata:
            out.metadata["creation_time"] = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

        audio_bytes = encoded.size
        audio_time = Fraction(1, settings.sample_rate)
        pending_audio = iter(encoded.packets)
        next_audio = next(pending_audio, None)

        def mux_audio(aac: AacPacket) -> None:
            packet = av.Packet(aac.data)
            packet.stream = sound
            packet.time_base = audio_time
            packet.pts = packet.dts = aac.pts
            packet.duration = aac.duration
            packet.is_keyframe = True
            out.mux(packet)

        index = 0
        for part in parts:
            for position in _packet_order(len(part.packets), part.frames):
                # Interleave: audio up to a second ahead of the video, for progressive playback
                # (pts / sample_rate <= index / fps + 1, in integers: this runs once a frame).
                while next_audio is not None and next_audio.pts * fps <= (index + fps) * settings.sample_rate:
                    mux_audio(next_audio)
                    next_audio = next(pending_audio, None)
                data = part.packets[position]
                packet = av.Packet(data)
                packet.stream = video
                packet.time_base = frame_time
                packet.pts = packet.dts = index
                packet.duration = 1
                packet.is_keyframe = part.keyframes[position]
                out.mux(packet)
                video_bytes += len(data)
                index += 1
                if progress is not None:
                    progress(index)
        while next_audio is not None:
            mux_audio(next_audio)
            next_audio = next(pending_audio, None)
    return AssemblyInfo(
        frames=frames,
        duration=frames / settings.fps,
        video_bytes=video_bytes,
        audio_bytes=audio_bytes,
        file_bytes=os.path.getsize(dest),
    )
