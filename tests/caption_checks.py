"""What burned captions look like in decoded frames, for the caption tests."""

from __future__ import annotations

import math

import numpy as np


def highlight_changes(frames: list[np.ndarray], *, box: tuple[float, float, float, float]) -> list[int]:
    """Frames where the highlighted (yellow) word moves, appears or goes inside `box` (left, top,
    right, bottom as fractions of the frame)."""
    height, width = frames[0].shape[:2]
    left, top = math.ceil(box[0] * width), math.ceil(box[1] * height)
    right, bottom = math.floor(box[2] * width), math.floor(box[3] * height)
    centres = []
    for frame in frames:
        region = frame[top:bottom, left:right]
        yellow = (
            (region[..., 0] > 180)
            & (region[..., 1] > 150)
            & (region[..., 2] < 100)
            & (region[..., 0] - region[..., 2] > 120)
        )
        ys, xs = np.nonzero(yellow)
        centres.append((xs.mean(), ys.mean()) if len(xs) > 3 else None)
    changes = []
    for index in range(1, len(centres)):
        a, b = centres[index - 1], centres[index]
        if (a is None) != (b is None) or (a and b and max(abs(a[0] - b[0]), abs(a[1] - b[1])) > 2):
            changes.append(index)
    return changes
