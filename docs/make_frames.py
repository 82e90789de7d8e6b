"""Make docs/frames/: three frames of the demo episode with gentle motion and crossfades.

    python docs/make_frames.py [--keep WORKDIR]

Runs `zray run` on the demo script (English, draft profile with its cards drawn bare, 1280x720,
`video.motion = gentle`, `video.transition = 0.5`), then takes from the finished MP4 two frames from the middle of scenes
(where the camera move is under way) and one from the middle of a crossfade, and writes them as
small JPEGs beside this file. Then the Spanish Shorts (`--shorts`, 1080x1920, captions burned in)
and three frames of the first one, where its captions highlight a word.
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
SHORT_WIDTH = 360
SHORT_SECONDS = (0.9, 2.0, 14.0)  # two caption states of the first scene, one of the third


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
            PYTHONPATH=os.pathsep.join([str(DOCS), os.environ.get("PYTHONPATH", "")]),
            ZRAY_ENGINES__IMAGE="plain_cards:PlainCards",  # the picture without the draft's labels
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
        save(frames_at(video, wanted), target, width=WIDTH)
        shorts_env = {k: v for k, v in env.items() if not k.startswith("ZRAY_VIDEO__")}
        shorts_env.update(ZRAY_VIDEO__MOTION="gentle", ZRAY_VIDEO__TRANSITION="0.5")
        cmd = [
            sys.executable,
            "-m",
            "zray",
            "run",
            str(SCRIPT),
            "--lang",
            "es",
            "--profile",
            "draft",
            "--shorts",
        ]
        subprocess.run(
            [*cmd, "--output", str(out / "shorts"), "--quiet"], check=True, env=shorts_env, cwd=REPO
        )
        record = json.loads((out / "shorts" / "demo" / SCRIPT.stem / "run.json").read_text())
        first = record["nodes"]["shorts:es"]["result"]["shorts"][0]
        short = out / "shorts" / "demo" / SCRIPT.stem / first["path"]
        wanted = {round(seconds * FPS): f"short_{seconds}s.jpg" for seconds in SHORT_SECONDS}
        save(frames_at(short, wanted), target, width=SHORT_WIDTH)


def save(images: dict[str, Image.Image], target: Path, *, width: int) -> None:
    for name, image in images.items():
        small = image.resize((width, round(width * image.height / image.width)), Image.Resampling.LANCZOS)
        small.save(target / name, quality=82, optimize=True, progressive=True)
        print(f"{target / name}: {(target / name).stat().st_size // 1024} KB")


if __name__ == "__main__":
    main()
