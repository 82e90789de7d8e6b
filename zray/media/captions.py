"""Burned-in captions: large, high-contrast text in a box of the frame, the spoken word highlighted.

Pure numpy and Pillow (no PyAV): the encoder asks `caption_states` once per video for the list of
caption states, each a run of frames `[start_frame, end_frame)` with one overlay, and composites that
overlay on those frames (`composite`). Frames no state covers have no caption. Work is done once:
each cue is laid out once (its words paged into at most `max_lines` lines that fit the box), and a
state's overlay is drawn from its page's glyph masks, which are kept for the last few pages only, so
a long video's captions never sit in memory all at once.

A state starts on the frame nearest to when its word starts (`round(seconds * fps)`), so the picture
changes within half a frame of the word timings in `subtitles_<lang>.words.json`. Overlays are
premultiplied RGBA: `out = overlay_rgb + frame * (255 - alpha) / 255`.

Text is white with a black stroke (and an optional dark backdrop), the spoken word in the highlight
colour. The default font is the bundled Roboto Black, which covers Latin scripts (es, en, ca, fr, pt,
it, de...); `font_covers` names the characters a font lacks, so a language it cannot write is refused
before any work (`check_font`).
"""

from __future__ import annotations

import bisect
import functools
import math
import os
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from zray.media.caption_box import LOWER_THIRD, SHORTS_BOX, CaptionBox, CaptionError
from zray.media.cue_text import break_cues
from zray.media.subtitles import Cue
from zray.media.thumbnail import FONT_PATH
from zray.media.words import WordTiming

__all__ = [
    "LOWER_THIRD",
    "SHORTS_BOX",
    "CaptionBox",
    "CaptionError",
    "CaptionState",
    "CaptionStyle",
    "Overlay",
    "blend",
    "caption_states",
    "check_font",
    "composite",
    "font_covers",
    "state_at",
]

RGB = tuple[int, int, int]
_PAGE_CACHE = 8  # pages whose glyph masks are kept: the encoder walks states in order
_NOT_A_CHARACTER = "\U0010fffd"  # a private-use code point no font maps: its glyph is .notdef


@dataclass(frozen=True)
class CaptionStyle:
    """How captions look. `size` is the font size as a fraction of the frame height (smaller where two
    lines would not fit the box); the stroke is a fraction of the font size."""

    font: str = os.fspath(FONT_PATH)
    size: float = 0.06
    color: RGB = (255, 255, 255)
    highlight: RGB = (255, 214, 10)
    stroke_color: RGB = (0, 0, 0)
    stroke: float = 0.1
    backdrop: float = 0.0  # opacity of a dark box behind the text; 0: the stroke alone
    max_lines: int = 2

    def __post_init__(self) -> None:
        if not 0 < self.size <= 0.5:
            raise CaptionError(
                f"caption size must be a fraction of the frame height in (0, 0.5], got {self.size}"
            )
        if not 0 <= self.backdrop <= 1:
            raise CaptionError(f"caption backdrop must be an opacity from 0 to 1, got {self.backdrop}")
        if not 1 <= self.max_lines <= 4:
            raise CaptionError(f"captions take 1 to 4 lines, got {self.max_lines}")
        for name in ("color", "highlight", "stroke_color"):
            value = getattr(self, name)
            if len(value) != 3 or not all(isinstance(v, int) and 0 <= v <= 255 for v in value):
                raise CaptionError(f"caption {name} must be three integers 0-255 (R, G, B), got {value!r}")


@dataclass(frozen=True)
class Overlay:
    """Premultiplied RGBA pixels (height, width, 4) to lay over the frame with their top left at (x, y);
    read-only when shared between states."""

    x: int
    y: int
    pixels: np.ndarray = field(repr=False)

    @functools.cached_property
    def blend_terms(self) -> tuple[np.ndarray, np.ndarray]:
        """255 - alpha and the colour, as uint16: what `composite` needs on every frame, made once."""
        return (255 - self.pixels[..., 3:4]).astype(np.uint16), self.pixels[..., :3].astype(np.uint16)


@dataclass(frozen=True)
class _Page:
    """One screenful of a cue: its words laid out (baseline-left origins in frame pixels)."""

    words: tuple[str, ...]
    origins: tuple[tuple[int, int], ...]
    boxes: tuple[tuple[int, int, int, int], ...]  # each word's ink, stroke included
    lines: int
    font_size: int
    stroke: int
    bbox: tuple[int, int, int, int]  # everything the overlay covers
    style: CaptionStyle


