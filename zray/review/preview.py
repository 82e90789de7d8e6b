"""Small JPEG previews of an episode's pictures: the review page's grid and the report's strip.

A 1920x1072 PNG is about 50 kB to 3 MB; its 320 px preview is a few kB, so a 40-scene page loads
40 previews instead of 40 full pictures. Same bytes in, same bytes out (the report is rewritten
only when its content changes).
"""

from __future__ import annotations

import io

from PIL import Image

PREVIEW_WIDTH = 320
QUALITY = 72


def preview_jpeg(data: bytes, *, width: int = PREVIEW_WIDTH) -> bytes:
    """A JPEG of the picture in `data`, `width` pixels wide (never wider than the picture)."""
    with Image.open(io.BytesIO(data)) as image:
        image.draft("RGB", (width, width))  # JPEG sources decode at a fraction of their size
        picture = image.convert("RGB")
    if picture.width > width:
        height = max(1, round(picture.height * width / picture.width))
        # reduce() by a whole factor first is much cheaper than resampling the full picture
        factor = max(1, picture.width // (2 * width))
        if factor > 1:
            picture = picture.reduce(factor)
        picture = picture.resize((width, height), Image.Resampling.BILINEAR)
    out = io.BytesIO()
    picture.save(out, format="JPEG", quality=QUALITY, optimize=True)
    return out.getvalue()
