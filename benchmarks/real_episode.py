"""The production episode, timed from the command to the last MP4, with models at real size.

    python benchmarks/real_episode.py --out DIR [--tiny] [--budget-s 480]

Random-weight model folders are built from the real configs (`real_size_configs.json`) on this
machine (nothing downloaded): Z-Image-Turbo, Kokoro-82M, MusicGen small and Wan2.2-TI2V-5B, each
saved as the folder layout its engine loads. `models.*` point at them, and `zray run --profile
production` runs (in-process executor: Ray's wheel does not fit the GPU machine's carry) on a
10-scene script in Spanish and Italian (two languages Kokoro speaks without spaCy), at 1920x1072:

1. `gentle`: stills under the gentle move, 0.5 s crossfades (the goal: under 60 s).
2. `generate2`: the same episode in a fresh folder with two scenes of motion "generate" (5 s clips).

Each run is a fresh `python -m zray run` process, as a user starts it. Per run: wall seconds,
the run record's step seconds per stage (images, narration, music, clips, assembly, ...), and the
first model step of each kind (which includes loading its weights). `--tiny` does the same with the
tests' tiny models at 320x176 on a CPU (the dry run: `tests/test_real_size.py`). What did not fit the
budget is listed as skipped. Results are written to DIR/episode.json and DIR/episode.md after each
step, so a cut-off run still leaves numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(HERE), str(REPO), str(REPO / "tests")]

LANGUAGES = ("es", "it")
SCENES = 10
# About 24 s of narration a scene at Kokoro's pace (the 10-scene episode).
ES = (
    "Las enanas rojas son las estrellas más comunes de nuestra galaxia y también las más discretas; "
    "un planeta cercano recibiría un cielo rojizo y tenue durante todo el año, y sus plantas quizá "
    "serían casi negras para aprovechar cada fotón disponible."
)
IT = (
    "Le nane rosse sono le stelle più comuni della nostra galassia e anche le più discrete; un pianeta "
    "vicino riceverebbe un cielo rossastro e tenue per tutto l'anno, e le sue piante sarebbero forse "
    "quasi nere per sfruttare ogni fotone disponibile."
)


def script(generated: int) -> dict[str, Any]:
    scenes = []
    for i in range(SCENES):
        scene: dict[str, Any] = {
            "scene_id": i,
            "image_prompt": f"Alien forest at dawn, scene {i}, bioluminescent plants, cinematic wide shot",
            "script_es": ES,
            "script_it": IT,
            "chapter_es": f"Parte {i // 3 + 1}",
            "chapter_it": f"Parte {i // 3 + 1}",
        }
        if i < generated:
            scene.update(motion="generate", motion_prompt="the camera drifts forward through the mist")
        scenes.append(scene)
    return {
        "project_title": "Bosques alienígenas",
        "saga": 1,
        "episode": 1,
        "global_music_prompt": "calm cinematic ambient pads, slow, warm",
        "scenes": scenes,
        "seo": {"es": {"variants": [{"title": "Bosques alienígenas", "thumb_text": "¿VERDE?"}]}},
    }


# --- model folders ----------------------------------------------------------------------------------


def build_folders(root: Path, *, tiny: bool, device: str) -> dict[str, Any]:
    """A folder per model, as its engine loads it; returns models.* settings and seconds per model."""
    import torch

    root.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    paths: dict[str, str] = {}

    def timed(name: str, build: Any) -> None:
        start = time.perf_counter()
        paths[name] = str(build(root / name))
        seconds[name] = round(time.perf_counter() - start, 1)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    if tiny:
        from tiny_kokoro import build_tiny_kokoro
        from tiny_musicgen import build_tiny_musicgen
        from tiny_wan import build_tiny_wan
        from tiny_zimage import build_tiny_zimage

        timed("zimage", build_tiny_zimage)
        timed("kokoro", lambda d: _kokoro_voices(build_tiny_kokoro(d)))
        timed("musicgen", build_tiny_musicgen)
        timed("wan", build_tiny_wan)
    else:
        import real_models

        configs = real_models.load_configs()
        dtype = torch.bfloat16

        def save(pipe_or_model: Any, dest: Path) -> Path:
            pipe_or_model.save_pretrained(dest)
            return dest

        timed("zimage", lambda d: save(real_models.build_zimage(configs, device=device, dtype=dtype), d))
        timed("wan", lambda d: save(real_models.build_wan(configs, device=device, dtype=dtype), d))
        timed(
            "musicgen",
            lambda d: _save_musicgen(real_models.build_musicgen(configs, "small", device=device), d),
        )
        timed("kokoro", lambda d: _save_kokoro(real_models.build_kokoro(configs), configs["kokoro"], d))
    return {"paths": paths, "build_s": seconds}


def _save_musicgen(built: tuple[Any, Any], dest: Path) -> Path:
    model, processor = built
    model.save_pretrained(dest)
    processor.save_pretrained(dest)
    return dest


def _save_kokoro(built: tuple[Any, dict[str, Any]], config: dict[str, Any], dest: Path) -> Path:
    """config.json, one .pth of the parts' state dicts and voices/*.pt: a local Kokoro-82M."""
    import torch

    model, packs = built
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "config.json").write_text(json.dumps(config, ensure_ascii=False), encoding="utf-8")
    parts = ("bert", "bert_encoder", "predictor", "text_encoder", "decoder")
    torch.save({part: getattr(model, part).state_dict() for part in parts}, dest / "kokoro-v1_0.pth")
    (dest / "voices").mkdir(exist_ok=True)
    for name, pack in packs.items():
        torch.save(pack, dest / "voices" / f"{name}.pt")
    return _kokoro_voices(dest)


