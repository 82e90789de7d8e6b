"""Scheduling benchmark: a batch at the model costs measured on a GPU, zray on 1, 2, 4 nodes against
the seed's sequential schedule.

    python benchmarks/throughput.py [--quick] [--episodes 10 --scenes 10 --languages 2] [--nodes 1,2,4]
        [--music graphs|generate] [--time-scale 0.1] [--real-steps] [--help for the rest]

Model calls are simulated (`sim_engines`) at the costs the real-size run measured (image 2.69 s at
1920x1072, Kokoro 0.011 s per second of speech, MusicGen per second of bed: 1.62 s through
`generate`, or the static-cache path's figure), and calls on one GPU overlap, each slower by the
measured 16 %, instead of taking turns. CPU work is simulated too (`sim_steps`, handed to zray's
executor). The same batch runs these ways:

- sequential: the seed's order, phase after phase and episode after episode (`throughput_sequential`);
- zray on N nodes of a `ray.cluster_utils.Cluster`, one logical GPU each, through
  `zray.pipeline.run.execute` (the code behind `zray batch`) with the real Driver and actors
  (`throughput_cluster`).

Goals: a 10-episode, 2-language batch on one GPU within 10 % of its image-bound limit (the images'
time alone: music and narration hidden beside them), and at least 0.85 x N times the one-node
throughput on N nodes. Results: benchmarks/results/throughput.{json,md,png} (`throughput_report`).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from sim_engines import ENV, MEASURED, SimSettings
from throughput_cluster import SimulatedCluster, run_zray
from throughput_report import analyse, goals, read_events, write_results
from throughput_sequential import run_sequential
from throughput_workload import LANGUAGES, Workload, bench_config, gpu_shares, load_items, write_scripts

HERE = Path(__file__).resolve().parent
MUSIC_S_PER_S = {"graphs": MEASURED["music_graphs_s_per_s"], "generate": MEASURED["music_generate_s_per_s"]}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="3 episodes x 4 scenes on 1 node (a smoke run)")
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--scenes", type=int, default=10)
    p.add_argument("--languages", type=int, default=2, choices=range(1, len(LANGUAGES) + 1))
    p.add_argument("--nodes", default="1,2,4", help="node counts to run zray on, comma-separated")
    p.add_argument(
        "--music",
        choices=sorted(MUSIC_S_PER_S),
        default="graphs",
        help="MusicGen's method: its cost per second of bed (graphs is zray's default on a GPU)",
    )
    p.add_argument("--music-s-per-s", type=float, help="override the method's GPU seconds per second of bed")
    p.add_argument("--music-s", type=float, default=60.0, help="music bed per episode, seconds")
    p.add_argument("--image-s", type=float, default=MEASURED["image_s"], help="GPU seconds per scene image")
    p.add_argument(
        "--thumb-s", type=float, default=MEASURED["thumb_s"], help="GPU seconds per thumbnail base"
    )
    p.add_argument(
        "--tts-s-per-s", type=float, default=MEASURED["tts_s_per_s"], help="per second of narration"
    )
    p.add_argument("--narration-s", type=float, default=24.0, help="narration per scene, seconds")
    p.add_argument("--overlap", type=float, default=MEASURED["overlap"], help="slowdown per concurrent call")
    p.add_argument("--time-scale", type=float, default=0.1, help="real seconds per simulated second")
    p.add_argument("--encode-s", type=float, default=0.3, help="CPU seconds per scene encode")
    p.add_argument("--pad-s", type=float, default=0.05, help="CPU seconds per narration padding")
    p.add_argument("--assemble-s", type=float, default=1.0, help="CPU seconds per language's final video")
    p.add_argument("--thumbs-s", type=float, default=0.1, help="CPU seconds per language's thumbnails")
    p.add_argument("--subs-s", type=float, default=0.02, help="CPU seconds per language's subtitles")
    p.add_argument("--cpus-per-node", type=int, default=8, help="logical CPUs per simulated node")
    p.add_argument("--max-episodes-in-flight", type=int, default=4, help="zray batch's option (default 4)")
    p.add_argument("--max-in-flight", type=int, default=64, help="zray's max_in_flight setting (default 64)")
    p.add_argument("--real-steps", action="store_true", help="zray's real media steps inside the CPU costs")
    p.add_argument("--cold", action="store_true", help="time Ray's worker start-up too")
    p.add_argument("--keep", action="store_true", help="keep the work folder (scripts, outputs, events)")
    p.add_argument("--skip-sequential", action="store_true", help="do not run the seed's schedule")
    p.add_argument("--out", type=Path, default=HERE / "results")
    args = p.parse_args(argv)
    if args.quick:
        args.episodes, args.scenes = 3, 4
        if args.nodes == "1,2,4":
            args.nodes = "1"
    try:
        args.nodes = sorted({int(n) for n in args.nodes.split(",")})
    except ValueError:
        p.error(f"--nodes {args.nodes!r}: expected comma-separated integers such as 1,2,4")
    if not args.nodes or min(args.nodes) < 1:
        p.error("--nodes: every node count must be at least 1")
    for name in ("episodes", "scenes", "cpus_per_node", "max_episodes_in_flight", "max_in_flight"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1, not {getattr(args, name)}")
    if args.time_scale <= 0:
        p.error("--time-scale must be positive")
    return args


def settings_from(args: argparse.Namespace) -> SimSettings:
    cpu = {
        "segment": args.encode_s,
        "intro": args.encode_s,
        "pad": args.pad_s,
        "video": args.assemble_s,
        "thumbs": args.thumbs_s,
        "subs": args.subs_s,
    }
    return SimSettings(
        image_s=args.image_s,
        thumb_s=args.thumb_s,
        tts_s_per_s=args.tts_s_per_s,
        music_s_per_s=args.music_s_per_s if args.music_s_per_s is not None else MUSIC_S_PER_S[args.music],
        overlap=args.overlap,
        narration_s=args.narration_s,
        time_scale=args.time_scale,
        cpu_s=cpu,
        real_steps=args.real_steps,
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    workload = Workload(
        episodes=args.episodes, scenes=args.scenes, languages=args.languages, music_s=args.music_s
    )
    base = settings_from(args)
    print(
        f"batch: {workload.episodes} episodes x {workload.scenes} scenes x {workload.languages} languages; "
        f"simulated GPU {workload.gpu_seconds(base):.1f} s (images {workload.image_seconds(base):.1f} s, "
        f"narration {workload.tts_seconds(base):.1f} s, music {workload.music_seconds(base):.1f} s), "
        f"CPU {workload.cpu_seconds(base):.1f} s at time scale {base.time_scale:g}"
    )
    record: dict[str, Any] = {
        "command": " ".join(
            ["python", "benchmarks/throughput.py", *(argv if argv is not None else sys.argv[1:])]
        ),
        "machine": f"{platform.node()} {os.cpu_count()} cores",
        "workload": asdict(workload),
        "music_method": args.music if args.music_s_per_s is None else f"{args.music_s_per_s:g} s/s",
        "settings": {
            **asdict(base),
            "busy_dir": None,
            "events": None,
            "cpus_per_node": args.cpus_per_node,
            "max_episodes_in_flight": args.max_episodes_in_flight,
            "max_in_flight": args.max_in_flight,
            "actors": "zray default (an image, narration and music actor pinned to each GPU)",
            "gpu_shares": gpu_shares(),
        },
        "gpu_seconds": round(workload.gpu_seconds(base), 3),
        "image_seconds": round(workload.image_seconds(base), 3),
        "cpu_seconds": round(workload.cpu_seconds(base), 3),
        "sequential": None,
        "zray": [],
    }
    tmp = Path(tempfile.mkdtemp(prefix="zray-throughput-"))
    try:
        run_all(args, record, tmp, workload=workload, base=base)
    finally:
        if args.keep:
            print(f"work folder kept: {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    _scaling(record)
    record["goals"] = goals(record)
    for goal in record["goals"]:
        print(f"{'PASS' if goal['met'] else 'MISS'}: {goal['goal']} (measured {goal['measured']})")
    write_results(args.out, record)
    return record


def run_all(
    args: argparse.Namespace, record: dict[str, Any], tmp: Path, *, workload: Workload, base: SimSettings
) -> None:
    """The sequential baseline, then zray on each node count; fills record."""
    items = load_items(write_scripts(tmp / "scripts" / "bench", workload), workload)
    if not args.skip_sequential:
        sim = _settings(base, tmp / "sequential")
        os.environ[ENV] = sim.to_env()
        config = bench_config(tmp / "sequential" / "out", workload=workload, max_in_flight=args.max_in_flight)
        seconds = run_sequential(items, config)
        record["sequential"] = {
            "makespan_s": round(seconds, 3),
            "episodes_per_hour": round(workload.episodes / seconds * 3600, 2),
        }
        print(f"sequential: {seconds:6.1f} s")
    # One events file for every zray run: the cluster's workers carry one environment. Runs follow
    # each other, so each run's events are those inside its own time window.
    sim = _settings(base, tmp / "zray")
    os.environ[ENV] = sim.to_env()
    cluster = SimulatedCluster(cpus_per_node=args.cpus_per_node, sim=sim, warm=not args.cold)
    try:
        for nodes in args.nodes:
            run_on_cluster(args, record, cluster, tmp, nodes, items, workload=workload, sim=sim)
    finally:
        cluster.shutdown()


def run_on_cluster(
    args: argparse.Namespace,
    record: dict[str, Any],
    cluster: SimulatedCluster,
    tmp: Path,
    nodes: int,
    items: list[Any],
    *,
    workload: Workload,
    sim: SimSettings,
) -> None:
    config = bench_config(tmp / f"zray-{nodes}" / "out", workload=workload, max_in_flight=args.max_in_flight)
    cluster.grow(nodes)
    start = time.time()
    seconds = run_zray(items, config, max_jobs=args.max_episodes_in_flight)
    events = [e for e in read_events(Path(sim.events)) if start <= e["start"] <= start + seconds]
    stats = analyse(events, start=start, wall=seconds, gpus=nodes)
    bound = workload.image_seconds(sim) / nodes
    makespan = stats["makespan_s"]
    record["zray"].append(
        {
            "nodes": nodes,
            "wall_s": round(seconds, 3),
            "image_bound_s": round(bound, 3),
            "over_image_bound": round(makespan / bound - 1, 4),
            "episodes_per_hour": round(workload.episodes / makespan * 3600, 2),
            **stats,
        }
    )
    if stats["cpu_overruns"]:
        print(f"  note: {stats['cpu_overruns']} CPU steps took longer for real than their simulated cost")
    print(
        f"zray, {nodes} node(s): wall {seconds:5.1f} s = actor start-up {stats['startup_s']:4.1f} s "
        f"+ makespan {makespan:5.1f} s; image-bound {bound:5.1f} s ({makespan / bound - 1:+.1%}); "
        f"at most {stats['most_calls_at_once']} model calls at once"
    )


def _settings(base: SimSettings, folder: Path) -> SimSettings:
    folder.mkdir(parents=True, exist_ok=True)
    return replace(base, busy_dir=str(folder / "busy"), events=str(folder / "events.jsonl"))


def _scaling(record: dict[str, Any]) -> None:
    runs = record["zray"]
    one = next((r for r in runs if r["nodes"] == 1), None)
    seq = record["sequential"]
    for r in runs:
        r["scaling"] = round(r["episodes_per_hour"] / one["episodes_per_hour"], 4) if one else None
        r["speedup_vs_sequential"] = round(seq["makespan_s"] / r["makespan_s"], 3) if seq else None


if __name__ == "__main__":
    main()
