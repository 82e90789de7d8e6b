"""Make docs/frames/motions.jpg: one draft scene under the three motions, at its first frame and 4 s in.

    python docs/make_motion_frames.py

Columns: `none` (the still), `gentle` (the slow camera move), `generate` with the draft's parallax
engine (the storyboard card's layers sliding at different speeds). The production profile's
`generate` is Wan2.2 image-to-video, which needs a GPU and its weights.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from zray.engines.parallax import ParallaxVideoEngine
from zray.engines.storyboard import StoryboardImageEngine
from zray.media import moves
from zray.media.frames import MovingStill, Picture
from zray.media.generated import CLIP_FPS

OUT = Path(__file__).resolve().parent / "frames" / "motions.jpg"
PROMPT = "A quiet harbour at night, lanterns on the water, hills behind"
WIDTH, HEIGHT, SEED, LABEL = 640, 352, 4, "Scene 3"
LATER = 4 * CLIP_FPS  # 4 s in


def rgb(packed: np.ndarray) -> np.ndarray:
    import av

    return av.VideoFrame.from_ndarray(packed, format="yuv420p").to_ndarray(format="rgb24")


def main() -> None:
    card = StoryboardImageEngine().generate(PROMPT, width=WIDTH, height=HEIGHT, seed=SEED, label=LABEL)
    still = np.asarray(card)
    gentle = MovingStill(
        Picture(card, width=WIDTH, height=HEIGHT, zoom=1 + moves.ZOOM),
        moves.choose_move(PROMPT),
        fps=CLIP_FPS,
    )
    gentle_frames = [rgb(f) for f in gentle.frames(0, 1)] + [rgb(next(gentle.frames(LATER, 1)))]
    clip = list(
        ParallaxVideoEngine().generate(
            card,
            PROMPT,
            width=WIDTH,
            height=HEIGHT,
            frames=LATER + 1,
            seed=SEED,
            layers=(PROMPT, SEED, LABEL),
        )
    )
    columns = [
        ("none", [still, still]),
        ("gentle", gentle_frames),
        ("generate (parallax)", [clip[0], clip[-1]]),
    ]
    pad, title = 8, 22
    sheet = Image.new("RGB", (3 * WIDTH + 4 * pad, 2 * HEIGHT + 3 * pad + title), (250, 250, 250))
    draw = ImageDraw.Draw(sheet)
    for c, (name, (first, later)) in enumerate(columns):
        x = pad + c * (WIDTH + pad)
        draw.text((x, 4), f"{name}: first frame, then 4 s in", fill=(20, 20, 20))
        sheet.paste(Image.fromarray(first), (x, title + pad))
        sheet.paste(Image.fromarray(later), (x, title + 2 * pad + HEIGHT))
    sheet = sheet.resize((sheet.width // 2, sheet.height // 2), Image.Resampling.LANCZOS)
    sheet.save(OUT, quality=85)
    print(OUT)


if __name__ == "__main__":
    main()
