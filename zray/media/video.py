"""Episode video assembly with PyAV, at a cost that grows with distinct images, not minutes of video.

A still scene is encoded once, by `encode_still`, as one closed GOP of `gop` frames (x264's IDR
picture, then skip pictures that repeat it) into a raw H.264 segment file. `assemble` fills a scene
of N frames with N // gop copies of that GOP's packets plus its first N % gop packets, restamped, so
a 20-second scene costs the same encode as a 2-second one. Every GOP opens with an IDR picture
carrying its own SPS/PPS, so each copy decodes on its own. Encoders never set the global-header
flag: the MP4 muxer builds the avc1 sample entry from the first packet's in-band SPS/PPS, which is
identical in every segment encoded with the same settings. Audio is the one cost that grows with
minutes: the AAC track is encoded in parallel chunks and joined on frame boundaries (see
`_encode_audio`).

Segments are files because the pipeline encodes them in parallel on different machines and hands
them to one assembly task. Nothing here knows about Ray.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import cast

import av
import numpy as np
from av.video.reformatter import ColorPrimaries, ColorRange, Colorspace, ColorTrc
from PIL import Image, ImageOps

__all__ = [
    "PRESETS",
    "AssemblyInfo",
    "MediaInfo",
    "Segment",
    "VideoError",
    "VideoSettings",
    "X264Preset",
    "assemble",
    "encode_clip",
    "encode_still",
    "probe",
]


class VideoError(ValueError):
    """A bad setting, unreadable input or mismatched segment; the message names it."""


@dataclass(frozen=True)
class X264Preset:
    name: str
    x264_preset: str
    crf: int


PRESETS: dict[str, X264Preset] = {
    "fast": X264Preset(name="fast", x264_preset="ultrafast", crf=23),
    "final": X264Preset(name="final", x264_preset="medium", crf=18),
}

_AAC_SAMPLE_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200, 96000)
_AUDIO_BIT_RATE = 192_000


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class VideoSettings:
    """Output format shared by every segment of one video and by its assembly.

    `gop` is the still GOP length L, the keyframe interval: 48 frames (2 s at 24 fps, the most
    streaming guides advise) puts an IDR picture, which carries almost all the bytes, only every
    two seconds. x264 then looks 40 frames ahead before coding the IDR, which is what makes a
    still's encode cheap (about 0.4 s of one core at 1080p); a GOP of 40 frames or fewer is coded
    in full (24 frames: about 0.75 s, a file almost twice as large and IDRs 0.2 dB worse).
    """

    width: int = 1920
    height: int = 1072
    fps: int = 24
    preset: str = "final"
    gop: int = 48
    keep_metadata: bool = False
    sample_rate: int = 48_000

    def __post_init__(self) -> None:
        for name in ("width", "height"):
            value = getattr(self, name)
            if not _is_int(value) or value <= 0 or value % 2:
                raise VideoError(
                    f"{name} must be a positive even number of pixels (yuv420p halves it; "
                    f"multiples of 16 are best), got {value!r}"
                )
        if not _is_int(self.fps) or self.fps <= 0:
            raise VideoError(f"fps must be a positive whole number, got {self.fps!r}")
        if self.preset not in PRESETS:
            raise VideoError(f"preset {self.preset!r} is unknown; choose one of {sorted(PRESETS)}")
        # A GOP of at least 3 lets a scene avoid ending on a lone IDR picture (see _packet_order).
        if not _is_int(self.gop) or self.gop < 3:
            raise VideoError(f"gop must be a whole number of frames, at least 3, got {self.gop!r}")
        if not isinstance(self.keep_metadata, bool):
            raise VideoError(f"keep_metadata must be True or False, got {self.keep_metadata!r}")
        if self.sample_rate not in _AAC_SAMPLE_RATES:
            raise VideoError(
                f"sample_rate {self.sample_rate!r} is not an AAC sample rate; use one of {_AAC_SAMPLE_RATES}"
            )


@dataclass(frozen=True)
class Segment:
    """A segment file and the number of output frames it fills.

    Its packets play cyclically: a still's GOP repeats, a clip with exactly `frames` packets plays once.
    """

    path: str
    frames: int

    def __post_init__(self) -> None:
        if not _is_int(self.frames) or self.frames < 1:
            raise VideoError(f"segment {self.path} must fill at least one frame, got frames={self.frames!r}")


@dataclass(frozen=True)
class AssemblyInfo:
    frames: int
    duration: float
    video_bytes: int
    audio_bytes: int
    file_bytes: int


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


# ---------------------------------------------------------------------------------------------- encoding


def _check_threads(threads: int) -> None:
    if not _is_int(threads) or threads < 0:
        raise VideoError(f"threads must be 0 (one per core) or a positive number, got {threads!r}")


def _open_encoder(settings: VideoSettings, *, still: bool, threads: int) -> av.VideoCodecContext:
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


def _to_yuv(frame: av.VideoFrame, width: int, height: int) -> av.VideoFrame:
    return frame.reformat(
        width=width,
        height=height,
        format="yuv420p",
        dst_colorspace=Colorspace.ITU709,
        dst_color_range=ColorRange.MPEG,
        interpolation="BICUBIC",
    )


def _encode_frames(
    frames: Iterator[av.VideoFrame], dest: str | os.PathLike[str], ctx: av.VideoCodecContext
) -> int:
    """Encode frames into a raw Annex B file at dest; remove it if anything fails."""
    path = Path(dest)
    count = 0
    try:
        with path.open("wb") as out:
            for frame in frames:
                frame.pts = count
                for packet in ctx.encode(frame):
                    out.write(bytes(packet))
                count += 1
            for packet in ctx.encode(None):
                out.write(bytes(packet))
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return count


def _load_image(image: str | os.PathLike[str] | Image.Image) -> Image.Image:
    if isinstance(image, Image.Image):
        return image
    try:
        with Image.open(image) as opened:
            opened.load()
            return opened.copy()
    except (OSError, ValueError) as error:
        raise VideoError(f"cannot read scene image {os.fspath(image)}: {error}") from error


def encode_still(
    image: str | os.PathLike[str] | Image.Image,
    dest: str | os.PathLike[str],
    *,
    settings: VideoSettings,
    threads: int = 0,
) -> None:
    """Encode one still as a closed GOP of `settings.gop` frames into a raw H.264 segment at dest.

    The image is cover-cropped to the output size (scaled to fill it, the overflow cut evenly).
    x264 codes only the IDR picture; the other frames are skip pictures (see `_skip_picture`).
    `threads` caps x264's threads; 0 lets it use every core, which oversubscribes a machine that
    already runs one encode per core (give 1 there, or the task's CPU share).
    """
    _check_threads(threads)
    picture = _load_image(image).convert("RGB")
    if picture.size != (settings.width, settings.height):
        picture = ImageOps.fit(picture, (settings.width, settings.height), method=Image.Resampling.LANCZOS)
    frame = _to_yuv(av.VideoFrame.from_image(picture), settings.width, settings.height)
    idr = _idr_picture(frame, _open_encoder(settings, still=True, threads=threads), limit=settings.gop)
    units = [unit for unit in _nal_units(idr) if unit]
    stream = _stream_format(units)
    path = Path(dest)
    try:
        with path.open("wb") as out:
            out.write(idr)
            for index in range(1, settings.gop):
                out.write(_skip_picture(stream, index))
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def _idr_picture(frame: av.VideoFrame, ctx: av.VideoCodecContext, *, limit: int) -> bytes:
    """x264's first picture of a GOP of `limit` copies of frame, without coding the rest of the GOP.

    x264 sets the IDR's quantizers from the frames in its lookahead (for a still, every later frame
    refers back to it, so macroblock-tree spends more bits on it), and emits it once the lookahead
    is full. Until then the lookahead holds exactly what a full encode of the GOP would hold, so the
    IDR is byte for byte the one a full encode writes; the encoder is then dropped unflushed.
    """
    for index in range(limit):
        frame.pts = index
        packets = ctx.encode(frame)
        if packets:
            return bytes(packets[0])
    return bytes(ctx.encode(None)[0])


def _retimed(
    frames: Iterator[av.VideoFrame], *, fps: int, fallback_rate: Fraction
) -> Iterator[av.VideoFrame]:
    """Turn decoded frames into a constant-rate sequence: output tick i shows the frame on screen at i/fps.

    Frames are duplicated or dropped by their timestamps; the clip keeps its length, rounded to whole frames.
    """
    shown: av.VideoFrame | None = None
    start = shown_at = Fraction(0)
    shown_for = 1 / fallback_rate
    emitted = 0
    for frame in frames:
        if frame.pts is not None and frame.time_base is not None:
            at = Fraction(frame.pts) * frame.time_base
        else:
            at = shown_at + shown_for if shown is not None else Fraction(0)
        if shown is None:
            start = at
        at -= start
        if shown is not None:
            while Fraction(emitted, fps) < at:
                yield shown
                emitted += 1
        shown, shown_at = frame, at
        if frame.duration and frame.time_base is not None:
            shown_for = Fraction(frame.duration) * frame.time_base
        else:
            shown_for = 1 / fallback_rate
    if shown is not None:
        total = max(round((shown_at + shown_for) * fps), emitted, 1)
        while emitted < total:
            yield shown
            emitted += 1


def _held_off_idr(frames: Iterator[av.VideoFrame], *, gop: int) -> Iterator[av.VideoFrame]:
    """Show the last frame once more when the clip would otherwise end on a lone IDR picture.

    x264 numbers its IDR pictures 0, 1, 0, ..., and every still segment opens with IDR 0; an IDR
    as the clip's last frame could meet the next scene's IDR with the same idr_pic_id.
    """
    count = 0
    last: av.VideoFrame | None = None
    for frame in frames:
        if last is not None:
            yield last
            count += 1
        last = frame
    if last is not None:
        yield last
        if count % gop == 0:
            yield last


def _letterboxed(frame: av.VideoFrame, *, width: int, height: int, aspect: Fraction) -> av.VideoFrame:
    """Scale to fit inside width x height keeping the display aspect; pad the rest with black."""
    display_width = frame.width * aspect
    scale = min(Fraction(width) / display_width, Fraction(height, frame.height))
    fit_w = min(width, max(2, 2 * round(display_width * scale / 2)))
    fit_h = min(height, max(2, 2 * round(frame.height * scale / 2)))
    fitted = _to_yuv(frame, fit_w, fit_h)
    if (fit_w, fit_h) == (width, height):
        return fitted
    planes = fitted.to_ndarray()  # yuv420p: Y rows, then U and V rows packed at half width
    canvas = np.empty((height * 3 // 2, width), dtype=np.uint8)
    canvas[:height] = 16  # black in limited range
    canvas[height:] = 128
    # Offsets stay even so the half-resolution chroma lines up with luma.
    x0 = (width - fit_w) // 4 * 2
    y0 = (height - fit_h) // 4 * 2
    canvas[y0 : y0 + fit_h, x0 : x0 + fit_w] = planes[:fit_h]
    chroma = planes[fit_h:].reshape(2, fit_h // 2, fit_w // 2)
    out_chroma = canvas[height:].reshape(2, height // 2, width // 2)
    out_chroma[:, y0 // 2 : (y0 + fit_h) // 2, x0 // 2 : (x0 + fit_w) // 2] = chroma
    boxed = av.VideoFrame.from_ndarray(canvas, format="yuv420p")
    boxed.colorspace = Colorspace.ITU709
    boxed.color_range = ColorRange.MPEG
    boxed.pts, boxed.time_base, boxed.duration = frame.pts, frame.time_base, frame.duration
    return boxed


def encode_clip(
    source: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    *,
    settings: VideoSettings,
    threads: int = 0,
) -> int:
    """Re-encode a clip (an intro of any size and frame rate) into a segment at dest; return its frame count.

    Frames are duplicated or dropped by timestamp to `settings.fps`, scaled to fit and letterboxed
    in black. The clip's audio is left to the caller. `threads` is as for `encode_still`.
    """
    _check_threads(threads)
    name = os.fspath(source)
    try:
        container = av.open(name)
    except (av.FFmpegError, OSError) as error:
        raise VideoError(f"cannot read intro clip {name}: {error}") from error
    with container:
        if not container.streams.video:
            raise VideoError(f"intro clip {name} has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        aspect = stream.codec_context.sample_aspect_ratio or Fraction(1)
        rate = stream.average_rate or stream.guessed_rate or Fraction(settings.fps)
        # Letterbox each decoded frame once, before retiming repeats some of them.
        boxed = (
            _letterboxed(frame, width=settings.width, height=settings.height, aspect=Fraction(aspect))
            for frame in container.decode(stream)
        )
        retimed = _retimed(boxed, fps=settings.fps, fallback_rate=Fraction(rate))
        frames = _held_off_idr(retimed, gop=settings.gop)
        try:
            count = _encode_frames(frames, dest, _open_encoder(settings, still=False, threads=threads))
        except av.FFmpegError as error:
            raise VideoError(f"cannot decode intro clip {name}: {error}") from error
    if count == 0:
        Path(dest).unlink(missing_ok=True)
        raise VideoError(f"intro clip {name} has no video frames")
    return count


# ---------------------------------------------------------------------------------------------- assembly

_START_CODE = b"\x00\x00\x01"
_NAL_SLICE, _NAL_IDR, _NAL_SEI, _NAL_SPS, _NAL_PPS = 1, 5, 6, 7, 8
_SEI_USER_DATA_UNREGISTERED = 5


@dataclass(frozen=True)
class _SegmentPackets:
    path: str
    frames: int
    packets: list[bytes]  # one Annex B access unit each, the first an IDR
    keyframes: list[bool]
    headers: tuple[bytes, ...]  # the first packet's SPS and PPS


def _nal_units(data: bytes) -> list[bytes]:
    """Split an Annex B stream into NAL units, start codes removed.

    Emulation prevention guarantees 00 00 01 never occurs inside a unit; the zero byte of a
    four-byte start code is left on the previous unit, whose last byte is never zero, so strip it.
    """
    starts = []
    at = data.find(_START_CODE)
    while at >= 0:
        starts.append(at + 3)
        at = data.find(_START_CODE, at + 3)
    if not starts:
        return []
    ends = [start - 3 for start in starts[1:]] + [len(data)]
    return [data[start:end].rstrip(b"\x00") for start, end in zip(starts, ends, strict=True)]


def _access_units(data: bytes) -> list[list[bytes]]:
    """Group NAL units into pictures: a picture starts at SEI/SPS/PPS/AUD or at a first slice (mb 0)."""
    pictures: list[list[bytes]] = []
    current: list[bytes] = []
    has_slice = False
    for unit in _nal_units(data):
        if not unit:
            continue
        kind = unit[0] & 0x1F
        is_slice = kind in (_NAL_SLICE, _NAL_IDR)
        # first_mb_in_slice is ue(v); a leading 1 bit means it is 0, a new picture.
        opens_picture = kind in (_NAL_SEI, _NAL_SPS, _NAL_PPS, 9) or (
            is_slice and len(unit) > 1 and unit[1] & 0x80
        )
        if opens_picture and has_slice:
            pictures.append(current)
            current, has_slice = [], False
        current.append(unit)
        has_slice = has_slice or is_slice
    if current:
        pictures.append(current)
    return pictures


def _is_encoder_sei(unit: bytes) -> bool:
    # x264 writes its version and full settings as a user-data-unregistered SEI message in its own unit.
    return unit[0] & 0x1F == _NAL_SEI and len(unit) > 1 and unit[1] == _SEI_USER_DATA_UNREGISTERED


# ------------------------------------------------------------------------------------------- skip pictures
# A still's GOP after its IDR is the same picture again and again. Rather than have x264 search and
# code 47 frames only to decide that every macroblock is skipped (most of a still's encode time),
# those frames are written here as one P slice of P_Skip macroblocks each: motion vector zero, no
# residual, deblocking off, so every one decodes to an exact copy of the IDR picture. They use
# x264's own SPS and PPS, so a skip picture's header follows whatever those say.


class _BitReader:
    def __init__(self, rbsp: bytes) -> None:
        self._value = int.from_bytes(rbsp, "big")
        self._left = len(rbsp) * 8

    def u(self, width: int) -> int:
        self._left -= width
        if self._left < 0:
            raise VideoError("H.264 parameter set ends early")
        return (self._value >> self._left) & ((1 << width) - 1)

    def ue(self) -> int:
        zeros = 0
        while not self.u(1):
            zeros += 1
        return (1 << zeros) - 1 + self.u(zeros)

    def se(self) -> int:
        code = self.ue()
        return (code + 1) // 2 if code % 2 else -(code // 2)


class _BitWriter:
    def __init__(self) -> None:
        self.bits: list[int] = []

    def u(self, value: int, width: int) -> None:
        self.bits.extend((value >> shift) & 1 for shift in range(width - 1, -1, -1))

    def ue(self, value: int) -> None:
        code = value + 1
        self.u(0, code.bit_length() - 1)
        self.u(code, code.bit_length())

    def se(self, value: int) -> None:
        self.ue(2 * value - 1 if value > 0 else -2 * value)

    def align(self, bit: int) -> None:
        self.bits.extend([bit] * (-len(self.bits) % 8))

    def to_bytes(self) -> bytes:
        return int("".join(map(str, self.bits)), 2).to_bytes(len(self.bits) // 8, "big")


def _unescaped(unit: bytes) -> bytes:
    """A NAL unit's payload without its emulation prevention bytes (00 00 03 -> 00 00)."""
    return unit[1:].replace(b"\x00\x00\x03", b"\x00\x00")


