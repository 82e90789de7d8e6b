"""YouTube thumbnails: a 1280x720 cover-crop of a base image with large, high-contrast text.

The text is auto-sized to the largest font whose word-wrapped lines fit `SAFE_BOX` in at most three lines,
then drawn white with a thick black stroke and a soft drop shadow over a dark gradient, so it reads on any
image. `SAFE_BOX` keeps a ~5 % margin and stays clear of the timestamp badge YouTube draws at the bottom
right (`BADGE_BOX`). The bundled font is Roboto Black (Apache-2.0, see fonts/LICENSE-Roboto.txt).
"""

from __future__ import annotations

import functools
import io
import os
import re
import tempfile
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeAlias

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont, ImageOps

from zray.errors import ZrayError
from zray.media.constants import THUMB_SIZE

FONT_PATH: Path = Path(__file__).parent / "fonts" / "Roboto-Black.ttf"
# A Short's thumbnail is as vertical as the Short: 9:16, YouTube's 720p size turned on its side.
SHORT_THUMB_SIZE = (720, 1280)
MAX_THUMB_BYTES = 2_000_000  # YouTube rejects thumbnails over 2 MB; stay under either reading of "MB".

Box: TypeAlias = tuple[int, int, int, int]  # left, top, right, bottom (right/bottom exclusive)
FontPath: TypeAlias = str | os.PathLike[str]

_MARGIN_RATIO = 0.05
_BADGE_SIZE_AT_720P = (200, 80)
# Room between the text box and the badge row, so the drop shadow never reaches the badge.
_BADGE_CLEARANCE_RATIO = 0.035
# Bounds on font size relative to the thumbnail height: above the cap, short words turn into a wall;
# below the floor, text is unreadable on a phone and the caller should shorten it instead.
_MAX_FONT_RATIO = 0.2
_MIN_FONT_RATIO = 0.05
_STROKE_RATIO = 0.08
_SHADOW_OFFSET_RATIO = 0.045
_SHADOW_BLUR_RATIO = 0.025
_SHADOW_OPACITY = 0.8
_LINE_GAP_RATIO = 0.05
_SHADE_STRENGTH = 0.72
_SHADE_FEATHER_RATIO = 0.4
_TEXT_FILL = (255, 255, 255)
_STROKE_FILL = (0, 0, 0)
_LANG_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


class ThumbnailError(ZrayError, ValueError):
    """A bad argument to the thumbnail functions: a size, a box, a font, a text that cannot fit."""


def _check_size(size: tuple[int, int]) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ThumbnailError(f"size must be (width, height), got {size!r}") from None
    if width <= 0 or height <= 0 or (width, height) != tuple(size):
        raise ThumbnailError(f"size must be two positive integers, got {size!r}")
    return width, height


def badge_box(size: tuple[int, int] = THUMB_SIZE) -> Box:
    """Where YouTube overlays the video duration: the bottom-right 200x80 px at 1280x720, scaled."""
    width, height = _check_size(size)
    badge_w = round(_BADGE_SIZE_AT_720P[0] * width / THUMB_SIZE[0])
    badge_h = round(_BADGE_SIZE_AT_720P[1] * height / THUMB_SIZE[1])
    return (width - badge_w, height - badge_h, width, height)


def safe_box(size: tuple[int, int] = THUMB_SIZE) -> Box:
    """The region text may occupy: a 5 % margin all round, and above the badge row with some clearance."""
    width, height = _check_size(size)
    margin_x, margin_y = round(width * _MARGIN_RATIO), round(height * _MARGIN_RATIO)
    bottom = badge_box(size)[1] - round(height * _BADGE_CLEARANCE_RATIO)
    return (margin_x, margin_y, width - margin_x, min(bottom, height - margin_y))


SAFE_BOX: Box = safe_box(THUMB_SIZE)
BADGE_BOX: Box = badge_box(THUMB_SIZE)


def cover_crop(image: Image.Image, size: tuple[int, int] = THUMB_SIZE) -> Image.Image:
    """Scale `image` to cover `size` and crop the centre: exact size, RGB, never letterboxed."""
    size = _check_size(size)
    if image.width <= 0 or image.height <= 0:
        raise ThumbnailError(f"base image is empty ({image.width}x{image.height})")
    image = ImageOps.exif_transpose(image)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        # Transparent areas would otherwise show whatever colour hides under alpha 0.
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (0, 0, 0, 255)), rgba)
    return ImageOps.fit(image.convert("RGB"), size, method=Image.Resampling.LANCZOS)


