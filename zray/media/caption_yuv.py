"""Burned-in captions laid onto yuv420p frames, the encoder's own format: no RGB round trip per frame.

A caption overlay (`zray.media.captions`, premultiplied RGBA) is converted once per caption state
into premultiplied BT.709 limited-range planes: YUV is an affine function of RGB, so blending in
YUV is the same blend as in RGB, `out = overlay + frame * (255 - alpha) / 255`, with the constant
terms (16 for luma, 128 for chroma) premultiplied by alpha. Chroma takes the alpha and colour
averaged over each 2x2 block, as the subsampling itself would. The overlay is widened by one pixel
where it starts or ends on an odd row or column, so its chroma blocks line up with the frame's.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from zray.media.captions import CaptionState, Overlay, blend

__all__ = ["YuvOverlay", "burn", "composite_yuv", "to_yuv_overlay"]

# BT.709 luma and colour-difference weights of (R, G, B), scaled to limited range (219 and 224 steps).
_KR, _KB = 0.2126, 0.0722
_KG = 1 - _KR - _KB
_Y = np.array([_KR, _KG, _KB], np.float32) * (219 / 255)
_CB = np.array([-_KR / (2 * (1 - _KB)), -_KG / (2 * (1 - _KB)), 0.5], np.float32) * (224 / 255)
_CR = np.array([0.5, -_KG / (2 * (1 - _KR)), -_KB / (2 * (1 - _KR))], np.float32) * (224 / 255)


@dataclass(frozen=True)
class YuvOverlay:
    """Premultiplied luma and chroma with their inverse alphas (255 - alpha), as uint16, placed with
    its top left at (x, y), both even."""

    x: int
    y: int
    luma: np.ndarray
    luma_inverse: np.ndarray
    cb: np.ndarray
    cr: np.ndarray
    chroma_inverse: np.ndarray


def to_yuv_overlay(overlay: Overlay) -> YuvOverlay:
    pixels = overlay.pixels
    pad_left, pad_top = overlay.x % 2, overlay.y % 2
    h, w = pixels.shape[:2]
    pad_bottom, pad_right = (pad_top + h) % 2, (pad_left + w) % 2
    rgba = np.pad(pixels, ((pad_top, pad_bottom), (pad_left, pad_right), (0, 0))).astype(np.float32)
    rgb, alpha = rgba[..., :3], rgba[..., 3]
    luma = 16 * alpha / 255 + rgb @ _Y
    blocks = rgba.reshape(rgba.shape[0] // 2, 2, rgba.shape[1] // 2, 2, 4).mean(axis=(1, 3))
    block_rgb, block_alpha = blocks[..., :3], blocks[..., 3]
    cb = 128 * block_alpha / 255 + block_rgb @ _CB
    cr = 128 * block_alpha / 255 + block_rgb @ _CR

    def as_u16(values: np.ndarray) -> np.ndarray:
        return np.clip(np.rint(values), 0, 255).astype(np.uint16)

    return YuvOverlay(
        x=overlay.x - pad_left,
        y=overlay.y - pad_top,
        luma=as_u16(luma),
        luma_inverse=as_u16(255 - alpha),
        cb=as_u16(cb),
        cr=as_u16(cr),
        chroma_inverse=as_u16(255 - block_alpha),
    )


def composite_yuv(frame: np.ndarray, overlay: YuvOverlay) -> None:
    """Lay the overlay on a packed yuv420p frame (height * 3 // 2, width), in place."""
    height = frame.shape[0] * 2 // 3
    width = frame.shape[1]
    y_plane = frame[:height]
    chroma = frame[height:].reshape(2, height // 2, width // 2)
    h, w = overlay.luma.shape
    blend(y_plane[overlay.y : overlay.y + h, overlay.x : overlay.x + w], overlay.luma, overlay.luma_inverse)
    cy, cx = overlay.y // 2, overlay.x // 2
    ch, cw = overlay.cb.shape
    blend(chroma[0, cy : cy + ch, cx : cx + cw], overlay.cb, overlay.chroma_inverse)
    blend(chroma[1, cy : cy + ch, cx : cx + cw], overlay.cr, overlay.chroma_inverse)


def burn(
    frames: Iterable[np.ndarray], states: Sequence[CaptionState], *, start: int = 0
) -> Iterator[np.ndarray]:
    """The frames (the first numbered `start`) with the caption state showing on each laid over it.
    States are walked in order and each converted once; a frame is copied only when a caption
    covers it (frames may be shared, as a still scene's are)."""
    ordered = iter(states)
    state = next(ordered, None)
    converted: YuvOverlay | None = None
    for index, frame in enumerate(frames, start=start):
        while state is not None and state.end_frame <= index:
            state, converted = next(ordered, None), None
        if state is None or index < state.start_frame:
            yield frame
            continue
        if converted is None:
            converted = to_yuv_overlay(state.overlay)
        out = frame.copy()
        composite_yuv(out, converted)
        yield out
