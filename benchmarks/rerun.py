"""Benchmark: reruns cost what changed (issue 11), zray against moviepy, in one run.

    python benchmarks/rerun.py                 # 12 scenes, about 4 minutes, English, 1920x1072
    python benchmarks/rerun.py --skip-moviepy

The episode is made here (not the demo): 12 scenes of English narration (espeak-ng, the draft
profile), x264 medium CRF 18 (`final`), 1920x1072. Timed, each as a fresh `zray run` process as a
user would start it:

1. the first run (Ray start-up included);
2. the same command after the language's MP4 was deleted (only the assembly is stale);
3. moviepy assembling the same scene images and padded narration at the same settings;
4. the same command after one sentence was appended to scene 6 (so its length changes).

Printed: each time, wall and CPU seconds (of every process the run started, Ray's workers
included: on a shared machine wall time says more about the neighbours), reassembly against
moviepy (goal: at least 10x) and the edit against the first run (goal: at most 25 %). The output
is then checked: every frame decodes, the scene cuts before the edit are on the same frames as
before, and the true peak (libavfilter's ebur128) is at most `audio.peak_dbfs`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from assembly import count_frames, run_moviepy

REPO = Path(__file__).resolve().parent.parent
PEAK_DBFS = -1.0

SENTENCES = [
    "The forest at the edge of the world grows in a light that no human eye has ever seen.",
    "Its leaves are black, because a black leaf drinks every colour a red star can give.",
    "Far below, the roots reach into warm stone, and the stone remembers an ancient ocean.",
    "Every evening the wind carries a slow song through the branches, older than any language.",
    "Small animals with enormous eyes move between the trunks, careful and quiet, listening.",
]


def narration(scene: int) -> str:
    """About twenty seconds of speech per scene, different for every scene."""
    words = [SENTENCES[(scene + k) % len(SENTENCES)] for k in range(4)]
    return f"Scene {scene + 1}. " + " ".join(words)


def make_script(folder: Path, *, scenes: int, extra: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    data = {
        "project_title": "Rerun benchmark",
        "saga": 1,
        "episode": 1,
        "global_music_prompt": "slow warm ambient pads",
        "scenes": [
            {
                "scene_id": i,
                "image_prompt": f"An alien forest, view {i}",
                "script_en": narration(i) + (f" {extra}" if extra and i == 5 else ""),
                "chapter_en": f"Part {i // 3 + 1}",
            }
            for i in range(scenes)
        ],
        "seo": {"en": {"variants": [{"title": "Rerun benchmark"}]}},
    }
    path = folder / "SAGA_01_Episode_01.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


@dataclass(frozen=True)
class Timing:
    """A run's wall time and CPU time (user + system) of every process it started.

    The machine may be shared, so wall time is noisy and CPU time is what the run itself cost."""

    wall: float
    cpu: float

    def __str__(self) -> str:
        return f"{self.wall:7.2f} s wall, {self.cpu:7.2f} s CPU"


def _tree_cpu(root: int, seen: dict[tuple[int, int], float]) -> None:
    """Record the CPU seconds so far of `root` and its descendants, by (pid, start time), from /proc.
    Ray's workers are children of its raylet and nobody waits for them, so `getrusage` misses them."""
    children: dict[int, list[int]] = {}
    stats: dict[int, tuple[int, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # After the command: state, ppid, ... utime and stime (fields 14 and 15), ... starttime (22).
        pid, ppid = int(entry.name), int(fields[1])
        children.setdefault(ppid, []).append(pid)
        stats[pid] = (int(fields[19]), (int(fields[11]) + int(fields[12])) / _TICKS)
    stack = [root]
    while stack:
        pid = stack.pop()
        if pid in stats:
            started, cpu = stats[pid]
            seen[(pid, started)] = max(seen.get((pid, started), 0.0), cpu)
        stack += children.get(pid, [])


_TICKS = os.sysconf("SC_CLK_TCK")


def zray_run(script: Path, output: Path) -> Timing:
    cmd = [sys.executable, "-m", "zray", "run", str(script), "--output", str(output), "--profile", "draft"]
    cmd += ["--preset", "final", "--quiet"]
    started = time.perf_counter()
    process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    cpu: dict[tuple[int, int], float] = {}
    # Sampled every 0.1 s; once the run has exited it is left a zombie (WNOWAIT) for one last
    # reading, so its own time is exact and only a sampling interval of a descendant's can be missed.
    while True:
        _tree_cpu(process.pid, cpu)
        if os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
            break
        time.sleep(0.1)
    wall = time.perf_counter() - started
    _tree_cpu(process.pid, cpu)
    if process.wait():
        raise subprocess.CalledProcessError(process.returncode, cmd)
    return Timing(wall, sum(cpu.values()))


def scene_cuts(record: dict, scenes: int) -> list[int]:
    intro = record["nodes"].get("intro", {}).get("result", {}).get("frames", 0)
    cuts, at = [], intro
    for i in range(scenes):
        cuts.append(at)
        at += record["nodes"][f"pad:en:{i}"]["result"]["frames"]
    return cuts


def true_peak(path: Path) -> float:
    """The MP4's true peak in dBTP, measured by libavfilter's ebur128 (PyAV's filter graphs)."""
    graph = av.filter.Graph()
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        source = graph.add_abuffer(template=stream)
        meter = graph.add("ebur128", "peak=true:metadata=1")
        sink = graph.add("abuffersink")
        source.link_to(meter)
        meter.link_to(sink)
        graph.configure()
        peak = -np.inf
        for frame in container.decode(stream):
            graph.push(frame)
            while True:
                try:
                    out = graph.pull()
                except (av.error.BlockingIOError, av.error.EOFError):
                    break
                for key, value in out.metadata.items():
                    if key.startswith("lavfi.r128.true_peaks_ch"):
                        peak = max(peak, 20 * np.log10(max(float(value), 1e-12)))
    return float(peak)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scenes", type=int, default=12)
    parser.add_argument("--skip-moviepy", action="store_true")
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        work = args.workdir or Path(scratch)
        script = make_script(work / "scripts" / "bench", scenes=args.scenes)
        out = work / "out"
        folder = out / "bench" / "SAGA_01_Episode_01"

        first = zray_run(script, out)
        record = json.loads((folder / "run.json").read_text())
        video = folder / record["nodes"]["video:en"]["outputs"][0]
        frames = record["nodes"]["video:en"]["result"]["frames"]
        print(
            f"episode: {args.scenes} scenes, {frames} frames ({frames / 24:.0f} s), English, draft, final preset"
        )
        print(f"first run:           {first}")

        video.unlink()
        reassemble = zray_run(script, out)
        print(f"reassemble (MP4 deleted): {reassemble}")

        if not args.skip_moviepy:
            images = [folder / f"assets/common/img_{i}.png" for i in range(args.scenes)]
            pads = [record["nodes"][f"pad:en:{i}"] for i in range(args.scenes)]
            from zray.media import audio

            voice = np.concatenate(
                [audio.decode_audio(folder / p["outputs"][0], channels=2) for p in pads], axis=1
            )
            moviepy_s, _, _ = run_moviepy(images, [p["result"]["frames"] for p in pads], voice, work)
            print(f"moviepy assembling the same: {moviepy_s:7.2f} s")
            print(
                f"ratio: zray reassembly is {moviepy_s / reassemble.wall:.1f}x faster than moviepy (goal >= 10x)"
            )

        before = scene_cuts(record, args.scenes)
        script = make_script(
            work / "scripts" / "bench",
            scenes=args.scenes,
            extra="And then, for a moment, everything was still.",
        )
        edit = zray_run(script, out)
        print(
            f"one sentence appended to scene 6: {edit} = {100 * edit.wall / first.wall:.0f} % of the first "
            f"run's wall time, {100 * edit.cpu / first.cpu:.0f} % of its CPU time (goal <= 25 %)"
        )

        record = json.loads((folder / "run.json").read_text())
        video = folder / record["nodes"]["video:en"]["outputs"][0]
        after = scene_cuts(record, args.scenes)
        same = after[:6] == before[:6]
        count = count_frames(video)
        peak = true_peak(video)
        print(
            f"check: {count} frames decoded (expected {record['nodes']['video:en']['result']['frames']}); scene cuts before "
            f"the edit {'unchanged' if same else 'MOVED'}; true peak {peak:.2f} dBTP (ceiling {PEAK_DBFS})"
        )
        run = record["last_run"]
        print(
            f"executor of the edit: {run['executor']}; steps built: {[k for k, v in run['steps'].items() if v['state'] == 'built']}"
        )


if __name__ == "__main__":
    main()
