"""Storyboard cards: the draft profile's image engine, deterministic and CPU-only.

Each scene gets a flat-colour card (gradient sky and ground, a few geometric shapes) whose palette
and layout come from the prompt's hash, with the scene label and the prompt text written on it, so a
draft video shows which scene is which and what the real image will depict. A card asked for without
a label (a thumbnail's base) is the bare picture: no label and no prompt band, since the thumbnail's
headline goes there.

The label and the text stay inside `safe_area`: the middle column a vertical Short shows of the card
(the Short's pan crosses the middle of the picture) and, within it, clear of the edges the long
video's gentle moves crop away. The card has no drawn border, since a move would cut it on one side.
"""

from __future__ import annotations

import colorsys
import functools
import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import PIL
from PIL import Image, ImageDraw, ImageFont

from zray.engines.base import BaseEngine, EngineError, EngineSettings, seed_from
from zray.media.moves import ZOOM

# 2: the label and text inside the safe area, no card border.
ENGINE_VERSION = "2"
# A Short is 9:16; the card, cover-fitted to the Short's height, shows this share of its height as width.
SHORT_ASPECT = 9 / 16
MIN_TEXT_WIDTH = 24  # pixels of safe area below which a card carries no text at all
MIN_SIDE = 16
MAX_SIDE = 16384

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont
RGB = tuple[int, int, int]


@dataclass(frozen=True)
class StoryboardSettings(EngineSettings):
    font_path: str | None = None  # a TrueType font; None: Pillow's bundled default