@dataclass(frozen=True)
class CaptionState:
    """Frames `start_frame` to `end_frame` (exclusive) show `text` with word `highlighted` (an index
    into `text.split()`, or None) in the highlight colour."""

    start_frame: int
    end_frame: int
    text: str
    highlighted: int | None
    page: _Page = field(repr=False, compare=False)

    @property
    def overlay(self) -> Overlay:
        return _render(self.page, self.highlighted)


# --------------------------------------------------------------------------------------------- fonts


@functools.lru_cache(maxsize=64)
def _font(path: str, size: int) -> ImageFont.FreeTypeFont:
    try:
        return ImageFont.truetype(path, size)
    except OSError as exc:
        raise CaptionError(
            f"captions.font {path!r} cannot be loaded ({exc}); give a TrueType/OpenType file"
        ) from None


def _glyph(font: ImageFont.FreeTypeFont, character: str) -> tuple[tuple[int, int], bytes]:
    mask = font.getmask(character)
    return mask.size, bytes(mask)


def font_covers(text: str, font_path: str | os.PathLike[str] = FONT_PATH) -> list[str]:
    """The characters of `text` the font has no glyph for, each once, in order of appearance.

    Text is taken in NFC (an accent typed as a combining mark needs the composed letter's glyph).
    Whitespace needs no glyph. A character is missing when it draws as the font's .notdef glyph.
    """
    font = _font(os.fspath(font_path), 48)
    notdef = _glyph(font, _NOT_A_CHARACTER)
    missing: list[str] = []
    for character in dict.fromkeys(unicodedata.normalize("NFC", text)):
        if character.isspace() or unicodedata.category(character) in ("Cc", "Cf"):
            continue
        if _glyph(font, character) == notdef:
            missing.append(character)
    return missing


def check_font(
    text: str,
    font_path: str | os.PathLike[str] = FONT_PATH,
    *,
    setting: str = "captions.font",
    what: str = "",
) -> None:
    """CaptionError naming the setting and the characters when the font cannot write `text`."""
    missing = font_covers(text, font_path)
    if missing:
        shown = " ".join(missing[:12]) + (f" and {len(missing) - 12} more" if len(missing) > 12 else "")
        where = f" in {what}" if what else ""
        raise CaptionError(
            f"{setting} {Path(font_path).name} has no glyph for {shown}{where}; set {setting} to a font "
            "that covers this language's letters"
        )


# -------------------------------------------------------------------------------------------- layout


def _frame(seconds: float, fps: int) -> int:
    return math.floor(seconds * fps + 0.5)


def _pages(
    words: Sequence[WordTiming],
    end: float,
    *,
    size: tuple[int, int],
    box: tuple[int, int, int, int],
    style: CaptionStyle,
) -> list[tuple[_Page, list[WordTiming]]]:
    """The cue's words paged into screens that fit the box, each with its words' timings."""
    left, top, right, bottom = box
    box_w, box_h = right - left, bottom - top
    tokens = [w.word for w in words]
    font_size = max(8, round(style.size * size[1]))
    while True:
        font = _font(style.font, font_size)
        stroke = max(1, round(font_size * style.stroke))
        ascent, descent = font.getmetrics()
        pitch = ascent + descent + 2 * stroke + round(0.08 * font_size)
        block = (style.max_lines - 1) * pitch + ascent + descent + 2 * stroke
        widths = [_ink_width(font, token, stroke) for token in tokens]
        if block <= box_h and max(widths) <= box_w:
            break
        if font_size <= 8:
            raise CaptionError(
                f"caption box {box} is too small for a word of the caption {' '.join(tokens)!r}"
            )
        font_size = max(8, int(font_size * 0.9))
    space = font.getlength(" ")
    times = [w.start for w in words] + [end]
    # Characters are only a guide to widths: fit by characters, then check in pixels and narrow.
    average = max(1.0, (sum(widths) + space * (len(tokens) - 1)) / max(1, len(" ".join(tokens))))
    max_chars = max(max(len(t) for t in tokens), int(box_w / average))
    while True:
        pieces = break_cues(tokens, max_chars=max_chars, max_lines=style.max_lines, times=times)
        fits = all(_line_width(font, line, stroke) <= box_w for piece in pieces for line in piece.lines)
        if fits or max_chars <= max(len(t) for t in tokens):
            break
        max_chars -= 1
    pages = []
    for piece in pieces:
        page = _layout(piece.lines, font, stroke, pitch, box=box, style=style)
        pages.append((page, list(words[piece.first : piece.end])))
    return pages


def _ink_width(font: ImageFont.FreeTypeFont, text: str, stroke: int) -> int:
    left, _, right, _ = font.getbbox(text, stroke_width=stroke, anchor="ls")
    return int(right - left)