def _escaped(rbsp: bytes) -> bytes:
    """Insert emulation prevention bytes so no 00 00 0x (x <= 3) start code appears in a NAL unit."""
    out = bytearray()
    zeros = 0
    for byte in rbsp:
        if zeros >= 2 and byte <= 3:
            out.append(3)
            zeros = 0
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(out)


@dataclass(frozen=True)
class _StreamFormat:
    """What a P slice header depends on, from an SPS and PPS (H.264 7.3.2.1, 7.3.2.2)."""

    macroblocks: int
    frame_num_bits: int
    poc_lsb_bits: int | None  # None for pic_order_cnt_type 2, where order follows frame_num
    pps_id: int
    cabac: bool
    bottom_field_poc: bool
    weighted_pred: bool
    slice_qp_delta: int  # to QP 51, where an all-skip slice costs CABAC the fewest bits
    deblocking_control: bool
    redundant_pic_cnt: bool


_HIGH_PROFILES = (100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135)


def _stream_format(units: Sequence[bytes]) -> _StreamFormat:
    sps = next((unit for unit in units if unit[0] & 0x1F == _NAL_SPS), None)
    pps = next((unit for unit in units if unit[0] & 0x1F == _NAL_PPS), None)
    if sps is None or pps is None:
        raise VideoError("the encoder wrote no in-band SPS/PPS")
    bits = _BitReader(_unescaped(sps))
    profile = bits.u(8)
    bits.u(16)  # constraint flags, level
    bits.ue()  # seq_parameter_set_id
    if profile in _HIGH_PROFILES:
        if bits.ue() == 3:  # chroma_format_idc
            bits.u(1)
        bits.ue(), bits.ue(), bits.u(1)  # bit depths, qpprime_y_zero_transform_bypass
        if bits.u(1):
            raise VideoError("skip pictures do not support SPS scaling matrices")
    frame_num_bits = bits.ue() + 4
    poc_type = bits.ue()
    poc_lsb_bits = bits.ue() + 4 if poc_type == 0 else None
    if poc_type == 1:
        raise VideoError("skip pictures do not support pic_order_cnt_type 1")
    bits.ue(), bits.u(1)  # max_num_ref_frames, gaps_in_frame_num_value_allowed
    width, height = bits.ue() + 1, bits.ue() + 1
    if not bits.u(1):
        raise VideoError("skip pictures need progressive frames (frame_mbs_only)")
    bits = _BitReader(_unescaped(pps))
    pps_id = bits.ue()
    bits.ue()  # seq_parameter_set_id
    cabac, bottom_field_poc = bool(bits.u(1)), bool(bits.u(1))
    if bits.ue():
        raise VideoError("skip pictures do not support slice groups")
    bits.ue(), bits.ue()  # default active reference counts; skip slices override them
    weighted_pred = bool(bits.u(1))
    bits.u(2)  # weighted_bipred_idc
    init_qp = 26 + bits.se()
    bits.se(), bits.se()  # pic_init_qs, chroma_qp_index_offset
    deblocking_control = bool(bits.u(1))
    bits.u(1)  # constrained_intra_pred
    return _StreamFormat(
        macroblocks=width * height,
        frame_num_bits=frame_num_bits,
        poc_lsb_bits=poc_lsb_bits,
        pps_id=pps_id,
        cabac=cabac,
        bottom_field_poc=bottom_field_poc,
        weighted_pred=weighted_pred,
        slice_qp_delta=51 - init_qp,
        deblocking_control=deblocking_control,
        redundant_pic_cnt=bool(bits.u(1)),
    )


