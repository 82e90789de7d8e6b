"""The draft storyboard picture without its scene tab and prompt band, for the README's frames.

The draft profile's cards name their scene and prompt so a person can check a draft; the README's
frames show what the motion and crossfades look like, so they use the bare picture.
"""

from __future__ import annotations

from PIL import Image

from zray.engines.storyboard import StoryboardImageEngine


class PlainCards(StoryboardImageEngine):
    def generate(self, prompt: str, *, width: int, height: int, seed: int, label: str = "") -> Image.Image:
        return super().generate(prompt, width=width, height=height, seed=seed, label="")
