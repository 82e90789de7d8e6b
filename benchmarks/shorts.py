"""Benchmark: what a language's Shorts cost against its long video, in CPU seconds (issue 13).

    python benchmarks/shorts.py                  # the demo's Spanish narration, photo-like pictures
    python benchmarks/shorts.py --lang en --storyboard

The episode is the demo script (6 scenes, about 80 s a language), run once by `zray run` (draft
engines, x264 `final` = medium CRF 18, 1920x1072, in this process) to make its pictures, narration
and music. Each scene's picture is the studio's own (`image_file`): a photo-like texture with detail
at every scale, so x264 works as it would on Z-Image's pictures (the draft storyboard cards are flat
and cost x264 almost nothing; `--storyboard` keeps them). Then, from those same inputs and with
every cache empty, each of these is made again in this process on one thread, and its CPU time
(`time.process_time`) measured:

1. the long video as zray makes it today: a still GOP per scene, repeated, and the mastered audio;
2. the long video with every frame moving: each scene panned across (the vectorised yuv420p
   renderer the Shorts use) and every frame through x264, the cost `video.motion = gentle` has;
   the motion work (issue 12) had not reached main when this was written, so this stands in for it;
3. the long video with `captions.burn = true`: every frame of every still scene encoded under its
   caption band. Burned captions make a long video's scene segments differ per language: each
   language pays this, where stills are encoded once for every language;
4. all the language's Shorts at 1080x1920 (grouped from the chapters, panned, captions burned in).

Goal: (4) costs at most (2).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "inputs" / "scripts" / "demo" / "SAGA_01_Episode_01.json"


def photo_like(seed: int, size: tuple[int, int] = (1920, 1072)) -> Image.Image:
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


def make_episode(folder: Path, *, lang: str, storyboard: bool) -> Path:
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


def cpu(work: Callable[[], object]) -> float:
    started = time.process_time()
    work()
    return time.process_time() - started


def moving_long_video(prep, lang: str, store, nodes, results) -> None:
    """The long video with every frame moving: each scene panned and encoded frame by frame, then
    assembled with its audio as `assemble` does (cold caches)."""
    from zray.media.pan import PanPicture, plan_pan
    from zray.media.video.sequence import encode_frames
    from zray.nodes import SegmentResult
    from zray.pipeline import steps

    video = prep.plan.nodes[f"video:{lang}"]
    settings = video.request.video
    segments = []
    for index, pad in enumerate(video.inputs["pads"]):
        frames = results[pad].frames
        image = results[video.inputs["segments"][index].replace("segment:", "image:")]
        with store.local_copy(image.path) as local:
            picture = PanPicture(Image.open(local), width=settings.width, height=settings.height)
        pan = plan_pan(
            picture.margin, width=settings.width, frames=frames, fps=settings.fps, rightwards=index % 2 == 0
        )
        key = f"bench/moving_{index}.h264"
        with store.writer(key) as tmp:
            encode_frames(picture.frames(pan, 0, frames), tmp, count=frames, settings=settings, threads=1)
        segments.append(SegmentResult(path=key))
    inputs = dataclasses.replace(video.resolve(results), segments=tuple(segments))
    request = dataclasses.replace(video.request, output="bench/moving.mp4", audio_cache="bench/audio_moving")
    steps.assemble(store, request, inputs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lang", default="es")
    parser.add_argument("--storyboard", action="store_true", help="keep the draft storyboard cards")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args()

    from zray.config import load_config
    from zray.pipeline import steps
    from zray.pipeline.run import RunRequest, preview, run_episode
    from zray.pipeline.shorts import make_shorts

    with tempfile.TemporaryDirectory(prefix="zray-shorts-bench-") as tmp:
        script = make_episode(Path(tmp), lang=args.lang, storyboard=args.storyboard)
        settings = dict(output=str(Path(tmp) / "out"), profile="draft", quiet=True, executor="in-process")
        config = load_config(None, **settings, shorts={"enabled": True}, captions={"burn": True})
        request = RunRequest(script=script, languages=[args.lang])
        plain = load_config(None, **settings)
        report = run_episode(request, plain)  # the episode's pictures, narration and music
        assert report.ok, report.failed
        prep = preview(request, plain)  # the long video as made
        full = preview(request, config).plan.nodes  # its captioned scenes, and the Shorts
        store, nodes = prep.store, prep.plan.nodes
        results = {
            node_id: prep.record.result(node)
            for node_id, node in nodes.items()
            if node_id in prep.record.nodes
        }
        lang = args.lang
        video = nodes[f"video:{lang}"]
        seconds = sum(results[p].frames for p in video.inputs["pads"]) / video.request.video.fps

        def still_long_video() -> None:
            segments = []
            for node_id in video.inputs["segments"]:
                node = nodes[node_id]
                out = dataclasses.replace(node.request, output=f"bench/{node_id.replace(':', '_')}.h264")
                segments.append(steps.segment(store, out, node.resolve(results)))
            inputs = dataclasses.replace(video.resolve(results), segments=tuple(segments))
            out = dataclasses.replace(
                video.request, output="bench/still.mp4", audio_cache="bench/audio_still"
            )
            steps.assemble(store, out, inputs)

        def captioned_long_video() -> None:
            segments = []
            for index, pad in enumerate(video.inputs["pads"]):
                node = full[f"captioned:{lang}:{pad.rsplit(':', 1)[1]}"]
                out = dataclasses.replace(node.request, output=f"bench/captioned_{index}.h264")
                segments.append(steps.captioned(store, out, node.resolve(results)))
            inputs = dataclasses.replace(video.resolve(results), segments=tuple(segments))
            out = dataclasses.replace(
                video.request, output="bench/captioned.mp4", audio_cache="bench/audio_cap"
            )
            steps.assemble(store, out, inputs)

        shorts_node = full[f"shorts:{lang}"]
        made: list = []

        def all_shorts() -> None:
            request = dataclasses.replace(shorts_node.request, folder=f"shorts/{lang}", work="bench/shorts")
            made.append(make_shorts(store, request, shorts_node.resolve(results)))

        times = {
            "long video, stills (today)": cpu(still_long_video),
            "long video, every frame moving": cpu(
                lambda: moving_long_video(prep, lang, store, nodes, results)
            ),
            "long video, captions burned in": cpu(captioned_long_video),
            "all Shorts": cpu(all_shorts),
        }
        prep.release()
        shorts = made[0].shorts
        short_seconds = sum(s.duration for s in shorts)

    moving = times["long video, every frame moving"]
    still = times["long video, stills (today)"]
    print(
        f"demo episode, {lang}: long video {seconds:.1f} s at 1920x1072; {len(shorts)} Shorts, "
        f"{short_seconds:.1f} s in all at 1080x1920 ({', '.join(f'{s.duration:.0f} s' for s in shorts)}); "
        f"x264 medium CRF 18, one thread, {'storyboard cards' if args.storyboard else 'photo-like pictures'}"
    )
    for name, value in times.items():
        print(
            f"  {name:34s} {value:7.1f} s CPU  ({value / seconds * 1000 / 24:5.1f} ms a frame of the long video)"
        )
    print(
        f"  Shorts / long video with every frame moving: {times['all Shorts'] / moving:.2f} (goal <= 1); "
        f"Shorts / long video of stills: {times['all Shorts'] / still:.1f}; "
        f"captions burned / stills: {times['long video, captions burned in'] / still:.1f} "
        "(and burned captions are paid per language)"
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
                    "shorts": [s.duration for s in shorts],
                    "cpu_seconds": times,
                },
                indent=1,
            )
        )


if __name__ == "__main__":
    sys.exit(main())
