"""The AAC track: encoded in chunks by separate encoders and spliced into one stream.

AAC is the one cost of assembly that grows with minutes, so a track is cut into chunks on the AAC
frame grid that separate encoders handle at once (PyAV releases the GIL while encoding), or that a
cache keeps between runs (`zray.media.mastering`). See the note above `PREROLL_FRAMES` for how
chunks join without a seam. Packets are plain `AacPacket`s (bytes and timestamps), so they can be
stored and muxed later.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from typing import cast

import av
import numpy as np

from zray.media.constants import AAC_FRAME
from zray.media.video.settings import AUDIO_BIT_RATE, VideoError


def stereo_track(audio: np.ndarray, *, samples: int) -> np.ndarray:
    track = np.asarray(audio, dtype=np.float32)
    if track.ndim == 1:
        track = track[np.newaxis]
    if track.ndim != 2 or track.shape[0] not in (1, 2):
        raise VideoError(
            f"audio must be a (channels, samples) array with 1 or 2 channels, got shape {np.shape(audio)}"
        )
    if not np.isfinite(track).all():
        raise VideoError("audio contains NaN or infinite samples")
    if track.shape[0] == 1:
        track = np.repeat(track, 2, axis=0)
    if track.shape[1] >= samples:
        return np.ascontiguousarray(track[:, :samples])
    return np.pad(track, ((0, 0), (0, samples - track.shape[1])))


# A chunk's encoder starts PREROLL_FRAMES early, about two seconds, which is how long a fresh
# encoder's rate control takes to settle, and the previous chunk's encoder runs OVERRUN_FRAMES past
# the boundary; the streams are joined on a frame boundary where both sides used long windows, so
# the overlapping MDCT halves still cancel their aliasing.
PREROLL_FRAMES = 96
OVERRUN_FRAMES = 16
# The splice is looked for this many frames from the boundary on (the rest of the overrun is the
# window shapes either side that the choice reads).
_SPLICE_SEARCH_FRAMES = OVERRUN_FRAMES - 4
_AUDIO_CHUNK_MIN_SECONDS = 15.0
_ONLY_LONG, _LONG_START, _EIGHT_SHORT, _LONG_STOP = range(4)


@dataclass(frozen=True)
class AacPacket:
    """One AAC frame: its bytes and the first track sample it codes (the encoder's priming frame,
    before sample 0, has pts -1024); duration is 1024 but for a shortened last frame."""

    pts: int
    duration: int
    data: bytes


@dataclass(frozen=True)
class EncodedAudio:
    """A stereo AAC-LC track at AUDIO_BIT_RATE, ready to mux: its packets in order, covering
    samples 0 .. samples - 1 at sample_rate."""

    packets: tuple[AacPacket, ...]
    sample_rate: int
    samples: int

    @property
    def size(self) -> int:
        return sum(len(packet.data) for packet in self.packets)


def _aac_encoder(sample_rate: int) -> av.AudioCodecContext:
    ctx = cast(av.AudioCodecContext, av.CodecContext.create("aac", "w"))
    ctx.sample_rate = sample_rate
    ctx.layout = "stereo"
    ctx.format = "fltp"
    ctx.bit_rate = AUDIO_BIT_RATE
    ctx.time_base = Fraction(1, sample_rate)
    return ctx


@functools.cache
def _audio_specific_config(sample_rate: int) -> bytes:
    """The AudioSpecificConfig every encoder here writes (the decoder and the MP4 need it)."""
    ctx = _aac_encoder(sample_rate)
    ctx.open()
    return bytes(ctx.extradata or b"")


def encoder_identity() -> str:
    """What, besides its input, decides the packets an encoder writes: codec library and settings."""
    return f"aac-lc {AUDIO_BIT_RATE} stereo libavcodec {av.library_versions['libavcodec']}"


def encode_span(samples: np.ndarray, *, first: int, sample_rate: int) -> dict[int, AacPacket]:
    """AAC packets, by pts, for stereo float32 samples whose first one is track sample `first`
    (on the AAC frame grid); the encoder starts fresh and is flushed at the end."""
    ctx = _aac_encoder(sample_rate)
    packets: dict[int, AacPacket] = {}

    def keep(encoded: list[av.Packet]) -> None:
        for packet in encoded:
            pts = cast(int, packet.pts)
            packets[pts] = AacPacket(pts, cast(int, packet.duration), bytes(packet))

    # One-second frames; the encoder cuts them into 1024-sample AAC frames itself.
    for offset in range(0, samples.shape[1], sample_rate):
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(samples[:, offset : offset + sample_rate]), format="fltp", layout="stereo"
        )
        frame.sample_rate = sample_rate
        frame.pts = first + offset
        frame.time_base = Fraction(1, sample_rate)
        keep(ctx.encode(frame))
    keep(ctx.encode(None))
    return packets


def decode(packets: Sequence[AacPacket], *, sample_rate: int) -> np.ndarray:
    """Decode consecutive packets to float32 (2, n); sample 0 is at packets[0].pts. A decoder's
    first frame overlaps what came before it, so it is whole only from packets[0]'s priming frame."""
    ctx = cast(av.AudioCodecContext, av.CodecContext.create("aac", "r"))
    ctx.extradata = _audio_specific_config(sample_rate)
    ctx.sample_rate = sample_rate
    ctx.layout = "stereo"
    decoded = []
    for packet in packets:
        for frame in ctx.decode(av.Packet(packet.data)):
            decoded.append(frame.to_ndarray())
    return np.concatenate(decoded, axis=1) if decoded else np.zeros((2, 0), dtype=np.float32)