@dataclass(frozen=True, slots=True)
class TextLayout:
    """Where each line of text goes, in image pixels. Drawn with anchor "ls" (left, baseline)."""

    lines: tuple[str, ...]
    font_size: int
    stroke_width: int
    origins: tuple[tuple[int, int], ...]  # baseline-left point of each line
    line_boxes: tuple[Box, ...]  # ink of each line, stroke included
    shadow_offset: int
    shadow_blur: int

    @property
    def bbox(self) -> Box:
        """The union of the line boxes: every stroked glyph lies inside it."""
        lefts, tops, rights, bottoms = zip(*self.line_boxes, strict=True)
        return (min(lefts), min(tops), max(rights), max(bottoms))

    @property
    def spill(self) -> int:
        """How far past `bbox` the drop shadow may reach (it is clipped there)."""
        return self.shadow_offset + 3 * self.shadow_blur

    @property
    def paint_box(self) -> Box:
        """Every pixel the text and its shadow may touch."""
        left, top, right, bottom = self.bbox
        return (left - self.spill, top - self.spill, right + self.spill, bottom + self.spill)


@functools.lru_cache(maxsize=256)
def _load_font(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size)


def _font(font_path: FontPath, size: int) -> ImageFont.FreeTypeFont:
    path = os.fspath(font_path)
    try:
        return _load_font(path, size)
    except OSError as exc:
        raise ThumbnailError(f"cannot load font {path!r} ({exc}); pass a TrueType/OpenType file") from None


def _stroke_width(font_size: int) -> int:
    return max(1, round(font_size * _STROKE_RATIO))


def _wrap(words: Sequence[str], width_of: Callable[[str], int], max_width: int) -> list[str] | None:
    """Greedy word wrap (the fewest lines for a width); None when a single word is wider than max_width."""
    lines: list[str] = []
    current = ""
    for word in words:
        candidate = f"{current} {word}" if current else word
        if width_of(candidate) <= max_width:
            current = candidate
            continue
        if not current or width_of(word) > max_width:
            return None
        lines.append(current)
        current = word
    lines.append(current)
    return lines


@dataclass(frozen=True, slots=True)
class _Fit:
    lines: list[str]
    inks: list[Box]  # per line, relative to its baseline-left origin
    pitch: int  # baseline to baseline
    height: int


def _fit_at(words: Sequence[str], font: ImageFont.FreeTypeFont, box: Box, max_lines: int) -> _Fit | None:
    stroke = _stroke_width(font.size)

    @functools.cache
    def ink(text: str) -> Box:
        left, top, right, bottom = font.getbbox(text, stroke_width=stroke, anchor="ls")
        return (int(left), int(top), int(right), int(bottom))

    def width_of(text: str) -> int:
        left, _, right, _ = ink(text)
        return right - left

    box_w, box_h = box[2] - box[0], box[3] - box[1]

    def measure(lines: list[str] | None) -> _Fit | None:
        if lines is None or len(lines) > max_lines:
            return None
        inks = [ink(line) for line in lines]
        # One pitch for the block, from its tallest accent to its deepest descender, keeps lines evenly
        # spaced and never overlapping; all-caps text without descenders packs tighter.
        ascent = max(-top for _, top, _, _ in inks)
        descent = max(bottom for _, _, _, bottom in inks)
        pitch = ascent + descent + round(font.size * _LINE_GAP_RATIO)
        height = (len(lines) - 1) * pitch - inks[0][1] + inks[-1][3]
        return _Fit(lines, inks, pitch, height) if height <= box_h else None

    fit = measure(_wrap(words, width_of, box_w))
    if fit is None or len(fit.lines) == 1:
        return fit
    # Rebalance: the narrowest wrap width that still gives the same number of lines avoids a long first
    # line over a one-word orphan.
    low, high = max(width_of(word) for word in words), box_w
    while low < high:
        mid = (low + high) // 2
        lines = _wrap(words, width_of, mid)
        if lines is not None and len(lines) <= len(fit.lines):
            high = mid
        else:
            low = mid + 1
    return measure(_wrap(words, width_of, low)) or fit


def _check_box(box: tuple[int, int, int, int]) -> Box:
    try:
        left, top, right, bottom = (int(v) for v in box)
    except (TypeError, ValueError):
        raise ThumbnailError(f"box must be (left, top, right, bottom), got {box!r}") from None
    if right <= left or bottom <= top:
        raise ThumbnailError(f"box must have positive width and height, got {box!r}")
    return (left, top, right, bottom)


