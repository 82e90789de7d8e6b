"""Benchmark: an episode with gentle motion and crossfades (issue 12), zray against moviepy, in one run.

    python benchmarks/motion.py                  # 10 scenes, about 4 minutes, 3 languages, 1920x1072
    python benchmarks/motion.py --scenes 3 --skip-moviepy

The episode is made here: 10 scenes of about 24 s of narration each in English, Spanish and Catalan
(espeak-ng, the draft profile), 24 fps, x264 medium CRF 18 (`final`), AAC, with
`ZRAY_VIDEO__MOTION=gentle ZRAY_VIDEO__TRANSITION=0.5`. Timed, each a fresh `zray run` process into
an empty output folder, as a user would start it (Ray start-up, images, narration and music included):

1. zray, English only;
2. zray, all three languages (moving scenes are encoded once at their longest language's length,
   each language re-encodes only its last partial GOPs and crossfades);
3. moviepy making the English video from zray's scene images and soundtrack: a Ken Burns zoom by
   `resized` on every frame and `CrossFadeIn` into each scene (as MoneyPrinterTurbo-style tools do),
   written at the same settings (24 fps, libx264 medium, CRF 18, AAC 192 kb/s).

Printed: each time with its real-time factor (seconds of video per second of work), moviepy against
zray's one language (goal: at least 2.5x), zray's three languages against its one (goal: at most
1.5x), and moviepy's three languages (three times its one) against zray's three.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from assembly import count_frames, write_like_zray

REPO = Path(__file__).resolve().parent.parent
FPS = 24
SAMPLE_RATE = 48_000
FADE_SECONDS = 0.5
KEN_BURNS_ZOOM = 0.08  # moviepy's zoom over a scene: the depth of zray's gentle move

SENTENCES = {
    "en": [
        "The forest at the edge of the world grows in a light that no human eye has ever seen.",
        "Its leaves are black, because a black leaf drinks every colour a red star can give.",
        "Far below, the roots reach into warm stone, and the stone remembers an ancient ocean.",
        "Every evening the wind carries a slow song through the branches, older than any language.",
        "Small animals with enormous eyes move between the trunks, careful and quiet, listening.",
    ],
    "es": [
        "El bosque del fin del mundo crece bajo una luz que ningún ojo humano ha visto jamás.",
        "Sus hojas son negras, porque una hoja negra bebe todos los colores de una estrella roja.",
        "Muy abajo, las raíces llegan a la piedra tibia, y la piedra recuerda un océano antiguo.",
        "Cada tarde el viento lleva una canción lenta entre las ramas, más vieja que cualquier idioma.",
        "Pequeños animales de ojos enormes se mueven entre los troncos, atentos y callados.",
    ],
    "ca": [
        "El bosc de la fi del món creix sota una llum que cap ull humà no ha vist mai.",
        "Les seves fulles són negres, perquè una fulla negra beu tots els colors d'una estrella vermella.",
        "Molt avall, les arrels arriben a la pedra tèbia, i la pedra recorda un oceà antic.",
        "Cada vespre el vent porta una cançó lenta entre les branques, més vella que cap llengua.",
        "Petits animals d'ulls enormes es mouen entre els troncs, atents i silenciosos.",
    ],
}
SCENE_WORD = {"en": "Scene", "es": "Escena", "ca": "Escena"}


def narration(lang: str, scene: int) -> str:
    """About 24 seconds of speech per scene, different for every scene."""
    sentences = SENTENCES[lang]
    words = [sentences[(scene + k) % len(sentences)] for k in range(5)]
    return f"{SCENE_WORD[lang]} {scene + 1}. " + " ".join(words)


def make_script(folder: Path, *, scenes: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    data = {
        "project_title": "Motion benchmark",
        "saga": 1,
        "episode": 1,
        "global_music_prompt": "slow warm ambient pads",
        "scenes": [
            {
                "scene_id": i,
                "image_prompt": f"An alien forest under a red sun, view {i}",
                **{f"script_{lang}": narration(lang, i) for lang in SENTENCES},
                **{f"chapter_{lang}": f"{SCENE_WORD[lang]} {i // 3 + 1}" for lang in SENTENCES},
            }
            for i in range(scenes)
        ],
        "seo": {lang: {"variants": [{"title": f"Motion benchmark {lang}"}]} for lang in SENTENCES},
    }
    path = folder / "SAGA_01_Episode_01.json"
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


def zray_run(script: Path, output: Path, languages: list[str]) -> float:
    cmd = [sys.executable, "-m", "zray", "run", str(script), "--output", str(output), "--profile", "draft"]
    cmd += ["--preset", "final", "--quiet"]
    for lang in languages:
        cmd += ["--lang", lang]
    env = dict(os.environ, ZRAY_VIDEO__MOTION="gentle", ZRAY_VIDEO__TRANSITION=str(FADE_SECONDS))
    started = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env)
    return time.perf_counter() - started


def run_moviepy(images: list[Path], frames: list[int], audio: np.ndarray, out: Path) -> float:
    """The English video the way MoneyPrinterTurbo-style tools make one: each scene an ImageClip
    zoomed by `resized` (a resize of the whole picture every frame) and centred on a frame-sized
    canvas, fading in over the end of the previous scene with `CrossFadeIn`."""
    from moviepy import CompositeVideoClip, ImageClip, vfx
    from moviepy.audio.AudioClip import AudioArrayClip

    started = time.perf_counter()
    clips, at = [], 0
    for index, (path, count) in enumerate(zip(images, frames, strict=True)):
        begin = at / FPS - (FADE_SECONDS if index else 0.0)
        duration = (at + count) / FPS - begin
        clip = ImageClip(str(path)).with_duration(duration)
        clip = clip.resized(lambda t, d=duration: 1 + KEN_BURNS_ZOOM * t / d).with_position("center")
        if index:
            clip = clip.with_effects([vfx.CrossFadeIn(FADE_SECONDS)])
        clips.append(clip.with_start(begin))
        at += count
    size = ImageClip(str(images[0])).size
    video = CompositeVideoClip(clips, size=size, bg_color=(0, 0, 0)).with_duration(at / FPS)
    video = video.with_audio(AudioArrayClip(audio.T, fps=SAMPLE_RATE))
    write_like_zray(video, out)
    return time.perf_counter() - started


def decoded_audio(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.concatenate([f.to_ndarray() for f in container.decode(audio=0)], axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scenes", type=int, default=10)
    parser.add_argument("--skip-moviepy", action="store_true")
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    langs = list(SENTENCES)
    with tempfile.TemporaryDirectory() as scratch:
        work = args.workdir or Path(scratch)
        script = make_script(work / "scripts" / "bench", scenes=args.scenes)
        print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the start")

        one = zray_run(script, work / "one", ["en"])
        folder = work / "one" / "bench" / "SAGA_01_Episode_01"
        record = json.loads((folder / "run.json").read_text())
        video = record["nodes"]["video:en"]
        seconds = video["result"]["frames"] / FPS
        print(
            f"episode: {args.scenes} scenes, {seconds:.0f} s of English, draft, final preset, "
            f"motion gentle, {FADE_SECONDS} s crossfades"
        )
        print(f"zray, English:          {one:8.1f} s  ({seconds / one:.2f}x real time)")

        three = zray_run(script, work / "three", langs)
        record3 = json.loads((work / "three" / "bench" / "SAGA_01_Episode_01" / "run.json").read_text())
        total = sum(record3["nodes"][f"video:{lang}"]["result"]["frames"] for lang in langs) / FPS
        print(
            f"zray, {len(langs)} languages:      {three:8.1f} s  ({total / three:.2f}x real time, {total:.0f} s of video)"
        )
        print(f"ratio: zray's {len(langs)} languages cost {three / one:.2f}x its one (goal <= 1.5x)")
        built = record3["last_run"]["steps"]
        moving = [k for k in built if k.startswith("motion:")]
        tails = [k for k in built if k.startswith("tail:")]
        print(f"  shared moving segments: {len(moving)}, tails: {len(tails)}")

        if not args.skip_moviepy:
            images = [folder / f"assets/common/img_{i}.png" for i in range(args.scenes)]
            frames = [record["nodes"][f"pad:en:{i}"]["result"]["frames"] for i in range(args.scenes)]
            sound = decoded_audio(folder / video["outputs"][0])
            out = work / "moviepy.mp4"
            moviepy_s = run_moviepy(images, frames, sound[:, : sum(frames) * SAMPLE_RATE // FPS], out)
            print(f"moviepy, English:       {moviepy_s:8.1f} s  ({seconds / moviepy_s:.2f}x real time)")
            print(
                f"ratio: zray is {moviepy_s / one:.2f}x faster than moviepy for one language (goal >= 2.5x)"
            )
            print(
                f"ratio: for {len(langs)} languages moviepy would take {len(langs) * moviepy_s:.0f} s, "
                f"{len(langs) * moviepy_s / three:.2f}x zray's (goal >= 5x)"
            )
            print(f"check: moviepy wrote {count_frames(out)} frames, zray {video['result']['frames']}")
        print(f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