def _window(data: bytes | None) -> tuple[int, int] | None:
    """(window_sequence, window_shape) of an AAC-LC frame's first channel element, None if not plain."""
    if data is None or len(data) < 3:
        return None
    bits = int.from_bytes(data[:3], "big")
    element = bits >> 21
    if element == 1:  # a channel pair: the ics_info is shared only when common_window is set
        if not bits >> 16 & 1:
            return None
        return bits >> 13 & 3, bits >> 12 & 1
    if element == 0:  # a single channel: ics_info follows an 8-bit global gain
        return bits >> 6 & 3, bits >> 5 & 1
    return None


def _splice_point(before: Mapping[int, AacPacket], after: Mapping[int, AacPacket], boundary: int) -> int:
    """The first frame at or after boundary where `after` can take over from `before`."""

    def window(packets: Mapping[int, AacPacket], pts: int) -> tuple[int, int] | None:
        packet = packets.get(pts)
        return _window(packet.data if packet is not None else None)

    for at in range(boundary, boundary + _SPLICE_SEARCH_FRAMES * AAC_FRAME, AAC_FRAME):
        last = window(before, at - AAC_FRAME)
        first = window(after, at)
        shape_before = window(after, at - AAC_FRAME)
        if (
            last is not None
            and first is not None
            and shape_before is not None
            and last[0] in (_ONLY_LONG, _LONG_STOP)
            and first[0] in (_ONLY_LONG, _LONG_START)
            and last[1] == shape_before[1]
        ):
            return at
    return boundary


def join(parts: Sequence[Mapping[int, AacPacket]], bounds: Sequence[int]) -> list[AacPacket]:
    """One packet stream from chunks' packets (by pts), part i + 1 taking over from part i at a
    splice point chosen at or after bounds[i]. Each part must hold packets from one frame before
    its bound to OVERRUN_FRAMES past the next bound."""
    packets: list[AacPacket] = []
    taken_from = -(1 << 62)
    for index, bound in enumerate(bounds):
        splice = _splice_point(parts[index], parts[index + 1], bound)
        packets += [parts[index][pts] for pts in sorted(parts[index]) if taken_from <= pts < splice]
        taken_from = splice
    packets += [parts[-1][pts] for pts in sorted(parts[-1]) if pts >= taken_from]
    return packets


def encode_audio(track: np.ndarray, sample_rate: int, *, workers: int) -> EncodedAudio:
    """A stereo float32 track encoded by up to `workers` encoders at once (chunks of 15 s or more)."""
    samples = track.shape[1]
    chunks = max(1, min(workers, int(samples // (_AUDIO_CHUNK_MIN_SECONDS * sample_rate))))
    frames = -(-samples // AAC_FRAME)
    bounds = [round(index * frames / chunks) * AAC_FRAME for index in range(1, chunks)]
    starts = [0] + [max(0, bound - PREROLL_FRAMES * AAC_FRAME) for bound in bounds]
    stops = [min(samples, bound + OVERRUN_FRAMES * AAC_FRAME) for bound in bounds] + [samples]
    with ThreadPoolExecutor(max_workers=chunks) as pool:
        parts = list(
            pool.map(
                lambda span: encode_span(track[:, span[0] : span[1]], first=span[0], sample_rate=sample_rate),
                zip(starts, stops, strict=True),
            )
        )
    return EncodedAudio(tuple(join(parts, bounds)), sample_rate, samples)