def _kokoro_voices(dest: Path) -> Path:
    """The Italian default voice as a copy of the Spanish pack (random weights: any pack will do)."""
    import shutil

    voices = dest / "voices"
    if not (voices / "if_sara.pt").exists():
        shutil.copy(voices / "ef_dora.pt", voices / "if_sara.pt")
    return dest


# --- runs ---------------------------------------------------------------------------------------------


def config_file(out: Path, models: dict[str, str], *, tiny: bool) -> Path:
    size = (320, 176) if tiny else (1920, 1072)
    lines = [
        'executor = "in-process"',
        f'output = "{out / "episodes"}"',
        "quiet = true",
        "[video]",
        f"width = {size[0]}",
        f"height = {size[1]}",
        'motion = "gentle"',
        "[models]",
        f'image = "{models["zimage"]}"',
        f'kokoro = "{models["kokoro"]}"',
        f'musicgen = "{models["musicgen"]}"',
        f'video = "{models["wan"]}"',
    ]
    if tiny:
        lines += [
            'device = "cpu"',
            "video_steps = 2",
            "video_seconds = 0.5",
            f"video_pixels = {128 * 64}",
            "music_window = 2.0",
        ]
        lines += ["[audio]", "music_seconds = 4.0"]
    path = out / "zray.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def timed_run(name: str, out: Path, config: Path, generated: int) -> dict[str, Any]:
    folder = out / "scripts" / name
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "SAGA_01_Episode_01.json"
    path.write_text(json.dumps(script(generated), ensure_ascii=False), encoding="utf-8")
    command = [
        sys.executable,
        "-m",
        "zray",
        "run",
        str(path),
        "--config",
        str(config),
        "--profile",
        "production",
    ]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    start = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    result: dict[str, Any] = {
        "command": " ".join(command[1:]),
        "wall_s": round(wall, 1),
        "rc": done.returncode,
    }
    if done.returncode != 0:
        result["error"] = (done.stderr.strip() or done.stdout.strip()).splitlines()[-3:]
        return result
    record = json.loads((out / "episodes" / name / "SAGA_01_Episode_01" / "run.json").read_text())
    run = record["last_run"]
    result["stage_step_s"] = run["step_seconds_by_stage"]
    result["run_wall_s"] = run["wall_seconds"]
    firsts: dict[str, float] = {}
    for node, step in run["steps"].items():
        kind = node.split(":", 1)[0]
        if kind in ("image", "tts", "music", "clip") and step.get("seconds") is not None:
            firsts[kind] = min(firsts.get(kind, float("inf")), step["started"])
    # The first step of each model kind loads its weights: its seconds against the kind's median.
    for kind in firsts:
        steps = sorted(s["seconds"] for n, s in run["steps"].items() if n.split(":", 1)[0] == kind)
        first = next(
            s["seconds"]
            for n, s in run["steps"].items()
            if n.split(":", 1)[0] == kind and s["started"] == firsts[kind]
        )
        result[f"{kind}_first_step_s"] = first
        result[f"{kind}_median_step_s"] = steps[len(steps) // 2]
    result["videos"] = sorted(
        path.name for path in (out / "episodes" / name / "SAGA_01_Episode_01").glob("*.mp4")
    )
    return result


def write(out: Path, record: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "episode.json").write_text(
        json.dumps(record, indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    lines = [f"# zray production episode ({'tiny, CPU' if record['tiny'] else record.get('device')})", ""]
    lines.append(f"Model folders built in {record.get('build_s')} s.")
    for name, run in record["runs"].items():
        lines.append(f"- {name}: {json.dumps(run, ensure_ascii=False)}")
    (out / "episode.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--tiny", action="store_true", help="the tests' tiny models on the CPU (the dry run)")
    parser.add_argument("--budget-s", type=float, default=480.0)
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    if not args.tiny and not torch.cuda.is_available():
        raise SystemExit("real_episode.py needs a CUDA device at real size; use --tiny for the CPU dry run")
    started = time.monotonic()
    device = "cuda" if torch.cuda.is_available() and not args.tiny else "cpu"
    record: dict[str, Any] = {
        "tiny": args.tiny,
        "device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu",
    }
    folders = build_folders(args.out / "models", tiny=args.tiny, device=device)
    record["build_s"] = folders["build_s"]
    record["runs"] = {}
    write(args.out, record)
    config = config_file(args.out, folders["paths"], tiny=args.tiny)
    # Estimates on an H100 (weights loaded from the local disk included); a run that would not fit is skipped.
    plan = [("gentle", 0, 90.0), ("generate2", 2, 240.0)]
    for name, generated, estimate in plan:
        left = args.budget_s - (time.monotonic() - started)
        if not args.tiny and estimate > left:
            record["runs"][name] = {"skipped": f"budget: {left:.0f} s left, needs about {estimate:g}"}
        else:
            print(f"- {name}: {generated} generated scene(s) ...", flush=True)
            record["runs"][name] = timed_run(name, args.out, config, generated)
            print(f"  {json.dumps(record['runs'][name], ensure_ascii=False)}", flush=True)
        write(args.out, record)
    return record


if __name__ == "__main__":
    main()
