"""Generated clips (a scene's picture set in motion by a video engine) on the output's frame grid.

A clip is made at `CLIP_FPS` and `clip_frames(seconds)` frames: Wan's VAE packs 4 frames into one
latent after the first, so a clip has 4n + 1 frames. The engine makes it at the size
`clip_size` gives (a model has a native number of pixels; the draft engine uses the frame's own
size), the media code fits it to the frame as a studio clip is fitted, and a scene longer than the
clip goes on from the clip's last frame under `continuation_move`: a slow zoom that starts from the
whole frame (so no jump) at its cruising speed (so no freeze). Stdlib only: the
planner puts these numbers into keys.
"""

from __future__ import annotations

import hashlib
import math

from zray.media.moves import ZOOM, Move

__all__ = ["CLIP_FPS", "CONTINUATION_EASE", "clip_frames", "clip_size", "continuation_move"]

CLIP_FPS = 24  # Wan2.2's own rate; the draft engine keeps it so both profiles time clips alike
# The clip was moving: a continuation sets off at its cruising speed (8% of zoom in 20 s, too slow
# to read as a jolt); easing in from rest would stall the picture for a few frames.
CONTINUATION_EASE = 0.0
# Where a continuation zooms towards: the thirds and the centre, as the gentle moves do.
_FOCI = ((1 / 3, 1 / 3), (2 / 3, 1 / 3), (1 / 3, 2 / 3), (2 / 3, 2 / 3), (0.5, 0.4), (0.5, 0.6))


def clip_frames(seconds: float) -> int:
    """Frames of a clip of about `seconds` at CLIP_FPS: 4 * round(seconds * 24 / 4) + 1, at least 5."""
    if not (isinstance(seconds, int | float) and not isinstance(seconds, bool) and seconds > 0):
        raise ValueError(f"clip seconds must be a positive number, not {seconds!r}")
    return 4 * max(1, round(seconds * CLIP_FPS / 4)) + 1


def clip_size(width: int, height: int, *, max_pixels: int | None, multiple: int = 16) -> tuple[int, int]:
    """The size a clip is made at for a width x height frame: the frame itself when the engine has
    no native size (`max_pixels` None), else the frame's shape scaled to about `max_pixels`, each
    side a multiple of `multiple` (Wan2.2 5B: 1280x704 for a 16:9 frame)."""
    if max_pixels is None:
        return width, height
    scale = math.sqrt(max_pixels / (width * height))
    w = max(multiple, round(width * scale / multiple) * multiple)
    h = max(multiple, round(height * scale / multiple) * multiple)
    while w * h > max_pixels and (w > multiple or h > multiple):  # rounding up may overshoot
        if w / width >= h / height and w > multiple:
            w -= multiple
        else:
            h -= multiple
    return w, h


def continuation_move(key: str) -> Move:
    """The move that carries a scene on past its clip's last frame, chosen from the clip's key: a
    zoom in from the whole frame towards a third or the centre."""
    digest = hashlib.sha256(f"continuation:{key}".encode()).digest()
    focus = _FOCI[digest[0] % len(_FOCI)]
    return Move("zoom-in", 1.0, 1.0 + ZOOM, (0.5, 0.5), focus, ease_seconds=CONTINUATION_EASE)