def layout_text(
    text: str,
    *,
    box: tuple[int, int, int, int],
    font_path: FontPath = FONT_PATH,
    max_lines: int = 3,
    min_font_size: int = 8,
    max_font_size: int | None = None,
    halign: Literal["left", "center", "right"] = "left",
    valign: Literal["top", "middle", "bottom"] = "bottom",
) -> TextLayout:
    """The largest font size at which `text`, word-wrapped, fits `box` in at most `max_lines` lines.

    Words are never broken: a word too wide for the box shrinks the font instead. Whitespace (newlines
    included) separates words. Raises ThumbnailError when even `min_font_size` does not fit.
    """
    left, top, right, bottom = box = _check_box(box)
    if max_lines < 1:
        raise ThumbnailError(f"max_lines must be at least 1, got {max_lines}")
    words = unicodedata.normalize("NFC", text).split()
    if not words:
        raise ThumbnailError(f"text to lay out is empty: {text!r}")
    high = bottom - top if max_font_size is None else min(max_font_size, bottom - top)
    if min_font_size < 1 or high < min_font_size:
        raise ThumbnailError(
            f"font size range [{min_font_size}, {high}] is empty for box {box!r} and max {max_font_size!r}"
        )

    def fit_at(size: int) -> _Fit | None:
        return _fit_at(words, _font(font_path, size), box, max_lines)

    best = fit_at(min_font_size)
    if best is None:
        raise ThumbnailError(
            f"text {text!r} does not fit in {max_lines} line(s) of a {right - left}x{bottom - top} box "
            f"even at {min_font_size} px; shorten it"
        )
    # Fit is monotonic in size (wider glyphs never need fewer lines), so bisect for the largest.
    low, best_size = min_font_size + 1, min_font_size
    while low <= high:
        mid = (low + high) // 2
        fit = fit_at(mid)
        if fit is None:
            high = mid - 1
        else:
            best, best_size, low = fit, mid, mid + 1

    if valign == "top":
        first_baseline = top - best.inks[0][1]
    elif valign == "middle":
        first_baseline = top + (bottom - top - best.height) // 2 - best.inks[0][1]
    elif valign == "bottom":
        first_baseline = bottom - best.inks[-1][3] - (len(best.lines) - 1) * best.pitch
    else:
        raise ThumbnailError(f"valign must be 'top', 'middle' or 'bottom', got {valign!r}")
    origins: list[tuple[int, int]] = []
    line_boxes: list[Box] = []
    for index, (ink_left, ink_top, ink_right, ink_bottom) in enumerate(best.inks):
        if halign == "left":
            x = left - ink_left
        elif halign == "center":
            x = left + (right - left - (ink_right - ink_left)) // 2 - ink_left
        elif halign == "right":
            x = right - ink_right
        else:
            raise ThumbnailError(f"halign must be 'left', 'center' or 'right', got {halign!r}")
        y = first_baseline + index * best.pitch
        origins.append((x, y))
        line_boxes.append((x + ink_left, y + ink_top, x + ink_right, y + ink_bottom))
    return TextLayout(
        lines=tuple(best.lines),
        font_size=best_size,
        stroke_width=_stroke_width(best_size),
        origins=tuple(origins),
        line_boxes=tuple(line_boxes),
        shadow_offset=max(1, round(best_size * _SHADOW_OFFSET_RATIO)),
        shadow_blur=max(1, round(best_size * _SHADOW_BLUR_RATIO)),
    )


def thumbnail_layout(
    text: str, *, size: tuple[int, int] = THUMB_SIZE, font_path: FontPath = FONT_PATH
) -> TextLayout:
    """The layout `render_thumbnail` uses for `text` at `size`: inside `safe_box(size)`, bottom-left."""
    _, height = _check_size(size)
    return layout_text(
        text,
        box=safe_box(size),
        font_path=font_path,
        max_lines=3,
        min_font_size=max(1, round(height * _MIN_FONT_RATIO)),
        max_font_size=max(1, round(height * _MAX_FONT_RATIO)),
    )


def _shade(image: Image.Image, layout: TextLayout) -> Image.Image:
    """Darken towards the image edge nearest the text, so white text reads even on a white sky."""
    height = image.height
    top, bottom = layout.bbox[1], layout.bbox[3]
    feather = height * _SHADE_FEATHER_RATIO
    rows = np.arange(height, dtype=np.float32)
    if top + bottom >= height:  # text in the lower half: dark at the bottom, fading out above the text
        ramp = (rows - (top - feather)) / feather
    else:
        ramp = ((bottom + feather) - rows) / feather
    ramp = np.clip(ramp, 0.0, 1.0)
    alpha = _SHADE_STRENGTH * ramp * ramp * (3 - 2 * ramp)  # smoothstep: no visible band edge
    pixels = np.asarray(image, dtype=np.float32) * (1 - alpha)[:, None, None]
    return Image.fromarray(np.rint(pixels).astype(np.uint8), "RGB")


