"""Size your hardware before downloading 20 GB of weights: zray's production engines at real size.

    python benchmarks/real_size.py --out DIR [--budget-s 450] [--parts zimage_resident,...]
    python benchmarks/real_size.py --tiny --out DIR      # the same code on tiny configs, on the CPU

Every production model is built from its real architecture config (`real_size_configs.json`, with
sources) with random weights made directly on the device (`real_models`), then run through zray's own
engine classes (ZImageEngine, MusicGenEngine, KokoroTTSEngine). Timings depend on shapes and step
counts, not on the weights' values, so they are what the trained models would give. It needs CUDA
unless `--tiny`; it never touches a disk for weights or the network.

Parts run in order of importance while the time budget allows (each has an estimate of its cost on
an H100); after each one the figures so far are written to DIR/real_size.json and DIR/real_size.md,
so a run cut short still leaves numbers. The last lines printed are the summary: per-item times,
real-time factors, peak memory per model and mode (the README's VRAM table), MusicGen's old and new
paths, two models at once, and what a 10-scene, 2-language episode costs on this device.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]  # real_models / real_parts, and this checkout's zray

import real_concurrent  # noqa: E402
import real_models  # noqa: E402
import real_parts  # noqa: E402
import real_wan  # noqa: E402

# What a production episode is made of (the goal: 10 scenes, 2 languages, one 60 s bed).
EPISODE = {"scenes": 10, "languages": 2, "speech_s_per_scene": 24.0, "music_s": 60.0}
# Ray's start and the wait for actors, seen on a workstation; model loading from a local disk is not
# measured here (weights are made on the device), so the estimate names it separately.
RAY_START_S = 4.0


@dataclass(frozen=True)
class Part:
    name: str
    estimate_s: float  # on an H100, from the H200 run's figures; the budget skips what would not fit
    run: Callable[[real_parts.Run, dict[str, Any]], dict[str, Any]]
    what: str


PARTS = [
    Part("zimage_resident", 45, real_parts.zimage_resident, "Z-Image resident: scene and thumbnail images"),
    Part("zimage_group_offload", 45, real_parts.zimage_group_offload, "Z-Image 12 GB mode (group offload)"),
    Part(
        "musicgen_graphs", 25, real_parts.musicgen_graphs, "MusicGen small, new path (static cache, graphs)"
    ),
    Part("musicgen_diagnosis", 20, real_parts.musicgen_diagnosis, "why generate's first window is slow"),
    Part("musicgen_generate", 130, real_parts.musicgen_generate, "MusicGen small, old path (generate)"),
    Part("kokoro", 15, real_parts.kokoro, "Kokoro-82M, Spanish"),
    Part("two_at_once", 70, real_concurrent.two_at_once, "Z-Image and MusicGen in two processes"),
    Part("musicgen_batched", 35, real_parts.musicgen_batched, "several beds in one sampling loop"),
    Part("zimage_attention", 45, real_parts.zimage_attention, "Z-Image attention backends (speed, PSNR)"),
    Part("zimage_compile", 180, real_parts.zimage_compile, "Z-Image regional compilation (speed, PSNR)"),
    Part("musicgen_medium", 45, real_parts.musicgen_medium, "MusicGen medium, new path"),
    Part(
        "zimage_sequential_offload", 150, real_parts.zimage_sequential_offload, "Z-Image sequential offload"
    ),
    Part("zimage_model_offload", 60, real_parts.zimage_model_offload, "Z-Image model offload + VAE tiling"),
    # Wan2.2-TI2V-5B, one 5 s clip at 1280x704 (estimates: about 1.1 PFLOP a step with guidance).
    Part("wan_steps", 300, real_wan.wan_steps, "Wan resident: a 5 s 720p clip at 20, 30, 50 steps"),
    Part("wan_cache", 200, real_wan.wan_cache, "Wan with FirstBlockCache (speed, PSNR/SSIM vs 50 steps)"),
    Part("wan_group_offload", 120, real_wan.wan_group_offload, "Wan group offload (small cards)"),
    Part("wan_compile", 180, real_wan.wan_compile, "Wan regional compilation"),
]
BY_NAME = {part.name: part for part in PARTS}


def make_run(*, tiny: bool, configs: dict[str, Any]) -> real_parts.Run:
    if tiny:
        return real_parts.Run(
            tiny=True,
            device="cpu",
            configs=real_models.tiny_configs(configs),
            image_size=(64, 48),
            thumb_size=(48, 32),
            images=1,
            music_seconds=2.0,
            music_window=1.0,  # two windows and more: continuations are exercised too
            beds=3,
        )
    return real_parts.Run(
        tiny=False,
        device="cuda",
        configs=configs,
        image_size=(1920, 1072),
        thumb_size=(1280, 720),
        images=3,
        music_seconds=60.0,
        music_window=30.0,
        beds=10,
    )


# --- the record -------------------------------------------------------------------------------------


def environment() -> dict[str, Any]:
    import torch
    import transformers

    info: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "host": platform.node(),
        "cpus": os.cpu_count(),
    }
    try:
        import diffusers

        info["diffusers"] = diffusers.__version__
    except ImportError:
        info["diffusers"] = None
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(
            device=props.name,
            device_memory_gib=round(props.total_memory / 2**30, 1),
            cuda=torch.version.cuda,
            cudnn=torch.backends.cudnn.version(),
        )
    else:
        info["device"] = "cpu"
    return info


def vram_rows(parts: dict[str, Any]) -> list[dict[str, Any]]:
    """The VRAM table: engine, mode, peak reserved GiB (torch's allocator, this process), where from."""
    rows = []

    def add(engine: str, mode: str, part: str, key: str = "peak_reserved_gib") -> None:
        figures = parts.get(part, {}).get("figures", {})
        if figures.get(key) is not None:
            rows.append({"engine": engine, "mode": mode, "peak_reserved_gib": figures[key], "part": part})

    add("zimage", "resident", "zimage_resident")
    add("zimage", "group_offload", "zimage_group_offload")
    add("zimage", "group_offload+vae_tiling", "zimage_group_offload", "vae_tiling_peak_reserved_gib")
    add("zimage", "model_offload+vae_tiling", "zimage_model_offload")
    add("zimage", "sequential_offload", "zimage_sequential_offload")
    add("musicgen-small", "graphs", "musicgen_graphs")
    add("musicgen-small", "generate", "musicgen_generate")
    add("musicgen-medium", "graphs", "musicgen_medium")
    add("kokoro", "resident", "kokoro")
    add("wan", "resident", "wan_steps", "steps50_peak_reserved_gib")
    add("wan", "group_offload", "wan_group_offload")
    return rows


def episode_estimate(parts: dict[str, Any]) -> dict[str, Any] | None:
    """GPU seconds of a 10-scene, 2-language episode on this device, from the measured parts.

    The image and narration actors' work and the music actor's run side by side; while both run, each
    is slower by the measured two-at-once slowdown, so the GPU part takes
    max(A, M) + slowdown * min(A, M) for A = images + narration, M = music."""

    def fig(part: str, key: str) -> Any:
        return parts.get(part, {}).get("figures", {}).get(key)

    image_s, thumb_s = fig("zimage_resident", "image_s"), fig("zimage_resident", "thumb_image_s")
    tts = fig("kokoro", "gpu_s_per_speech_s")
    if image_s is None or thumb_s is None:
        return None
    slowdown = max(
        [
            v
            for v in (fig("two_at_once", "image_slowdown"), fig("two_at_once", "music_slowdown"))
            if v is not None
        ]
        or [0.16]  # the H200 run's figure, until this device's is measured
    )
    e = EPISODE
    images = e["scenes"] * image_s + e["languages"] * thumb_s
    narration = e["scenes"] * e["languages"] * e["speech_s_per_scene"] * (tts or 0.011)
    work = images + narration
    out: dict[str, Any] = {**e, "images_s": round(images, 1), "narration_s": round(narration, 1)}
    out["overlap_slowdown"] = slowdown
    for method in ("graphs", "generate"):
        per_s = fig(f"musicgen_{method}", "gpu_s_per_bed_s")
        if per_s is None:
            continue
        music = e["music_s"] * per_s
        gpu = max(work, music) + slowdown * min(work, music)
        out[f"music_{method}_s"] = round(music, 1)
        out[f"gpu_s_with_{method}"] = round(gpu, 1)
        out[f"bound_by_with_{method}"] = "music" if music > work else "images"
    out["not_included"] = (
        f"Ray start (about {RAY_START_S:g} s), loading weights from a local disk, and the CPU tail "
        "(padding, encoding and assembling the last language)"
    )
    return out


def music_speedup(parts: dict[str, Any]) -> dict[str, Any] | None:
    old = parts.get("musicgen_generate", {}).get("figures", {})
    new = parts.get("musicgen_graphs", {}).get("figures", {})
    if not old.get("ms_per_step") or not new.get("ms_per_step"):
        return None
    old_windows, new_windows = old.get("window_ms_per_step", []), new.get("window_ms_per_step", [])
    return {
        "old_ms_per_step": old["ms_per_step"],
        "new_ms_per_step": new["ms_per_step"],
        "per_step_speedup": round(old["ms_per_step"] / new["ms_per_step"], 2),
        "old_window_ms_per_step": old_windows,
        "new_window_ms_per_step": new_windows,
        "goal_3x_met": old["ms_per_step"] / new["ms_per_step"] >= 3,
    }


def write(out: Path, record: dict[str, Any]) -> None:
    """JSON and markdown, each written whole then renamed, so a cut-off run leaves valid files."""
    parts = record["parts"]
    record["vram"] = vram_rows(parts)
    record["music_speedup"] = music_speedup(parts)
    record["episode"] = episode_estimate(parts)
    out.mkdir(parents=True, exist_ok=True)
    for name, text in (
        ("real_size.json", json.dumps(record, indent=1, default=str)),
        ("real_size.md", markdown(record)),
    ):
        tmp = out / f".{name}.tmp"
        tmp.write_text(text + "\n", encoding="utf-8")
        tmp.replace(out / name)


def markdown(record: dict[str, Any]) -> str:
    env = record["environment"]
    lines = [
        f"# zray real-size benchmark ({'tiny, CPU' if record['tiny'] else env.get('device')})",
        "",
        f"`{record['command']}`; torch {env.get('torch')}, transformers {env.get('transformers')}, "
        f"diffusers {env.get('diffusers')}, CUDA {env.get('cuda')}, cuDNN {env.get('cudnn')}; "
        f"budget {record['budget_s']:g} s, elapsed {record['elapsed_s']:.0f} s.",
        "",
        "| part | status | seconds | figures |",
        "|---|---|---|---|",
    ]
    for name, part in record["parts"].items():
        figures = ", ".join(
            f"{k} {_short(v)}" for k, v in part.get("figures", {}).items() if not isinstance(v, list | dict)
        )
        detail = part.get("error") or part.get("reason") or figures
        lines.append(f"| {name} | {part['status']} | {part.get('seconds', '')} | {detail} |")
    if record["vram"]:
        lines += ["", "| model | mode | peak reserved (GiB) |", "|---|---|---|"]
        lines += [f"| {r['engine']} | {r['mode']} | {r['peak_reserved_gib']} |" for r in record["vram"]]
    if record["music_speedup"]:
        m = record["music_speedup"]
        lines += [
            "",
            f"MusicGen per step: generate {m['old_ms_per_step']} ms (windows {m['old_window_ms_per_step']}), "
            f"graphs {m['new_ms_per_step']} ms (windows {m['new_window_ms_per_step']}): "
            f"{m['per_step_speedup']}x (goal 3x: {'met' if m['goal_3x_met'] else 'missed'}).",
        ]
    if record["episode"]:
        e = record["episode"]
        lines += ["", "Episode of 10 scenes in 2 languages, GPU seconds on this device:", ""]
        lines += [f"- {k}: {v}" for k, v in e.items()]
    return "\n".join(lines)


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


# --- main -------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True, help="folder for real_size.json and real_size.md")
    p.add_argument("--tiny", action="store_true", help="tiny configs on the CPU (checks the harness)")
    p.add_argument("--budget-s", type=float, default=450.0, help="stop starting parts after this (seconds)")
    p.add_argument("--parts", default=",".join(BY_NAME), help="comma-separated parts, in the order to run")
    p.add_argument("--configs", type=Path, default=real_models.CONFIGS, help="real architecture configs")
    args = p.parse_args(argv)
    names = [n for n in args.parts.split(",") if n]
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        p.error(f"--parts: unknown {', '.join(unknown)}; known: {', '.join(BY_NAME)}")
    args.parts = names
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch

    if not args.tiny and not torch.cuda.is_available():
        raise SystemExit(
            "real_size.py needs a CUDA device at real size; use --tiny to check the harness on a CPU"
        )
    if args.tiny:
        torch.set_num_threads(1)  # tiny models on a shared CPU: spinning worker threads only cost
    started = time.monotonic()
    run = make_run(tiny=args.tiny, configs=real_models.load_configs(args.configs))
    record: dict[str, Any] = {
        "command": " ".join(
            ["python", "benchmarks/real_size.py", *(argv if argv is not None else sys.argv[1:])]
        ),
        "tiny": args.tiny,
        "budget_s": args.budget_s,
        "elapsed_s": 0.0,
        "environment": environment(),
        "parts": {},
    }
    print(f"real_size: {record['environment'].get('device')}, budget {args.budget_s:g} s", flush=True)
    state: dict[str, Any] = {}
    for name in args.parts:
        part = BY_NAME[name]
        left = args.budget_s - (time.monotonic() - started)
        estimate = 10.0 if args.tiny else part.estimate_s
        if estimate > left:
            record["parts"][name] = {
                "status": "skipped",
                "reason": f"budget: {left:.0f} s left, needs about {estimate:g}",
            }
            print(f"- {name}: skipped ({left:.0f} s left, needs about {estimate:g})", flush=True)
            continue
        print(f"- {name}: {part.what} ...", flush=True)
        began = time.monotonic()
        try:
            figures = part.run(run, state)
            entry: dict[str, Any] = {"status": "ok", "figures": figures}
        except Exception as exc:
            entry = {"status": "failed", "error": real_parts._one_line(exc)}
            traceback.print_exc()
            if not args.tiny:
                real_parts.free(state, *real_parts.MODELS)  # a failed part may hold the device's memory
        entry["seconds"] = round(time.monotonic() - began, 1)
        record["parts"][name] = entry
        record["elapsed_s"] = round(time.monotonic() - started, 1)
        write(args.out, record)
        print(f"  {entry['status']} in {entry['seconds']} s: {_summary(entry)}", flush=True)
    record["elapsed_s"] = round(time.monotonic() - started, 1)
    write(args.out, record)
    print(markdown(record), flush=True)
    return record


def _summary(entry: dict[str, Any]) -> str:
    if entry["status"] != "ok":
        return entry.get("error", "")
    figures = entry["figures"]
    return ", ".join(f"{k}={_short(v)}" for k, v in figures.items() if not isinstance(v, list | dict))[:600]


if __name__ == "__main__":
    main()