# Table 9-44 (rangeTabLPS) from pStateIdx 42 on: at QP 51 with cabac_init_idc 0 the mb_skip_flag
# context starts at state 42 with skip as its most probable symbol, and a run of most probable
# symbols only ever climbs to state 62.
_SKIP_STATE, _LAST_STATE = 42, 62
_RANGE_LPS_TEXT = """
    16 20 23 27   15 19 22 25   14 18 21 24   14 17 20 23   13 16 19 22   12 15 18 21   12 14 17 20
    11 14 16 19   11 13 15 18   10 12 15 17   10 12 14 16    9 11 13 15    9 11 12 14    8 10 12 14
     8  9 11 13    7  9 11 12    7  9 10 12    7  8 10 11    6  8  9 11    6  7  9 10    6  7  8  9
"""
_RANGE_LPS = np.array(_RANGE_LPS_TEXT.split(), dtype=int).reshape(-1, 4).tolist()


@functools.cache
def _skip_slice_data(macroblocks: int) -> bytes:
    """CABAC slice data (9.3.4) for `macroblocks` P_Skip macroblocks, after the alignment bits.

    Each macroblock codes mb_skip_flag = 1 (its context stays at ctxIdx 11: no neighbour is coded)
    and end_of_slice_flag, 1 only after the last. The arithmetic coder here follows the standard's
    bit-serial description; its final flush writes the rbsp_stop_one_bit.
    """
    out = _BitWriter()
    low, span, state = 0, 510, _SKIP_STATE
    first, outstanding = True, 0

    def put(bit: int) -> None:
        nonlocal first, outstanding
        if first:
            first = False
        else:
            out.bits.append(bit)
        out.bits.extend([1 - bit] * outstanding)
        outstanding = 0

    def renormalize() -> None:
        nonlocal low, span, outstanding
        while span < 256:
            if low < 256:
                put(0)
            elif low >= 512:
                low -= 512
                put(1)
            else:
                low -= 256
                outstanding += 1
            span <<= 1
            low <<= 1

    for index in range(macroblocks):
        span -= _RANGE_LPS[state - _SKIP_STATE][(span >> 6) & 3]  # mb_skip_flag = 1, the MPS
        state = min(state + 1, _LAST_STATE)
        renormalize()
        span -= 2  # end_of_slice_flag, coded with the terminating bin
        if index < macroblocks - 1:
            renormalize()
    low += span
    span = 2
    renormalize()
    put((low >> 9) & 1)
    out.u(((low >> 7) & 3) | 1, 2)
    out.align(0)
    return out.to_bytes()


