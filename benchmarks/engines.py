"""Per-engine throughput: images per second, audio seconds per second, peak memory.

    python benchmarks/engines.py --tiny                 # tiny random-weight models (proves the harness, any CPU)
    python benchmarks/engines.py                        # the real models from the Hugging Face cache (a GPU box)
    python benchmarks/engines.py --image DIR --kokoro DIR --musicgen DIR   # local model folders

Each engine is loaded once (not timed), warmed up once, then timed over several requests, exactly as a
resident actor would serve them. Results are printed as a table and written as JSON next to this file.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PROMPTS = [
    "Alien forest at dawn, bioluminescent plants, mist, cinematic",
    "Red dwarf star over a dark purple jungle, scientific illustration",
    "Tidally locked planet, twilight band, orbital view",
]
SPANISH = [
    "Las enanas rojas emiten sobre todo luz infrarroja.",
    "Para aprovecharla, las plantas de esos mundos serían casi negras.",
    "Quizá el primer bosque alienígena que descubramos no sea verde.",
]


def device_name() -> str:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def reset_peak() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def peak_memory_mb() -> float:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def bench_image(model: str, *, width: int, height: int, repeats: int) -> dict[str, Any]:
    from zray.engines.zimage import ZImageEngine, ZImageSettings

    engine = ZImageEngine(ZImageSettings(model=model))
    started = time.perf_counter()
    engine.load()
    load = time.perf_counter() - started
    engine.generate(PROMPTS[0], width=width, height=height, seed=0)
    reset_peak()
    started = time.perf_counter()
    for i in range(repeats):
        engine.generate(PROMPTS[i % len(PROMPTS)], width=width, height=height, seed=i + 1)
    seconds = time.perf_counter() - started
    return {
        "engine": "zimage",
        "size": f"{width}x{height}",
        "load_s": round(load, 2),
        "per_item_s": round(seconds / repeats, 3),
        "throughput": f"{repeats / seconds:.3f} images/s",
        "peak_mb": round(peak_memory_mb()),
    }


def bench_tts(model: str, *, repeats: int) -> dict[str, Any]:
    from zray.engines.kokoro import KokoroSettings, KokoroTTSEngine

    engine = KokoroTTSEngine(KokoroSettings(model=model))
    started = time.perf_counter()
    engine.load()
    load = time.perf_counter() - started
    engine.synthesize(SPANISH[0], lang="es")
    reset_peak()
    audio = 0.0
    started = time.perf_counter()
    for i in range(repeats):
        audio += engine.synthesize(SPANISH[i % len(SPANISH)], lang="es").seconds
    seconds = time.perf_counter() - started
    return {
        "engine": "kokoro (es)",
        "size": f"{audio:.1f} s of speech",
        "load_s": round(load, 2),
        "per_item_s": round(seconds / repeats, 3),
        "throughput": f"{audio / seconds:.2f} audio s/s",
        "peak_mb": round(peak_memory_mb()),
    }


def bench_music(model: str, *, seconds: float, window: float) -> dict[str, Any]:
    from zray.engines.musicgen import MusicGenEngine, MusicGenSettings

    engine = MusicGenEngine(MusicGenSettings(model=model, window=window))
    started = time.perf_counter()
    engine.load()
    load = time.perf_counter() - started
    reset_peak()
    started = time.perf_counter()
    bed = engine.generate("calm cinematic ambient pads", seconds=seconds)
    elapsed = time.perf_counter() - started
    audio = bed.shape[-1] / 48_000
    return {
        "engine": "musicgen",
        "size": f"{audio:.0f} s bed, {window:g} s windows",
        "load_s": round(load, 2),
        "per_item_s": round(elapsed, 2),
        "throughput": f"{audio / elapsed:.2f} audio s/s",
        "peak_mb": round(peak_memory_mb()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="build and use tiny random-weight models")
    parser.add_argument("--image", default="Tongyi-MAI/Z-Image-Turbo")
    parser.add_argument("--kokoro", default="hexgrad/Kokoro-82M")
    parser.add_argument("--musicgen", default="facebook/musicgen-small")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=1072)
    parser.add_argument("--music-seconds", type=float, default=60.0)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "engines.json")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="zray-engines-") as tmp:
        window = 30.0
        if args.tiny:
            sys.path.insert(0, str(REPO / "tests"))
            from tiny_kokoro import build_tiny_kokoro
            from tiny_musicgen import build_tiny_musicgen
            from tiny_zimage import build_tiny_zimage

            args.image = str(build_tiny_zimage(Path(tmp) / "zimage"))
            args.kokoro = str(build_tiny_kokoro(Path(tmp) / "kokoro"))
            args.musicgen = str(build_tiny_musicgen(Path(tmp) / "musicgen"))
            args.width, args.height, args.music_seconds, window = 256, 144, 6.0, 3.0
        rows = [
            bench_image(args.image, width=args.width, height=args.height, repeats=args.repeats),
            bench_tts(args.kokoro, repeats=args.repeats),
            bench_music(args.musicgen, seconds=args.music_seconds, window=window),
        ]
    device = device_name()
    print(f"device: {device}{'  (tiny random-weight models)' if args.tiny else ''}")
    print(
        f"{'engine':<13} {'request':<28} {'load s':>7} {'per item s':>11} {'throughput':>20} {'peak MB':>8}"
    )
    for row in rows:
        print(
            f"{row['engine']:<13} {row['size']:<28} {row['load_s']:>7} {row['per_item_s']:>11} "
            f"{row['throughput']:>20} {row['peak_mb']:>8}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"device": device, "tiny": args.tiny, "engines": rows}, indent=1))


if __name__ == "__main__":
    main()
