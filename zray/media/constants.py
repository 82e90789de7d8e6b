"""Media constants shared by planning, engines and media code. Stdlib only, so importing them
never loads PyAV, numpy or scipy (a rerun with nothing to do plans without them)."""

from __future__ import annotations

# The project rate: one frame at 24 fps is exactly 2000 samples, so every scene's audio pads to a
# whole number of frames with integer arithmetic. Any fps must divide it (see VideoSettings).
SAMPLE_RATE = 48_000
# Samples in one AAC frame: the grid audio chunks are cut on.
AAC_FRAME = 1024
# Thumbnail base images and finished thumbnails (YouTube's recommended size).
THUMB_SIZE = (1280, 720)