def _line_width(font: ImageFont.FreeTypeFont, line: str, stroke: int) -> int:
    words = line.split()
    first = font.getbbox(words[0], stroke_width=stroke, anchor="ls")[0]
    last = (
        font.getlength(line[: line.rfind(words[-1])])
        + font.getbbox(words[-1], stroke_width=stroke, anchor="ls")[2]
    )
    return math.ceil(last - first)


def _layout(
    lines: Sequence[str],
    font: ImageFont.FreeTypeFont,
    stroke: int,
    pitch: int,
    *,
    box: tuple[int, int, int, int],
    style: CaptionStyle,
) -> _Page:
    """Lines centred in the box, the last line's descent on the box's bottom edge."""
    left, top, right, bottom = box
    _, descent = font.getmetrics()
    last_baseline = bottom - descent - stroke
    words, origins, boxes = [], [], []
    for index, line in enumerate(lines):
        baseline = last_baseline - (len(lines) - 1 - index) * pitch
        ink_left = font.getbbox(line.split()[0], stroke_width=stroke, anchor="ls")[0]
        x0 = left + (right - left - _line_width(font, line, stroke)) / 2 - ink_left
        at = 0
        for word in line.split():
            at = line.index(word, at)
            x = round(x0 + font.getlength(line[:at]))
            ink_l, ink_t, ink_r, ink_b = font.getbbox(word, stroke_width=stroke, anchor="ls")
            words.append(word)
            origins.append((x, baseline))
            boxes.append((x + int(ink_l), baseline + int(ink_t), x + int(ink_r), baseline + int(ink_b)))
            at += len(word)
    ink = (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )
    # The backdrop reaches a little past the ink, never past the box; the ink itself fits the box.
    pad = round(0.25 * font.size) if style.backdrop > 0 else 0
    bbox = (
        min(ink[0], max(left, ink[0] - pad)),
        min(ink[1], max(top, ink[1] - pad)),
        max(ink[2], min(right, ink[2] + pad)),
        max(ink[3], min(bottom, ink[3] + pad)),
    )
    return _Page(
        words=tuple(words),
        origins=tuple(origins),
        boxes=tuple(boxes),
        lines=len(lines),
        font_size=font.size,
        stroke=stroke,
        bbox=bbox,
        style=style,
    )


def caption_states(
    cues: Sequence[Cue],
    *,
    fps: int,
    size: tuple[int, int],
    box: CaptionBox = LOWER_THIRD,
    style: CaptionStyle | None = None,
) -> list[CaptionState]:
    """The caption states of a video, in frame order, none overlapping: one per word being spoken (its
    page on screen, that word highlighted), from the cues' word timings (`Cue.words`, in seconds of the
    final video). A cue without word timings is one state without a highlight. A state shorter than
    half a frame never shows and is left out.
    """
    style = style or CaptionStyle()
    if not isinstance(fps, int) or fps <= 0:
        raise CaptionError(f"fps must be a positive whole number, got {fps!r}")
    pixels = box.pixels(size)
    states: list[CaptionState] = []
    for cue in cues:
        words = list(cue.words)
        highlight = bool(words)
        if not words:
            words = [WordTiming(token, cue.start, cue.end) for token in cue.text.split()]
        if not words:
            continue
        for page, page_words in _pages(words, cue.end, size=size, box=pixels, style=style):
            text = _page_text(page)
            # A word stays highlighted until the next one starts (the last, until the page ends).
            ends = [w.start for w in page_words[1:]] + [page_words[-1].end]
            spans: list[tuple[float, float, int | None]] = [
                (w.start, until, k) for k, (w, until) in enumerate(zip(page_words, ends, strict=True))
            ]
            if not highlight:
                spans = [(page_words[0].start, page_words[-1].end, None)]
            for begin, until, index in spans:
                first, last = _frame(begin, fps), _frame(until, fps)
                if states and first < states[-1].end_frame:
                    first = states[-1].end_frame  # rounding never lets two states share a frame
                if last > first:
                    states.append(CaptionState(first, last, text, index, page))
    return states


def _page_text(page: _Page) -> str:
    lines: list[list[str]] = []
    previous = None
    for word, (_, baseline) in zip(page.words, page.origins, strict=True):
        if baseline != previous:
            lines.append([])
            previous = baseline
        lines[-1].append(word)
    return "\n".join(" ".join(line) for line in lines)


def state_at(states: Sequence[CaptionState], frame: int) -> CaptionState | None:
    """The state showing on `frame`, or None (no caption); a binary search of the ordered states."""
    index = bisect.bisect_right(states, frame, key=lambda state: state.start_frame) - 1
    if index >= 0 and frame < states[index].end_frame:
        return states[index]
    return None


