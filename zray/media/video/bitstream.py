"""H.264 at the bitstream level: Annex B parsing, parameter sets, and skip pictures written by hand.

`mux` splits segment files into pictures with `access_units`; `still` writes every picture of a
still's GOP after the IDR with `skip_picture`. Both follow the H.264 standard (ITU-T H.264, cited
by section) and x264's own SPS/PPS, never a second encoder.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from zray.media.video.settings import VideoError

_START_CODE = b"\x00\x00\x01"
NAL_SLICE, NAL_IDR, NAL_SEI, NAL_SPS, NAL_PPS = 1, 5, 6, 7, 8
_SEI_USER_DATA_UNREGISTERED = 5


def nal_units(data: bytes) -> list[bytes]:
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


def access_units(data: bytes) -> list[list[bytes]]:
    """Group NAL units into pictures: a picture starts at SEI/SPS/PPS/AUD or at a first slice (mb 0)."""
    pictures: list[list[bytes]] = []
    current: list[bytes] = []
    has_slice = False
    for unit in nal_units(data):
        if not unit:
            continue
        kind = unit[0] & 0x1F
        is_slice = kind in (NAL_SLICE, NAL_IDR)
        # first_mb_in_slice is ue(v); a leading 1 bit means it is 0, a new picture.
        opens_picture = kind in (NAL_SEI, NAL_SPS, NAL_PPS, 9) or (
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


def is_encoder_sei(unit: bytes) -> bool:
    # x264 writes its version and full settings as a user-data-unregistered SEI message in its own unit.
    return unit[0] & 0x1F == NAL_SEI and len(unit) > 1 and unit[1] == _SEI_USER_DATA_UNREGISTERED


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


def unescaped(unit: bytes) -> bytes:
    """A NAL unit's payload without its emulation prevention bytes (00 00 03 -> 00 00)."""
    return unit[1:].replace(b"\x00\x00\x03", b"\x00\x00")


def escaped(rbsp: bytes) -> bytes:
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
class StreamFormat:
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


def stream_format(units: Sequence[bytes]) -> StreamFormat:
    sps = next((unit for unit in units if unit[0] & 0x1F == NAL_SPS), None)
    pps = next((unit for unit in units if unit[0] & 0x1F == NAL_PPS), None)
    if sps is None or pps is None:
        raise VideoError("the encoder wrote no in-band SPS/PPS")
    bits = _BitReader(unescaped(sps))
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
    bits = _BitReader(unescaped(pps))
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
    return StreamFormat(
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


def skip_picture(stream: StreamFormat, index: int) -> bytes:
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
    return b"\x00\x00\x00\x01" + rbsp[:1] + escaped(rbsp[1:])
