"""Make docs/frames/: three frames of the demo episode with gentle motion and crossfades.

    python docs/make_frames.py [--keep WORKDIR]

Runs `zray run` on the demo script (English, draft profile, 1280x720, `video.motion = gentle`,
`video.transition = 0.5`), then takes from the finished MP4 two frames from the middle of scenes
(where the camera move is under way) and one from the middle of a crossfade, and writes them as
small JPEGs beside this file.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import av
from PIL import Image

DOCS = Path(__file__).resolve().parent
REPO = DOCS.parent
SCRIPT = REPO / "inputs" / "scripts" / "demo" / "SAGA_01_Episode_01.json"
FPS = 24
WIDTH = 640  # of the JPEGs: small enough for a README, large enough to read the picture


def frames_at(path: Path, wanted: dict[int, str]) -> dict[str, Image.Image]:
    found = {}
    with av.open(str(path)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index in wanted:
                found[wanted[index]] = frame.to_image()
            if len(found) == len(wanted):
                break
    return found


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        out = args.keep or Path(scratch)
        env = dict(
            os.environ,
            ZRAY_VIDEO__MOTION="gentle",
            ZRAY_VIDEO__TRANSITION="0.5",
            ZRAY_VIDEO__WIDTH="1280",
            ZRAY_VIDEO__HEIGHT="720",
        )
        cmd = [sys.executable, "-m", "zray", "run", str(SCRIPT), "--lang", "en", "--profile", "draft"]
        subprocess.run([*cmd, "--output", str(out), "--quiet"], check=True, env=env, cwd=REPO)
        folder = out / "demo" / SCRIPT.stem
        nodes = json.loads((folder / "run.json").read_text())["nodes"]
        intro = nodes["intro"]["result"]["frames"] if "intro" in nodes else 0
        scenes = sum(1 for n in nodes if n.startswith("pad:en:"))
        pads = [nodes[f"pad:en:{i}"]["result"]["frames"] for i in range(scenes)]
        starts = [intro + sum(pads[:i]) for i in range(scenes)]
        wanted = {
            starts[1] + pads[1] * 2 // 3: "motion_scene2.jpg",
            starts[4] + pads[4] // 2: "motion_scene5.jpg",
            # Halfway through the crossfade into scene 4 (12 frames, ending on its first frame).
            starts[3] - 6: "crossfade_scene4.jpg",
        }
        video = folder / nodes["video:en"]["outputs"][0]
        target = DOCS / "frames"
        target.mkdir(exist_ok=True)
        for name, image in frames_at(video, wanted).items():
            small = image.resize((WIDTH, round(WIDTH * image.height / image.width)), Image.Resampling.LANCZOS)
            small.save(target / name, quality=82, optimize=True, progressive=True)
            print(f"{target / name}: {(target / name).stat().st_size // 1024} KB")


if __name__ == "__main__":
    main()
