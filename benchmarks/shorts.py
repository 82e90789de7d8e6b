"""Benchmark: what a language's Shorts cost against its long video, in CPU seconds (issue 13).

    python benchmarks/shorts.py                  # the demo's Spanish narration, photo-like pictures
    python benchmarks/shorts.py --lang en --storyboard

The episode is the demo script (6 scenes, about 70 s a language): `zray run` in this process
(draft engines, the in-process executor, x264 `final` = medium CRF 18, 1920x1072, 24 fps) makes
its pictures, narration and music once. Each scene's picture is the studio's own (`image_file`): a
photo-like texture with detail at every scale, so x264 works as it would on Z-Image's pictures (the
draft storyboard cards are flat and cost x264 almost nothing; `--storyboard` keeps them). Then the
same command is run again in each of these ways, each time with only its own steps stale (and the
audio chunk caches emptied, so each pays for its own mastering), and the process's CPU time
(`time.process_time`, every thread of the in-process executor included) is measured:

1. the long video of stills, as the draft profile makes it (`video.motion = none`, cuts);
2. the long video with `video.motion = gentle` and `video.transition = 0.5`, as production makes it;
3. the same with `captions.burn = true`: every scene of the language encoded under its caption
   band. Burned captions make a long video's scene segments differ per language: the stills and
   moving segments that every language shares are then each language's own, so each language pays
   this in full;
4. all the language's Shorts (`--shorts`, 1080x1920, crossfades of 0.5 s, captions burned in).

Goal: (4) costs at most (2).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "inputs" / "scripts" / "demo" / "SAGA_01_Episode_01.json"
# Larger than the frame by the gentle move's deepest zoom (8 %), so the move never enlarges it.
PICTURE = (2080, 1168)


def photo_like(seed: int, size: tuple[int, int] = PICTURE) -> Image.Image:
    """Detail at every scale (octaves of smooth noise, coloured): x264 spends on it what it spends on
    a photograph, unlike on a flat card."""
    rng = np.random.default_rng(seed)
    width, height = size
    total = np.zeros((height, width, 3), np.float32)
    amplitude = 1.0
    for cells in (4, 8, 16, 32, 64, 128, 256, 512):
        grid = rng.random((max(2, cells * height // width), cells, 3), dtype=np.float32)
        layer = Image.fromarray((grid * 255).astype(np.uint8)).resize(size, Image.Resampling.BICUBIC)
        total += amplitude * np.asarray(layer, np.float32)
        amplitude *= 0.62
    total -= total.min()
    total *= 255 / total.max()
    return Image.fromarray(total.astype(np.uint8))


def make_episode(folder: Path, *, storyboard: bool) -> Path:
    data = json.loads(DEMO.read_text(encoding="utf-8"))
    scripts = folder / "scripts" / "bench"
    scripts.mkdir(parents=True)
    if not storyboard:
        for index, scene in enumerate(data["scenes"]):
            name = f"picture_{index}.png"
            photo_like(index).save(scripts / name)
            scene["image_file"] = name
    path = scripts / DEMO.name
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lang", default="es")
    parser.add_argument("--storyboard", action="store_true", help="keep the draft storyboard cards")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args()

    from zray.config import load_config
    from zray.pipeline.run import RunRequest, run_episode

    lang = args.lang
    with tempfile.TemporaryDirectory(prefix="zray-shorts-bench-") as tmp:
        script = make_episode(Path(tmp), storyboard=args.storyboard)
        output = Path(tmp) / "out"
        folder = output / "bench" / script.stem
        request = RunRequest(script=script, languages=[lang])

        def run(name: str | None, **settings) -> tuple[float, float, dict]:
            """One in-process `zray run`; the CPU and wall seconds it took, and its run.json."""
            # Every variant pays for its own audio: no AAC chunk of another one is reused.
            shutil.rmtree(folder / "assets" / "tmp" / "audio", ignore_errors=True)
            shutil.rmtree(folder / "assets" / "tmp" / "shorts", ignore_errors=True)
            config = load_config(
                None, output=str(output), profile="draft", quiet=True, executor="in-process", **settings
            )
            cpu, wall = time.process_time(), time.perf_counter()
            report = run_episode(request, config)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            assert report.ok, report.failed
            record = json.loads((folder / "run.json").read_text())
            if name:
                built = [s for s, info in record["last_run"]["steps"].items() if info.get("state") == "built"]
                print(f"  {name}: {len(built)} steps ({', '.join(sorted({b.split(':')[0] for b in built}))})")
            return cpu, wall, record

        run(None, video={"motion": "none", "transition": 0})  # pictures, narration, music
        # Forget the long video, so the first variant pays for its still segments too.
        record = json.loads((folder / "run.json").read_text())
        record["nodes"] = {
            k: v for k, v in record["nodes"].items() if not k.startswith(("video:", "segment:"))
        }
        (folder / "run.json").write_text(json.dumps(record))
        moving = {"motion": "gentle", "transition": 0.5}
        times: dict[str, tuple[float, float]] = {}
        print(f"demo episode, {lang}, {'storyboard cards' if args.storyboard else 'photo-like pictures'}:")
        cpu, wall, record = run("long video, stills", video={"motion": "none", "transition": 0})
        times["long video, stills (draft)"] = (cpu, wall)
        seconds = record["nodes"][f"video:{lang}"]["result"]["duration"]
        cpu, wall, _ = run("long video, gentle motion", video=moving)
        times["long video, gentle motion and crossfades"] = (cpu, wall)
        # The long video above is current for this one: only the Shorts are made.
        cpu, wall, record = run("Shorts", video=moving, shorts={"enabled": True})
        times["all Shorts (1080x1920, captions)"] = (cpu, wall)
        shorts = record["nodes"][f"shorts:{lang}"]["result"]["shorts"]
        cpu, wall, _ = run("captions burned", video=moving, captions={"burn": True})
        times["long video, motion, captions burned in"] = (cpu, wall)

    gentle = times["long video, gentle motion and crossfades"][0]
    still = times["long video, stills (draft)"][0]
    made = times["all Shorts (1080x1920, captions)"][0]
    burned = times["long video, motion, captions burned in"][0]
    lengths = ", ".join(f"{short['duration']:.0f} s" for short in shorts)
    total = sum(short["duration"] for short in shorts)
    print(
        f"long video {seconds:.1f} s at 1920x1072; {len(shorts)} Shorts, {total:.1f} s in all ({lengths}); "
        f"x264 medium CRF 18, {os.cpu_count()} cores"
    )
    for name, (cpu, wall) in times.items():
        print(f"  {name:42s} {cpu:7.1f} s CPU {wall:7.1f} s wall")
    print(
        f"  Shorts / long video with gentle motion: {made / gentle:.2f} (goal <= 1); Shorts / stills: "
        f"{made / still:.1f}; captions burned / gentle motion: {burned / gentle:.2f} "
        "(paid again by every language: burned captions make each language's segments its own)"
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "command": "python benchmarks/shorts.py " + " ".join(sys.argv[1:]),
                    "machine": f"{platform.machine()}, {os.cpu_count()} cores",
                    "pictures": "storyboard cards" if args.storyboard else "photo-like",
                    "lang": lang,
                    "seconds": seconds,
                    "shorts": [s["duration"] for s in shorts],
                    "cpu_seconds": {name: round(cpu, 1) for name, (cpu, _) in times.items()},
                    "wall_seconds": {name: round(wall, 1) for name, (_, wall) in times.items()},
                },
                indent=1,
            )
            + "\n"
        )


if __name__ == "__main__":
    sys.exit(main())