def _draw_text(image: Image.Image, layout: TextLayout, *, font_path: FontPath, shade: bool) -> Image.Image:
    image = _shade(image, layout) if shade else image.copy()
    font = _font(font_path, layout.font_size)
    stroke = layout.stroke_width
    shadow = Image.new("L", image.size, 0)
    draw = ImageDraw.Draw(shadow)
    for line, (x, y) in zip(layout.lines, layout.origins, strict=True):
        offset = layout.shadow_offset
        draw.text((x + offset, y + offset), line, font=font, fill=255, anchor="ls", stroke_width=stroke)
    shadow = shadow.filter(ImageFilter.GaussianBlur(layout.shadow_blur))
    # Clip the blur's faint tail so the shadow provably stays within paint_box (and off the badge).
    clipped = Image.new("L", image.size, 0)
    paint_box = layout.paint_box
    clipped.paste(shadow.crop(paint_box), paint_box[:2])
    clipped = clipped.point(lambda value: round(value * _SHADOW_OPACITY))
    image.paste(_STROKE_FILL, (0, 0, *image.size), clipped)
    draw = ImageDraw.Draw(image)
    for line, origin in zip(layout.lines, layout.origins, strict=True):
        draw.text(
            origin,
            line,
            font=font,
            fill=_TEXT_FILL,
            anchor="ls",
            stroke_width=stroke,
            stroke_fill=_STROKE_FILL,
        )
    return image


def render_thumbnail(
    base: Image.Image,
    text: str | None,
    *,
    size: tuple[int, int] = THUMB_SIZE,
    font_path: FontPath = FONT_PATH,
    shade: bool = True,
) -> Image.Image:
    """Cover-crop `base` to `size` and lay `text` over it; None or blank text gives just the crop.

    `shade` darkens the image behind the text with a gradient; turn it off to see the text alone.
    """
    image = cover_crop(base, size)
    if text is None or not text.strip():
        return image
    layout = thumbnail_layout(text, size=size, font_path=font_path)
    return _draw_text(image, layout, font_path=font_path, shade=shade)


def short_thumbnail(base: Image.Image, text: str | None, *, font_path: FontPath = FONT_PATH) -> bytes:
    """A Short's 9:16 thumbnail as PNG bytes under YouTube's limit: `base` (its first scene's
    picture) cover-cropped to SHORT_THUMB_SIZE with `text` (its chapter) laid over it."""
    return _png_bytes(render_thumbnail(base, text, size=SHORT_THUMB_SIZE, font_path=font_path))


def _png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    # Level 6: level 9 saves ~3 % more bytes for ~5x the time.
    image.save(buffer, "PNG", compress_level=6)
    if buffer.tell() <= MAX_THUMB_BYTES:
        return buffer.getvalue()
    # Noisy photos can exceed YouTube's limit as RGB PNG; a dithered 256-colour palette keeps them
    # looking the same at thumbnail size and brings them to about a third of the size.
    buffer = io.BytesIO()
    image.quantize(colors=256, dither=Image.Dither.FLOYDSTEINBERG).save(buffer, "PNG", compress_level=6)
    return buffer.getvalue()


def _write_atomic(path: Path, data: bytes) -> None:
    handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as temp:
            temp.write(data)
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


def render_variants(
    base: Image.Image,
    texts: Sequence[str | None],
    dest_dir: str | os.PathLike[str],
    *,
    lang: str,
    size: tuple[int, int] = THUMB_SIZE,
    font_path: FontPath = FONT_PATH,
) -> list[Path]:
    """Write `thumbnail_{lang}_v1.png`, `_v2.png`, ... (one per text) into `dest_dir`; return their paths.

    Each file is written atomically and kept under YouTube's 2 MB limit. Variant 1 doubles as the
    official thumbnail: the caller copies it to `thumbnail_{lang}.png`.
    """
    if not isinstance(lang, str) or not _LANG_RE.fullmatch(lang):
        raise ThumbnailError(f"lang must be a language code like 'es' or 'pt-BR', got {lang!r}")
    if isinstance(texts, str) or not texts:
        raise ThumbnailError(f"texts must be a non-empty list of strings or None, got {texts!r}")
    for index, text in enumerate(texts, start=1):
        if text is not None and not isinstance(text, str):
            raise ThumbnailError(f"thumbnail variant {index} text must be a string or None, got {text!r}")
    # Lay out every variant before writing any, so a text that cannot fit leaves no partial set behind.
    layouts = [
        None if text is None or not text.strip() else thumbnail_layout(text, size=size, font_path=font_path)
        for text in texts
    ]
    cropped = cover_crop(base, size)
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    for index, layout in enumerate(layouts, start=1):
        image = cropped if layout is None else _draw_text(cropped, layout, font_path=font_path, shade=True)
        path = dest / f"thumbnail_{lang}_v{index}.png"
        _write_atomic(path, _png_bytes(image))
        paths.append(path)
    return paths
