"""Make the demo's intro clip: 3 s, 1280x720 at 30 fps with a rising chime (AAC 44.1 kHz).

It deliberately differs from the episode (size, frame rate, sample rate) so the demo exercises
zray's letterboxing, frame-rate conversion and resampling of intros. Run:
    python inputs/make_demo_intro.py inputs/assets/demo/intro.mp4
"""

from __future__ import annotations

import math
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFont

WIDTH, HEIGHT, FPS, SECONDS, RATE = 1280, 720, 30, 3, 44_100
FONT = Path(__file__).resolve().parent.parent / "zray" / "media" / "fonts" / "Roboto-Black.ttf"


def frame_image(index: int) -> Image.Image:
    t = index / (FPS * SECONDS)
    y = np.linspace(0, 1, HEIGHT)[:, None, None]
    sky = (np.array([10, 12, 40]) * (1 - y) + np.array([120, 30, 60]) * y) * (0.4 + 0.6 * min(1.0, t * 2))
    image = Image.fromarray(np.broadcast_to(sky, (HEIGHT, WIDTH, 3)).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    font = ImageFont.truetype(str(FONT), 96)
    alpha = int(255 * min(1.0, max(0.0, (t - 0.15) * 3)))
    draw.text((WIDTH / 2, HEIGHT / 2), "zray demo", font=font, anchor="mm", fill=(alpha, alpha, alpha))
    return image


def chime() -> np.ndarray:
    t = np.arange(SECONDS * RATE) / RATE
    notes = [523.25, 659.25, 783.99, 1046.5]
    out = np.zeros_like(t)
    for i, freq in enumerate(notes):
        start = 0.3 + i * 0.35
        env = np.where(t >= start, np.exp(-(t - start) * 2.5), 0.0)
        out += 0.2 * env * np.sin(2 * math.pi * freq * t)
    return np.stack([out, out]).astype(np.float32)


def main(dest: str) -> None:
    Path(dest).parent.mkdir(parents=True, exist_ok=True)
    with av.open(dest, "w", options={"movflags": "+faststart"}) as container:
        vstream = container.add_stream("libx264", rate=FPS, options={"crf": "30", "preset": "veryslow"})
        vstream.width, vstream.height, vstream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        astream = container.add_stream("aac", rate=RATE, layout="stereo")
        for i in range(FPS * SECONDS):
            frame = av.VideoFrame.from_image(frame_image(i))
            frame.pts, frame.time_base = i, Fraction(1, FPS)
            container.mux(vstream.encode(frame))
        container.mux(vstream.encode())
        sound = chime()
        for start in range(0, sound.shape[1], 1024):
            chunk = np.ascontiguousarray(sound[:, start : start + 1024])
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
            frame.sample_rate, frame.pts = RATE, start
            container.mux(astream.encode(frame))
        container.mux(astream.encode())


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "inputs/assets/demo/intro.mp4")
