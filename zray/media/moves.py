"""Gentle camera moves on a still picture (Ken Burns), as a crop window over time.

A move is defined by speed, not by duration: the window travels at the same pace whatever the
scene's length, easing in from rest at the scene's first frame and never easing out, so a scene's
frames in a short language are exactly the first frames of the same scene in a long one. Instead of
stopping at the end of its range (which would depend on where the scene ends), a move slows
asymptotically past most of it, so the window never leaves the picture however long the scene.

Which move a scene gets (zoom in or out, pan across, and towards what) comes from its key, so a
rerun chooses the same one. Stdlib only: the planner puts moves into cache keys.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

__all__ = ["ZOOM", "Move", "Window", "choose_move", "cover_box", "travelled", "window"]

# How far a move zooms into the picture: the frame shows at least 1 / (1 + ZOOM) of it. A few
# percent reads as a camera drifting, not as a zoom; an image needs (1 + ZOOM) times the frame's
# pixels to stay sharp at the deepest point.
ZOOM = 0.08
# Seconds a move would take to cover its whole range at full speed (most scenes last 10-30 s).
SPAN_SECONDS = 20.0
# Seconds over which the move gathers speed from rest (a smoothstep in velocity: no jolt).
EASE_SECONDS = 1.5
# Past this share of its range a move slows exponentially instead of reaching the end.
_KNEE = 0.8


@dataclass(frozen=True)
class Move:
    """A window over a picture that zooms from `zoom_from` to `zoom_to` (1 = the whole picture,
    cover-fitted to the frame) while its centre goes from `focus_from` to `focus_to`.

    A focus is where the window sits within the picture's free margin at that zoom, per axis:
    0 at the left (top) edge, 0.5 centred, 1 at the right (bottom) edge. So no focus can ever show
    past the picture's edge.
    """

    name: str
    zoom_from: float
    zoom_to: float
    focus_from: tuple[float, float]
    focus_to: tuple[float, float]
    span_seconds: float = SPAN_SECONDS
    ease_seconds: float = EASE_SECONDS

    def progress(self, seconds: float) -> float:
        """How far along its range the move is, `seconds` after the scene's first frame: 0 at rest,
        approaching 1 but never passing it."""
        s = travelled(seconds, ease=self.ease_seconds) / self.span_seconds
        if s <= _KNEE:
            return s
        # Same value and speed at the knee, then an exponential approach to the end of the range.
        rest = 1.0 - _KNEE
        return 1.0 - rest * math.exp(-(s - _KNEE) / rest)

    @property
    def max_zoom(self) -> float:
        return max(self.zoom_from, self.zoom_to)


def travelled(seconds: float, *, ease: float) -> float:
    """Distance covered `seconds` after setting off from rest, in seconds at full speed: the speed
    ramps up over `ease` seconds as smoothstep (no jolt), then holds."""
    t = max(0.0, seconds)
    if ease <= 0:
        return t
    if t < ease:
        x = t / ease
        # Velocity ramps as smoothstep(x) = 3x^2 - 2x^3; distance is its integral.
        return ease * (x**3 - x**4 / 2)
    return ease / 2 + (t - ease)


@dataclass(frozen=True)
class Window:
    """A crop window in a picture's pixel coordinates (floats: sub-pixel positions)."""

    left: float
    top: float
    right: float
    bottom: float

    @property
    def box(self) -> tuple[float, float, float, float]:
        return (self.left, self.top, self.right, self.bottom)


def cover_box(width: int, height: int, *, frame_width: int, frame_height: int) -> Window:
    """The largest centred window of the frame's aspect inside a width x height picture."""
    aspect = frame_width / frame_height
    if width / height > aspect:
        w = height * aspect
        return Window((width - w) / 2, 0.0, (width + w) / 2, float(height))
    h = width / aspect
    return Window(0.0, (height - h) / 2, float(width), (height + h) / 2)


def window(move: Move | None, seconds: float, *, base: Window) -> Window:
    """Where the move's window stands `seconds` into the scene, inside `base` (the cover-fitted
    picture). No move: the base itself."""
    if move is None:
        return base
    p = move.progress(seconds)
    # Zoom in log space: equal times give equal ratios, which the eye reads as a steady speed.
    zoom = move.zoom_from * (move.zoom_to / move.zoom_from) ** p
    fx = move.focus_from[0] + (move.focus_to[0] - move.focus_from[0]) * p
    fy = move.focus_from[1] + (move.focus_to[1] - move.focus_from[1]) * p
    base_w, base_h = base.right - base.left, base.bottom - base.top
    w, h = base_w / zoom, base_h / zoom
    left = base.left + fx * (base_w - w)
    top = base.top + fy * (base_h - h)
    return Window(left, top, left + w, top + h)


# Points a zoom may head for: the thirds, where a picture's subject usually sits, and the centre.
_FOCI = ((1 / 3, 1 / 3), (2 / 3, 1 / 3), (1 / 3, 2 / 3), (2 / 3, 2 / 3), (0.5, 0.4), (0.5, 0.6))


def choose_move(key: str) -> Move:
    """The gentle move for a scene, chosen from its key (deterministic: the same key, the same move)."""
    digest = hashlib.sha256(f"move:{key}".encode()).digest()
    focus = _FOCI[digest[1] % len(_FOCI)]
    deep = 1.0 + ZOOM
    mid = (0.5, 0.5)
    kind = digest[0] % 6
    if kind in (0, 1):
        return Move("zoom-in", 1.0, deep, mid, focus)
    if kind == 2:
        return Move("zoom-out", deep, 1.0, focus, mid)
    # Pans cross the margin at a zoom deep enough to have one, drifting a little further in.
    y = 0.35 + 0.3 * digest[2] / 255
    start_zoom = 1.0 + ZOOM * 0.75
    if kind == 3:
        return Move("pan-right", start_zoom, deep, (0.0, y), (1.0, y))
    if kind == 4:
        return Move("pan-left", start_zoom, deep, (1.0, y), (0.0, y))
    x = 0.35 + 0.3 * digest[2] / 255
    if digest[3] % 2:
        return Move("pan-down", start_zoom, deep, (x, 0.0), (x, 1.0))
    return Move("pan-up", start_zoom, deep, (x, 1.0), (x, 0.0))
