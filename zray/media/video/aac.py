"""The AAC track: encoded in parallel chunks by separate encoders and spliced into one stream.

AAC is the one cost of assembly that grows with minutes, so a track is cut into chunks on the AAC
frame grid that separate encoders handle at once (PyAV releases the GIL while encoding); see the
note above `_AUDIO_PREROLL_FRAMES` for how the chunks join without a seam.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
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


# AAC is the one cost of assembly that grows with minutes, so the track is cut into chunks that
# separate encoders handle in parallel (PyAV releases the GIL while encoding). A chunk's encoder
# starts two seconds early, which is how long a fresh encoder's rate control takes to settle, and
# the previous one runs on past the boundary; the streams are joined on a frame boundary where
# both sides used long windows, so the overlapping MDCT halves still cancel their aliasing.
_AUDIO_CHUNK_MIN_SECONDS = 15.0
_AUDIO_PREROLL_FRAMES = 96
_AUDIO_SPLICE_FRAMES = 16
_ONLY_LONG, _LONG_START, _EIGHT_SHORT, _LONG_STOP = range(4)


def _aac_encoder(sample_rate: int) -> av.AudioCodecContext:
    ctx = cast(av.AudioCodecContext, av.CodecContext.create("aac", "w"))
    ctx.sample_rate = sample_rate
    ctx.layout = "stereo"
    ctx.format = "fltp"
    ctx.bit_rate = AUDIO_BIT_RATE
    ctx.time_base = Fraction(1, sample_rate)
    return ctx


def _encode_aac_span(track: np.ndarray, start: int, stop: int, sample_rate: int) -> dict[int, av.Packet]:
    """AAC packets, by pts in samples, for track[:, start:stop]; start is on the AAC frame grid."""
    ctx = _aac_encoder(sample_rate)
    packets: dict[int, av.Packet] = {}
    # One-second frames; the encoder cuts them into 1024-sample AAC frames itself.
    for offset in range(start, stop, sample_rate):
        chunk = np.ascontiguousarray(track[:, offset : min(offset + sample_rate, stop)])
        frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
        frame.sample_rate = sample_rate
        frame.pts = offset
        frame.time_base = Fraction(1, sample_rate)
        packets.update((packet.pts, packet) for packet in ctx.encode(frame))
    packets.update((packet.pts, packet) for packet in ctx.encode(None))
    return packets


def _window(packet: av.Packet | None) -> tuple[int, int] | None:
    """(window_sequence, window_shape) of an AAC-LC frame's first channel element, None if not plain."""
    if packet is None or packet.size < 3:
        return None
    bits = int.from_bytes(bytes(packet)[:3], "big")
    element = bits >> 21
    if element == 1:  # a channel pair: the ics_info is shared only when common_window is set
        if not bits >> 16 & 1:
            return None
        return bits >> 13 & 3, bits >> 12 & 1
    if element == 0:  # a single channel: ics_info follows an 8-bit global gain
        return bits >> 6 & 3, bits >> 5 & 1
    return None


def _splice_point(before: dict[int, av.Packet], after: dict[int, av.Packet], boundary: int) -> int:
    """The first frame at or after boundary where `after` can take over from `before`."""
    for at in range(boundary, boundary + (_AUDIO_SPLICE_FRAMES - 4) * AAC_FRAME, AAC_FRAME):
        last = _window(before.get(at - AAC_FRAME))
        first = _window(after.get(at))
        shape_before = _window(after.get(at - AAC_FRAME))
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


def encode_audio(track: np.ndarray, sample_rate: int, *, workers: int) -> list[av.Packet]:
    """AAC packets for a stereo track, in order, encoded by up to `workers` encoders at once."""
    samples = track.shape[1]
    chunks = max(1, min(workers, int(samples // (_AUDIO_CHUNK_MIN_SECONDS * sample_rate))))
    frames = -(-samples // AAC_FRAME)
    bounds = [round(index * frames / chunks) * AAC_FRAME for index in range(1, chunks)]
    starts = [0] + [bound - _AUDIO_PREROLL_FRAMES * AAC_FRAME for bound in bounds]
    stops = [bound + _AUDIO_SPLICE_FRAMES * AAC_FRAME for bound in bounds] + [samples]
    with ThreadPoolExecutor(max_workers=chunks) as pool:
        parts = list(
            pool.map(
                lambda span: _encode_aac_span(track, max(0, span[0]), min(samples, span[1]), sample_rate),
                zip(starts, stops, strict=True),
            )
        )
    packets: list[av.Packet] = []
    taken_from = -(1 << 62)
    for index, bound in enumerate(bounds):
        splice = _splice_point(parts[index], parts[index + 1], bound)
        packets += [parts[index][pts] for pts in sorted(parts[index]) if taken_from <= pts < splice]
        taken_from = splice
    packets += [parts[-1][pts] for pts in sorted(parts[-1]) if pts >= taken_from]
    return packets