def _skip_picture(stream: _StreamFormat, index: int) -> bytes:
    """The index-th picture after an IDR, as an Annex B access unit that repeats the previous picture.

    A reference P picture (frame_num counts up from the IDR's 0) with one reference, no weights,
    sliding-window marking, deblocking off and every macroblock skipped.
    """
    bits = _BitWriter()
    bits.u(0b0_10_00001, 8)  # forbidden_zero_bit, nal_ref_idc 2, nal_unit_type 1 (non-IDR slice)
    bits.ue(0)  # first_mb_in_slice
    bits.ue(5)  # slice_type P, and every slice of the picture is P
    bits.ue(stream.pps_id)
    bits.u(index % (1 << stream.frame_num_bits), stream.frame_num_bits)
    if stream.poc_lsb_bits is not None:
        bits.u(2 * index % (1 << stream.poc_lsb_bits), stream.poc_lsb_bits)
        if stream.bottom_field_poc:
            bits.se(0)
    if stream.redundant_pic_cnt:
        bits.ue(0)
    bits.u(1, 1)  # num_ref_idx_active_override_flag
    bits.ue(0)  # one reference: the previous picture, itself a copy of the IDR
    bits.u(0, 1)  # ref_pic_list_modification_flag_l0
    if stream.weighted_pred:
        bits.ue(0), bits.ue(0)  # luma and chroma log2 weight denominators
        bits.u(0, 2)  # no luma or chroma weight for the one reference
    bits.u(0, 1)  # adaptive_ref_pic_marking_mode_flag: sliding window
    if stream.cabac:
        bits.ue(0)  # cabac_init_idc
    bits.se(stream.slice_qp_delta)
    if stream.deblocking_control:
        bits.ue(1)  # disable_deblocking_filter_idc: nothing to filter in a copy
    if stream.cabac:
        bits.align(1)  # cabac_alignment_one_bit
        rbsp = bits.to_bytes() + _skip_slice_data(stream.macroblocks)
    else:
        bits.ue(stream.macroblocks)  # mb_skip_run: the whole picture
        bits.u(1, 1)  # rbsp_stop_one_bit
        bits.align(0)
        rbsp = bits.to_bytes()
    return b"\x00\x00\x00\x01" + rbsp[:1] + _escaped(rbsp[1:])


