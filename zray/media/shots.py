"""How a scene's frames are cut into segments, so that languages share the encoding work.

A scene shows `body` frames of its own picture, then (unless it is the last) a crossfade of
`transition` frames into the next scene's first frame, inside its gap. A moving scene (or a clip)
is encoded once, at its longest language's length, in closed GOPs of `gop` frames; each language
plays that segment's first whole GOPs and re-encodes only the rest (its last partial GOP and its
outgoing crossfade) as a small tail segment of its own. The scheduler, the planner and every step
that needs these numbers call the functions here, so they always agree. Stdlib only.
"""

from __future__ import annotations

import math

__all__ = ["MIN_TRANSITION_FRAMES", "tail_start", "transition_frames"]

# A crossfade of one frame is a cut with a smudge on it: shorter fades become hard cuts.
MIN_TRANSITION_FRAMES = 2


def transition_frames(seconds: float, *, fps: int, room: int | None = None) -> int:
    """A crossfade of `seconds`, in whole frames, clamped to the `room` it must fit in (the
    previous scene's gap, or the intro's frames; None: not yet known); 0 (a hard cut) when under
    2 frames."""
    frames = math.floor(seconds * fps + 0.5)
    if room is not None:
        frames = min(frames, max(room, 0))
    return frames if frames >= MIN_TRANSITION_FRAMES else 0


def tail_start(body: int, *, gop: int, transition: int) -> int:
    """The first of a scene's `body` frames that its tail segment encodes; the frames before it are
    whole GOPs of the scene's shared segment.

    A tail is never a single frame: a one-frame segment is a lone IDR picture, and two IDR
    pictures back to back (this one and the next segment's first) break H.264 (7.4.3). When the
    remainder and the crossfade would make one frame, the tail takes one GOP more.
    """
    if body < 0 or gop < 1 or transition < 0:
        raise ValueError(f"bad shot: body={body}, gop={gop}, transition={transition}")
    start = body // gop * gop
    if body - start + transition < 2 and start >= gop:
        start -= gop
    return start
