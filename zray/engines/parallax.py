"""Parallax clips: the draft profile's video engine, deterministic and CPU-only.

A storyboard card (`zray.engines.storyboard`) is flat shapes over a backdrop; here the camera trucks
sideways and each layer slides at its own speed (the sun barely, the ridge a little, the foreground
most), as a scene seen from a moving train. The frame, the scene label and the prompt band stay
fixed on top, so the draft still says which scene it is. The card is rebuilt from the prompt, seed
and label it was drawn with (`layers`); its first frame must equal the picture handed in, which
keeps the clip honest: a picture that is not that card (a studio's own, or a card from another
font) gets the gentle move instead, a slow zoom from the whole picture. The same request always
gives the same frames.

Frames are yielded one at a time (a 5 s clip at 1080p would be 750 MB held at once).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import PIL
from PIL import Image

from zray.engines.base import BaseEngine, EngineError, EngineSettings
from zray.engines.storyboard import MAX_SIDE, MIN_SIDE, StoryboardImageEngine
from zray.media import moves
from zray.media.generated import CLIP_FPS, continuation_move

ENGINE_VERSION = "2"  # 2: the seed sets the camera's pace as well as its direction
# Frame widths a second the nearest layer travels at full speed (at the middle pace); the others in
# proportion. The seed picks the pace in PACES and the direction, so a new seed (a clip re-rolled in
# review) is a different clip, not one of two.
SPEED = 0.04
PACES = (0.75, 1.25)
DEPTHS = (0.12, 0.4, 1.0)  # the sun, the ridge, the foreground (storyboard's layers, far to near)
EASE_SECONDS = 1.0  # the camera gathers speed from rest (no jolt on the first frames)


@dataclass(frozen=True)
class ParallaxSettings(EngineSettings):
    pass


class ParallaxVideoEngine(BaseEngine):
    """Moves a storyboard card's layers under a sideways camera; any other picture gets a gentle zoom."""

    name: ClassVar[str] = "parallax"
    role: ClassVar[str] = "video"
    uses_gpu: ClassVar[bool] = False
    settings_type = ParallaxSettings

    def __init__(self, settings: ParallaxSettings | None = None) -> None:
        super().__init__(settings)
        self._cards = StoryboardImageEngine()

    def load(self) -> None:
        self._cards.load()

    def identity(self) -> dict[str, Any]:
        # The card's drawing (the storyboard's identity) decides the frames; Pillow rasterises them.
        return {
            "engine": "parallax",
            "version": ENGINE_VERSION,
            "model": None,
            "storyboard": self._cards.identity(),
            "pillow": PIL.__version__,
            "max_pixels": None,  # clips are made at the frame's own size
            "fps": CLIP_FPS,
        }

    def generate(
        self,
        image: Image.Image,
        prompt: str,
        *,
        width: int,
        height: int,
        frames: int,
        seed: int,
        layers: tuple[str, int, str] | None = None,
    ) -> Iterator[np.ndarray]:
        """`frames` RGB frames, the first the picture; lazily (see the module docstring)."""
        _check(image=image, width=width, height=height, frames=frames, seed=seed)
        self.load()
        digest = hashlib.sha256(f"{prompt}\n{seed}".encode()).digest()
        direction = 1.0 if digest[0] % 2 else -1.0
        pace = PACES[0] + (PACES[1] - PACES[0]) * int.from_bytes(digest[1:3]) / 0xFFFF
        card = self._card(image, layers, width=width, height=height)
        if card is not None:
            return self._parallax(card, width=width, frames=frames, velocity=direction * pace)
        return _gentle(image, f"{prompt}\n{seed}", width=width, height=height, frames=frames)

    def _card(
        self, image: Image.Image, layers: tuple[str, int, str] | None, *, width: int, height: int
    ) -> Any:
        """The storyboard card the picture is, taken apart; None when it is not one at this size."""
        if layers is None or image.size != (width, height):
            return None
        prompt, seed, label = layers
        card = self._cards.layers(prompt, width=width, height=height, seed=seed, label=label)
        same = np.array_equal(np.asarray(card.render()), np.asarray(image.convert("RGB")))
        return card if same else None

    def _parallax(self, card: Any, *, width: int, frames: int, velocity: float) -> Iterator[np.ndarray]:
        for index in range(frames):
            travel = velocity * SPEED * width * moves.travelled(index / CLIP_FPS, ease=EASE_SECONDS)
            yield np.asarray(card.render(tuple(depth * travel for depth in DEPTHS)))


def _gentle(image: Image.Image, key: str, *, width: int, height: int, frames: int) -> Iterator[np.ndarray]:
    """A slow zoom into the picture, cover-fitted to the frame, from the whole of it."""
    rgb = image.convert("RGB")
    move = continuation_move(key)
    # A picture larger than the deepest window needs is shrunk once (as zray.media.frames does).
    need = max(width / rgb.width, height / rgb.height) * move.max_zoom
    if need < 1:
        rgb = rgb.resize(
            (max(2, round(rgb.width * need)), max(2, round(rgb.height * need))), Image.Resampling.LANCZOS
        )
    base = moves.cover_box(rgb.width, rgb.height, frame_width=width, frame_height=height)
    for index in range(frames):
        box = moves.window(move, index / CLIP_FPS, base=base).box
        inside = (
            max(0.0, box[0]),
            max(0.0, box[1]),
            min(float(rgb.width), box[2]),
            min(float(rgb.height), box[3]),
        )
        yield np.asarray(rgb.resize((width, height), Image.Resampling.BICUBIC, box=inside))


def _check(*, image: Any, width: Any, height: Any, frames: Any, seed: Any) -> None:
    if not isinstance(image, Image.Image):
        raise EngineError(f"a clip starts from a picture (a PIL image), not {type(image).__name__}")
    for name, value in (("width", width), ("height", height)):
        if isinstance(value, bool) or not isinstance(value, int) or not MIN_SIDE <= value <= MAX_SIDE:
            raise EngineError(f"parallax {name} must be an integer in {MIN_SIDE}..{MAX_SIDE}, got {value!r}")
    if isinstance(frames, bool) or not isinstance(frames, int) or frames < 5 or frames % 4 != 1:
        raise EngineError(f"clip frames must be 4n + 1 and at least 5, not {frames!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise EngineError(f"parallax seed must be an integer, not {seed!r}")