def _read_segment(segment: Segment, *, keep_metadata: bool) -> _SegmentPackets:
    name = os.fspath(segment.path)
    try:
        data = Path(name).read_bytes()
    except OSError as error:
        raise VideoError(f"cannot read segment {name}: {error}") from error
    pictures = _access_units(data)
    if not pictures or not any(unit[0] & 0x1F == _NAL_IDR for unit in pictures[0]):
        raise VideoError(f"segment {name} is not an H.264 stream starting with an IDR picture")
    packets, keyframes = [], []
    for picture in pictures:
        units = picture if keep_metadata else [unit for unit in picture if not _is_encoder_sei(unit)]
        packets.append(b"".join(b"\x00\x00\x00\x01" + unit for unit in units))
        keyframes.append(any(unit[0] & 0x1F == _NAL_IDR for unit in units))
    headers = tuple(unit for unit in pictures[0] if unit[0] & 0x1F in (_NAL_SPS, _NAL_PPS))
    if not headers:
        raise VideoError(f"segment {name} has no in-band SPS/PPS; encode it with encode_still or encode_clip")
    return _SegmentPackets(name, segment.frames, packets, keyframes, headers)


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


def _stereo_track(audio: np.ndarray, *, samples: int) -> np.ndarray:
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
_AAC_FRAME = 1024
_AUDIO_CHUNK_MIN_SECONDS = 15.0
_AUDIO_PREROLL_FRAMES = 96
_AUDIO_SPLICE_FRAMES = 16
_ONLY_LONG, _LONG_START, _EIGHT_SHORT, _LONG_STOP = range(4)