# ------------------------------------------------------------------------------------------- drawing


@functools.lru_cache(maxsize=_PAGE_CACHE)
def _base(page: _Page) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The page without a highlight (premultiplied RGBA), and its glyph coverage with the stroke and
    without it (float32), for repainting one word in the highlight colour."""
    left, top, right, bottom = page.bbox
    size = (right - left, bottom - top)
    font = _font(page.style.font, page.font_size)
    outline, fill = Image.new("L", size, 0), Image.new("L", size, 0)
    draw_outline, draw_fill = ImageDraw.Draw(outline), ImageDraw.Draw(fill)
    for word, (x, y) in zip(page.words, page.origins, strict=True):
        at = (x - left, y - top)
        draw_outline.text(
            at, word, font=font, fill=255, anchor="ls", stroke_width=page.stroke, stroke_fill=255
        )
        draw_fill.text(at, word, font=font, fill=255, anchor="ls")
    outline_mask = np.asarray(outline, dtype=np.float32)
    fill_mask = np.asarray(fill, dtype=np.float32)
    alpha = outline_mask
    if page.style.backdrop > 0:
        panel = Image.new("L", size, 0)
        ImageDraw.Draw(panel).rounded_rectangle(
            (0, 0, size[0] - 1, size[1] - 1),
            radius=round(0.3 * page.font_size),
            fill=round(255 * page.style.backdrop),
        )
        # A black backdrop adds coverage, not colour.
        alpha = outline_mask + np.asarray(panel, dtype=np.float32) * (1.0 - outline_mask / 255.0)
    pixels = np.empty((size[1], size[0], 4), dtype=np.uint8)
    pixels[..., :3] = _paint(outline_mask, fill_mask, page.style.color, page.style.stroke_color)
    pixels[..., 3] = np.clip(alpha + 0.5, 0, 255)
    pixels.flags.writeable = False  # shared by every state of the page
    return pixels, outline_mask, fill_mask


def _paint(outline: np.ndarray, fill: np.ndarray, color: RGB, stroke: RGB) -> np.ndarray:
    """Premultiplied RGB: the fill in `color`, the rest of the outline (the stroke) in `stroke`."""
    rgb = fill[..., None] * np.asarray(color, np.float32) + (outline - fill)[..., None] * np.asarray(
        stroke, np.float32
    )
    return np.clip(rgb / 255.0 + 0.5, 0, 255).astype(np.uint8)


def _render(page: _Page, highlighted: int | None) -> Overlay:
    base, outline, fill = _base(page)
    left, top = page.bbox[0], page.bbox[1]
    if highlighted is None:
        return Overlay(x=left, y=top, pixels=base)
    pixels = base.copy()
    pixels.flags.writeable = True
    x0, y0, x1, y1 = page.boxes[highlighted]
    rows = slice(max(0, y0 - top), max(0, y1 - top))
    columns = slice(max(0, x0 - left), max(0, x1 - left))
    pixels[rows, columns, :3] = _paint(
        outline[rows, columns], fill[rows, columns], page.style.highlight, page.style.stroke_color
    )
    return Overlay(x=left, y=top, pixels=pixels)


def composite(frame: np.ndarray, overlay: Overlay, *, in_place: bool = False) -> np.ndarray:
    """`frame` (height, width, 3) uint8 with the overlay laid over it: a new frame, or `frame` itself
    changed when `in_place` (the encoder's own buffer: no copy of the whole picture)."""
    out = frame if in_place else frame.copy()
    h, w = overlay.pixels.shape[:2]
    region = out[overlay.y : overlay.y + h, overlay.x : overlay.x + w]
    inverse, rgb = overlay.blend_terms
    blend(region, rgb, inverse)
    return out


def blend(region: np.ndarray, colour: np.ndarray, inverse: np.ndarray) -> None:
    """`region` (uint8) = region * inverse / 255 + colour, in place: a premultiplied colour laid over
    it, `inverse` being 255 - alpha; both are cut to the region (an overlay may pass the frame's edge)."""
    rows, columns = region.shape[:2]
    mixed = region.astype(np.uint16)
    mixed *= inverse[:rows, :columns]
    # Exact rounding of x / 255 for 0 <= x <= 255 * 255, without a division.
    mixed += 128
    mixed += mixed >> 8
    mixed >>= 8
    mixed += colour[:rows, :columns]
    np.minimum(mixed, 255, out=mixed)  # a premultiplied colour rounded (as in YUV) may pass 255 by one
    region[...] = mixed
