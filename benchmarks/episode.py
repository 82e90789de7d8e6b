"""Time a cold run and a warm rerun of the demo episode (draft profile, embedded Ray).

    python benchmarks/episode.py [--preset fast|final] [--script PATH]

Each run is a fresh `zray run` process, as a user would start it, so the cold time includes Ray's
start-up and the warm time shows what a rerun with nothing to do costs.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def timed_run(script: Path, output: Path, preset: str) -> float:
    cmd = [
        sys.executable,
        "-m",
        "zray",
        "run",
        str(script),
        "--output",
        str(output),
        "--profile",
        "draft",
        "--preset",
        preset,
        "--quiet",
    ]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--script", type=Path, default=REPO / "inputs/scripts/demo/SAGA_01_Episode_01.json")
    parser.add_argument("--preset", default="final", choices=["fast", "final"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="zray-bench-") as tmp:
        output = Path(tmp)
        cold = timed_run(args.script, output, args.preset)
        warm = timed_run(args.script, output, args.preset)
        record = json.loads(next(output.rglob("run.json")).read_text())
        minutes = sum(v.get("duration") or 0 for v in record["outputs"].values()) / 60
    print(f"demo episode ({args.preset}): {len(record['outputs'])} output files, {minutes:.1f} min of video")
    print(f"cold run:   {cold:7.2f} s")
    print(f"warm rerun: {warm:7.2f} s  ({cold / warm:.0f}x faster)")


if __name__ == "__main__":
    main()