def _aac_encoder(sample_rate: int) -> av.AudioCodecContext:
    ctx = cast(av.AudioCodecContext, av.CodecContext.create("aac", "w"))
    ctx.sample_rate = sample_rate
    ctx.layout = "stereo"
    ctx.format = "fltp"
    ctx.bit_rate = _AUDIO_BIT_RATE
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
    for at in range(boundary, boundary + (_AUDIO_SPLICE_FRAMES - 4) * _AAC_FRAME, _AAC_FRAME):
        last = _window(before.get(at - _AAC_FRAME))
        first = _window(after.get(at))
        shape_before = _window(after.get(at - _AAC_FRAME))
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


def _encode_audio(track: np.ndarray, sample_rate: int, *, workers: int) -> list[av.Packet]:
    """AAC packets for a stereo track, in order, encoded by up to `workers` encoders at once."""
    samples = track.shape[1]
    chunks = max(1, min(workers, int(samples // (_AUDIO_CHUNK_MIN_SECONDS * sample_rate))))
    frames = -(-samples // _AAC_FRAME)
    bounds = [round(index * frames / chunks) * _AAC_FRAME for index in range(1, chunks)]
    starts = [0] + [bound - _AUDIO_PREROLL_FRAMES * _AAC_FRAME for bound in bounds]
    stops = [bound + _AUDIO_SPLICE_FRAMES * _AAC_FRAME for bound in bounds] + [samples]
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


def assemble(
    segments: Sequence[Segment],
    audio: np.ndarray,
    dest: str | os.PathLike[str],
    *,
    settings: VideoSettings,
    threads: int = 0,
) -> AssemblyInfo:
    """Mux segments, in order, and an audio track into one faststart MP4 at dest.

    `audio` is float32 (channels, samples) at `settings.sample_rate`; mono is duplicated to stereo.
    It is padded with silence or trimmed to exactly the video's length. Encoder and creation
    metadata are left out unless `settings.keep_metadata`. dest is written in place: the caller
    renames it into the store. `threads` caps the AAC encoders run at once (0: one per core).
    """
    _check_threads(threads)
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
    track = _stereo_track(audio, samples=samples)

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
        sound.bit_rate = _AUDIO_BIT_RATE
        if settings.keep_metadata:
            out.metadata["creation_time"] = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

        audio_packets = _encode_audio(track, settings.sample_rate, workers=threads or os.cpu_count() or 1)
        audio_bytes = sum(packet.size for packet in audio_packets)
        pending_audio = iter(audio_packets)
        next_audio = next(pending_audio, None)

        index = 0
        for part in parts:
            for position in _packet_order(len(part.packets), part.frames):
                # Interleave: audio up to a second ahead of the video, for progressive playback
                # (pts / sample_rate <= index / fps + 1, in integers: this runs once a frame).
                while next_audio is not None and next_audio.pts * fps <= (index + fps) * settings.sample_rate:
                    next_audio.stream = sound
                    out.mux(next_audio)
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
        while next_audio is not None:
            next_audio.stream = sound
            out.mux(next_audio)
            next_audio = next(pending_audio, None)
    return AssemblyInfo(
        frames=frames,
        duration=frames / settings.fps,
        video_bytes=video_bytes,
        audio_bytes=audio_bytes,
        file_bytes=os.path.getsize(dest),
    )


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