class StoryboardImageEngine(BaseEngine):
    """Draws a storyboard card for a prompt at any size; the same prompt and seed give the same bytes."""

    name: ClassVar[str] = "storyboard"
    role: ClassVar[str] = "image"
    uses_gpu: ClassVar[bool] = False
    settings_type = StoryboardSettings

    def __init__(self, settings: StoryboardSettings | None = None) -> None:
        super().__init__(settings)
        font = self.settings.font_path
        self.font_path = Path(font) if font is not None else None
        self._loaded = False

    def load(self) -> None:
        if self._loaded:
            return
        if self.font_path is not None and not self.font_path.is_file():
            raise EngineError(f"storyboard font not found: {self.font_path}")
        self._loaded = True

    def identity(self) -> dict[str, Any]:
        # Pillow's version is part of it: its bundled font and rasterizer decide the exact pixels.
        return {
            "engine": "storyboard",
            "version": ENGINE_VERSION,
            "model": None,
            "font": self.font_path.name if self.font_path else "pillow-default",
            "pillow": PIL.__version__,
        }

    def generate(self, prompt: str, *, width: int, height: int, seed: int, label: str = "") -> Image.Image:
        return self.layers(prompt, width=width, height=height, seed=seed, label=label).render()

    def layers(self, prompt: str, *, width: int, height: int, seed: int, label: str = "") -> CardLayers:
        """The card taken apart: its backdrop, its shapes far to near, and what is drawn over them.
        `render()` with no shifts gives exactly `generate`'s picture (the draft clip engine,
        `zray.engines.parallax`, moves the layers at different speeds)."""
        for name, value in (("width", width), ("height", height)):
            if isinstance(value, bool) or not isinstance(value, int) or not MIN_SIDE <= value <= MAX_SIDE:
                raise EngineError(
                    f"storyboard {name} must be an integer in {MIN_SIDE}..{MAX_SIDE}, got {value!r}"
                )
        self.load()
        digest = hashlib.sha256(prompt.encode("utf-8")).digest()
        palette = _palette(digest)
        horizon = int(height * (0.45 + 0.25 * digest[4] / 255))
        safe = safe_area(width, height)
        if safe[2] - safe[0] < MIN_TEXT_WIDTH:
            label = ""  # too small a card for text that moves and Shorts would not cut
        caption = self._caption(prompt, safe=safe) if label else None
        # Shapes stand on the ground above the bottom of the safe area, with a label or without: the
        # bare card (a thumbnail's base) is the labelled card's picture.
        floor = safe[3]
        rng = np.random.default_rng(seed_from("storyboard", prompt, str(seed)))
        shapes = _shapes(rng, width=width, height=height, horizon=horizon, floor=floor, palette=palette)
        return CardLayers(
            backdrop=_backdrop(width, height, horizon, palette),
            shapes=shapes,
            label=label,
            label_font=self._font(max(8, min(width, height) // 16)),
            caption=caption,
            safe=safe,
        )

    def _font(self, size: int) -> Font:
        return _load_font(str(self.font_path) if self.font_path else None, size)

    def _caption(self, prompt: str, *, safe: Box) -> _Caption | None:
        text = " ".join(prompt.split())
        if not text:
            return None
        left, top, right, bottom = safe
        margin = _margin(right - left, bottom - top)
        font = self._font(max(8, min(right - left, bottom - top) // 14))
        line_height = _line_height(font)
        max_lines = max(1, int((bottom - top) * 0.4) // line_height)
        lines = _wrap(text, font, max_width=max(1, right - left - 2 * margin), max_lines=max_lines)
        band_top = bottom - len(lines) * line_height - 2 * margin
        return _Caption(
            lines=lines, font=font, line_height=line_height, top=max(top, band_top), margin=margin, safe=safe
        )


Box = tuple[int, int, int, int]  # left, top, right, bottom (exclusive)


def safe_area(width: int, height: int) -> Box:
    """Where a card's label and text go: inside what the long video's gentle moves always show (the
    window shows at least 1 / (1 + ZOOM) of the card, placed anywhere in it) and within the middle
    column a vertical Short shows of the card (as wide as SHORT_ASPECT of its height)."""
    crop = ZOOM / (1 + ZOOM)
    dx, dy = math.ceil(width * crop) + 1, math.ceil(height * crop) + 1
    column = math.floor(height * SHORT_ASPECT)
    side = max(dx, (width - column + 1) // 2)
    if 2 * side >= width or 2 * dy >= height:  # a card too small for any text to stay clear
        return (width // 2, height // 2, width // 2, height // 2)
    return (side, dy, width - side, height - dy)


@dataclass(frozen=True)
class Shape:
    """One flat shape of a card: drawn with `ImageDraw`'s method `kind` at `xy`, shifted by `dx`."""

    kind: str  # "ellipse", "polygon" or "rectangle"
    xy: tuple[float, ...]  # a box (left, top, right, bottom), or a polygon's points flattened
    fill: RGB
    outline: RGB | None = None
    width: int = 1

    def draw(self, draw: ImageDraw.ImageDraw, dx: float = 0.0) -> None:
        xy = [v + dx if i % 2 == 0 else v for i, v in enumerate(self.xy)] if dx else list(self.xy)
        if self.kind == "polygon":
            draw.polygon(xy, fill=self.fill)
        elif self.kind == "ellipse":
            draw.ellipse(xy, fill=self.fill, outline=self.outline, width=self.width)
        else:
            draw.rectangle(xy, fill=self.fill, outline=self.outline, width=self.width)


@dataclass(frozen=True)
class CardLayers:
    """A storyboard card as layers: a backdrop (gradients that do not change across the width, so
    sliding it sideways shows nothing new), shapes in depth order (the sun, the ridge, the
    foreground), and the label and caption band drawn over everything, fixed to the frame."""

    backdrop: np.ndarray
    shapes: tuple[tuple[Shape, ...], ...]  # far to near
    label: str
    label_font: Font
    caption: _Caption | None
    safe: Box  # where the label and caption go (see `safe_area`)

    def render(self, shifts: tuple[float, ...] = ()) -> Image.Image:
        """The card with layer k slid `shifts[k]` pixels to the right (missing shifts: 0)."""
        image = Image.fromarray(self.backdrop)
        draw = ImageDraw.Draw(image)
        for k, layer in enumerate(self.shapes):
            dx = shifts[k] if k < len(shifts) else 0.0
            for shape in layer:
                shape.draw(draw, dx)
        if self.label:
            _draw_label(image, self.label, safe=self.safe, font=self.label_font)
        if self.caption:
            _draw_caption(image, self.caption)
        return image


@dataclass(frozen=True)
class _Caption:
    lines: list[str]
    font: Font
    line_height: int
    top: int
    margin: int
    safe: Box


def _margin(width: int, height: int) -> int:
    return max(1, min(width, height) // 30)


def _draw_label(image: Image.Image, label: str, *, safe: Box, font: Font) -> None:
    """The scene label in a light tab at the top of the safe area, centred; shrunk to fit its width."""
    left, top, right, _ = safe
    draw = ImageDraw.Draw(image)
    border = max(1, min(image.size) // 200)
    box = draw.textbbox((0, 0), label, font=font)
    pad = max(1, _line_height(font) // 5)
    while box[2] + 2 * pad > right - left and isinstance(font, ImageFont.FreeTypeFont) and font.size > 8:
        font = font.font_variant(size=int(font.size) - 1)
        box = draw.textbbox((0, 0), label, font=font)
    tab_w, tab_h = box[2] + 2 * pad, box[3] + 2 * pad
    x = left + max(0, (right - left - tab_w) // 2)
    panel = (x, top, min(right - 1, x + tab_w), top + tab_h)
    draw.rounded_rectangle(panel, radius=pad, fill=(250, 250, 245), outline=(20, 20, 20), width=border)
    draw.text((x + pad, top + pad), label, font=font, fill=(20, 20, 20))


def _draw_caption(image: Image.Image, caption: _Caption) -> None:
    left, _, right, bottom = caption.safe
    margin = caption.margin
    # A darkened band behind the text keeps it legible on any palette.
    band = image.crop((left, caption.top, right, bottom))
    image.paste(Image.blend(band, Image.new("RGB", band.size, (10, 10, 14)), 0.6), (left, caption.top))
    draw = ImageDraw.Draw(image)
    stroke = max(1, caption.line_height // 20)
    y = caption.top + margin
    for line in caption.lines:
        draw.text(
            (left + margin, y),
            line,
            font=caption.font,
            fill=(255, 255, 255),
            stroke_width=stroke,
            stroke_fill=(0, 0, 0),
        )
        y += caption.line_height


@functools.lru_cache(maxsize=32)
def _load_font(path: str | None, size: int) -> Font:
    if path is None:
        return ImageFont.load_default(size=size)
    return ImageFont.truetype(path, size=size)


def _line_height(font: Font) -> int:
    ascent, descent = font.getmetrics() if isinstance(font, ImageFont.FreeTypeFont) else (10, 2)
    return int((ascent + descent) * 1.15)


def _wrap(text: str, font: Font, *, max_width: int, max_lines: int) -> list[str]:
    """Greedy word wrap; words wider than a line are split, overflow ends in an ellipsis."""
    # No glyph is narrower than an eighth of the font size (zero-width marks aside), so no more than
    # `per_line` characters fit on a line: that bounds the work on a huge prompt.
    size = font.size if isinstance(font, ImageFont.FreeTypeFont) else 8
    per_line = max_width // max(1, int(size) // 8) + 1
    text = text[: (max_lines + 1) * per_line]
    lines: list[str] = []
    current = ""
    for word in text.split(" "):
        if len(lines) > max_lines:
            break  # the rest would be cut anyway: a very long prompt costs no more than a full card
        candidate = f"{current} {word}" if current else word
        if font.getlength(candidate) <= max_width:
            current = candidate
            continue
        if current:
            lines.append(current)
        current = word
        while (
            len(lines) <= max_lines
            and len(current) > 1
            and font.getlength(current[: max_width + 1]) > max_width
        ):
            cut = max(1, _fit(current[:per_line], font, max_width))
            lines.append(current[:cut])
            current = current[cut:]
    if current:
        lines.append(current)
    if len(lines) > max_lines:
        last = lines[max_lines - 1]
        while last and font.getlength(last + "…") > max_width:
            last = last[:-1]
        lines = [*lines[: max_lines - 1], last.rstrip() + "…"]
    return lines


def _fit(text: str, font: Font, max_width: int) -> int:
    low, high = 0, len(text)
    while low < high:
        mid = (low + high + 1) // 2
        if font.getlength(text[:mid]) <= max_width:
            low = mid
        else:
            high = mid - 1
    return low


def _hsv(hue: float, saturation: float, value: float) -> RGB:
    r, g, b = colorsys.hsv_to_rgb(hue % 1.0, saturation, value)
    return round(r * 255), round(g * 255), round(b * 255)


def _palette(digest: bytes) -> dict[str, RGB | list[RGB]]:
    """Colours from the prompt hash; a day/dusk/night mood flips brightness so prompts differ widely."""
    hue = digest[0] / 255
    ground_hue = hue + 0.25 + 0.5 * digest[1] / 255
    mood = digest[2] % 3
    sky_value = (0.95, 0.75, 0.35)[mood]
    return {
        "sky_top": _hsv(hue, 0.55, sky_value * 0.8),
        "sky_bottom": _hsv(hue + 0.08, 0.25, sky_value),
        "ground_top": _hsv(ground_hue, 0.5, 0.3 + 0.4 * digest[3] / 255),
        "ground_bottom": _hsv(ground_hue + 0.05, 0.7, 0.18),
        "shapes": [_hsv(hue + 0.5 + 0.12 * k, 0.6, 0.55 + 0.1 * (k % 3)) for k in range(5)],
        "light": _hsv(hue + 0.1, 0.3, 1.0) if mood != 2 else (235, 235, 220),
    }


def _backdrop(width: int, height: int, horizon: int, palette: dict[str, Any]) -> np.ndarray:
    """Two vertical gradients split at the horizon, computed per row and broadcast across the width."""
    rows = np.empty((height, 3), dtype=np.float32)
    sky = np.linspace(0.0, 1.0, horizon, dtype=np.float32)[:, None]
    rows[:horizon] = (1 - sky) * np.array(palette["sky_top"]) + sky * np.array(palette["sky_bottom"])
    ground = np.linspace(0.0, 1.0, height - horizon, dtype=np.float32)[:, None]
    rows[horizon:] = (1 - ground) * np.array(palette["ground_top"]) + ground * np.array(
        palette["ground_bottom"]
    )
    column = np.round(rows).astype(np.uint8)
    return np.ascontiguousarray(np.broadcast_to(column[:, None, :], (height, width, 3)))


def _shapes(
    rng: np.random.Generator,
    *,
    width: int,
    height: int,
    horizon: int,
    floor: int,
    palette: dict[str, Any],
) -> tuple[tuple[Shape, ...], tuple[Shape, ...], tuple[Shape, ...]]:
    """The sun or moon, the ridge and the foreground, each drawn in this order."""
    short = min(width, height)
    colors: list[RGB] = palette["shapes"]
    # A sun or moon in the sky.
    radius = short * rng.uniform(0.06, 0.12)
    cx, cy = width * rng.uniform(0.15, 0.85), horizon * rng.uniform(0.2, 0.6)
    sky = (Shape("ellipse", (cx - radius, cy - radius, cx + radius, cy + radius), palette["light"]),)
    # A ridge of hills or mountains standing on the horizon.
    ridge = []
    for k in range(int(rng.integers(2, 5))):
        peak_x = width * rng.uniform(-0.1, 1.1)
        half = width * rng.uniform(0.12, 0.3)
        peak_y = horizon - height * rng.uniform(0.1, 0.3)
        ridge.append(
            Shape("polygon", (peak_x - half, horizon, peak_x, peak_y, peak_x + half, horizon), colors[k])
        )
    # Foreground blocks and discs on the ground.
    ground = []
    for k in range(int(rng.integers(2, 5))):
        x = width * rng.uniform(0.05, 0.9)
        w, h = short * rng.uniform(0.06, 0.18), short * rng.uniform(0.06, 0.2)
        # Stand on the ground but above the caption band, when there is room for it.
        y = horizon + max(0.0, floor - horizon) * rng.uniform(0.3, 0.95)
        color = colors[(k + 2) % len(colors)]
        kind = "rectangle" if rng.random() < 0.5 else "ellipse"
        ground.append(Shape(kind, (x, y - h, x + w, y), color, (20, 20, 20), max(1, short // 300)))
    return sky, tuple(ridge), tuple(ground)
