"""Scheduling benchmark: the seed's sequential schedule against zray's, and zray on 1, 2, 4 nodes.

    python benchmarks/throughput.py [--quick] [--episodes 10 --scenes 10 --languages 2] [--nodes 1,2,4]
        [--max-episodes-in-flight 4] [--real-steps] [--help for latencies]

Model calls are simulated (`sim_engines`: each holds its node's one-GPU lock for a configured
latency) and so is CPU work (`sim_steps`: a sleep for a configured cost, placeholders written where
the outputs go), so the figures measure scheduling rather than this machine's two cores. The same
batch runs these ways:

- sequential: the seed's order, phase after phase and episode after episode (thumbnails, then each
  scene's image and each language's narration and padding, then music, then each language's
  assembly), the same engines and steps called directly in this process;
- zray on N = 1, 2, 4 nodes of a `ray.cluster_utils.Cluster`, one logical GPU each, through
  `zray.pipeline.run.execute` (the code behind `zray batch`) with the real Driver and actors.

The cluster grows between runs, and its worker pools are filled, before the clock starts. What it
then counts is split in two: actor start-up (until the first model call: process start-up, which this
2-core machine makes slow, and where a GPU node loads its models) and the makespan (first model
call to the last record written), which the goals use. Goals (issue 6): within 10 % of the lower
bound (simulated GPU time / GPUs) on one GPU, and at least 0.85 x N times the one-node throughput on
N nodes. `--quick` is a smoke run: its batch is so small that the last episode's assembly alone
keeps it off the goals. Results: benchmarks/results/throughput.{json,md,png}.
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import logging
import os
import platform
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import sim_steps
from sim_engines import ENV, SimSettings

from zray.actors.placement import GPU_SHARE
from zray.actors.workers import ImageWorker, MusicWorker, TTSWorker
from zray.config import Config, load_config
from zray.pipeline.plan import Node, Plan
from zray.pipeline.prepare import RunRequest, prepare_engines, prepare_episode
from zray.script import Script, load_script
from zray.store import Store

HERE = Path(__file__).resolve().parent  # on sys.path when run as a script: sim_engines lives here

LANGUAGES = ("es", "en", "ca", "fr", "it", "pt", "de", "ja")
LOWER_BOUND_GOAL = 0.10
SCALING_GOAL = 0.85


@dataclass(frozen=True)
class Workload:
    episodes: int
    scenes: int
    languages: int
    music_s: float  # seconds of music generated per episode (zray's audio.music_seconds)

    @property
    def langs(self) -> list[str]:
        return list(LANGUAGES[: self.languages])

    def gpu_seconds(self, sim: SimSettings) -> float:
        """Simulated GPU time of the whole batch: scene images and one thumbnail per language,
        narration per scene and language, music once per episode."""
        images = self.scenes + self.languages
        narration = self.scenes * self.languages * sim.narration_s * sim.tts_s_per_s
        return self.episodes * (images * sim.image_s + narration + self.music_s * sim.music_s_per_s)

    def cpu_seconds(self, sim: SimSettings) -> float:
        c = sim.cpu_s
        per_episode = (
            self.scenes * c["segment"]
            + self.scenes * self.languages * c["pad"]
            + self.languages * (c["video"] + c["thumbs"] + c["subs"])
        )
        return self.episodes * per_episode


# --- inputs ------------------------------------------------------------------------------------


def write_scripts(folder: Path, workload: Workload) -> list[Path]:
    """One script per episode; short narration, since the simulated engines ignore the text."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for episode in range(1, workload.episodes + 1):
        scenes = [
            {
                "scene_id": i,
                "image_prompt": f"Episode {episode}, scene {i}: a quiet landscape",
                **{f"script_{lang}": f"Scene {i} of episode {episode} ({lang})." for lang in workload.langs},
                **{f"chapter_{lang}": f"Part {i // 3 + 1}" for lang in workload.langs},
            }
            for i in range(workload.scenes)
        ]
        data = {
            "project_title": "Throughput benchmark",
            "saga": 1,
            "episode": episode,
            "global_music_prompt": "calm ambient pads",
            "scenes": scenes,
            "seo": {
                lang: {"variants": [{"title": f"Episode {episode}", "thumb_text": f"EP {episode}"}]}
                for lang in workload.langs
            },
        }
        path = folder / f"SAGA_01_Episode_{episode:02d}.json"
        path.write_text(json.dumps(data), encoding="utf-8")
        paths.append(path)
    return paths


def bench_config(output: Path, *, workload: Workload, max_in_flight: int) -> Config:
    """zray's settings for the batch. Actors take zray's own GPU shares for production engines (the
    simulated engines are custom ones, which zray would not give a GPU); counts and placement are
    zray's defaults: an image, narration and music actor pinned to each GPU."""
    engines = {
        "image": "sim_engines:SimImageEngine",
        "music": "sim_engines:SimMusicEngine",
        "tts_default": "sim_engines:SimTTSEngine",
    }
    actors = {role: {"num_gpus": share} for role, share in GPU_SHARE.items()}
    return load_config(
        None,
        output=str(output),
        profile="draft",
        quiet=True,
        shared_storage=True,  # every simulated node is this machine
        max_in_flight=max_in_flight,
        video={"width": 64, "height": 64, "fps": 24, "preset": "fast", "gop": 24},
        audio={"music_seconds": workload.music_s},
        engines=engines,
        actors=actors,
    )


def load_items(paths: list[Path], workload: Workload) -> list[tuple[RunRequest, Script]]:
    return [(RunRequest(script=p, languages=workload.langs), load_script(p)[0]) for p in paths]


# --- the seed's schedule -----------------------------------------------------------------------


def seed_order(plan: Plan) -> list[Node]:
    """The seed's phases for one episode: thumbnails; per scene its image, then per language its
    narration and padding; music; per language subtitles and assembly. Each still is encoded once
    (zray's segment step) before the first assembly, so both schedules do the same work."""
    nodes = plan.nodes
    labels = [n.id.split(":", 1)[1] for n in nodes.values() if n.kind == "image" and n.stage == "images"]
    order: list[str] = []
    for lang in plan.languages:
        order += [f"thumb_base:{lang}", f"thumbs:{lang}"]
    for label in labels:
        order.append(f"image:{label}")
        for lang in plan.languages:
            order += [f"tts:{lang}:{label}", f"pad:{lang}:{label}"]
    order.append("music")
    order += [f"segment:{label}" for label in labels]
    for lang in plan.languages:
        order += [f"subs:{lang}", f"video:{lang}"]
    if sorted(order) != sorted(nodes):
        raise RuntimeError(f"the plan has nodes the seed order does not know: {set(nodes) ^ set(order)}")
    return [nodes[node_id] for node_id in order]


def run_sequential(items: list[tuple[RunRequest, Script]], config: Config) -> float:
    """Episode after episode in one process, no Ray; returns the makespan in seconds."""
    store = Store(config.output)
    languages = list(dict.fromkeys(lang for request, _ in items for lang in request.languages))
    engines, identities = prepare_engines(languages, config, "draft")
    workers = {
        "image": ImageWorker(engines.image),
        "tts": TTSWorker(engines.tts),
        "music": MusicWorker(engines.music),
    }
    start = time.time()
    for request, script in items:
        prepared = prepare_episode(request, script, config, store, engines, identities)
        results: dict[str, dict[str, Any]] = {}
        for node in seed_order(prepared.plan):
            deps = [results[d] for d in node.deps]
            if node.kind in workers:
                results[node.id] = workers[node.kind].run(store, node, *deps)
            else:
                results[node.id] = sim_steps.SIM_STEPS[node.kind](store, node, *deps)
    return time.time() - start


# --- zray's schedule ---------------------------------------------------------------------------


class SimulatedCluster:
    """A head and worker nodes on this machine, one logical GPU each, the driver connected.

    It grows between runs (1, then 2, then 4 nodes) rather than starting afresh: on this machine a
    fresh four-node cluster and its worker pools take a minute to come up.
    """

    def __init__(self, *, cpus_per_node: int, sim: SimSettings, warm: bool):
        from ray.cluster_utils import Cluster

        self.cpus_per_node, self.warm = cpus_per_node, warm
        self.node_args = {"num_cpus": cpus_per_node, "num_gpus": 1, "object_store_memory": 256 * 2**20}
        self.sim = sim
        self.cluster = Cluster(
            initialize_head=True, head_node_args={**self.node_args, "include_dashboard": False}
        )
        self.nodes = 1
        self.connected = False

    def grow(self, nodes: int) -> None:
        """Add nodes up to `nodes`, connect, and fill every node's worker pool."""
        import ray

        for _ in range(nodes - self.nodes):
            self.cluster.add_node(**self.node_args)
        self.nodes = max(self.nodes, nodes)
        self.cluster.wait_for_nodes()
        if not self.connected:
            python_path = os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])
            ray.init(
                address=self.cluster.address,
                runtime_env={"env_vars": {"PYTHONPATH": python_path, ENV: self.sim.to_env()}},
                log_to_driver=False,
                logging_level=logging.WARNING,
            )
            self.connected = True
        deadline = time.time() + 60
        while ray.cluster_resources().get("GPU", 0) < self.nodes and time.time() < deadline:
            time.sleep(0.2)
        if self.warm:
            _start_workers(self.nodes * self.cpus_per_node)

    def shutdown(self) -> None:
        import ray

        if self.connected:
            ray.shutdown()
        self.cluster.shutdown()


def _start_workers(count: int) -> None:
    """Fill every node's worker pool before the clock starts.

    A Ray worker process costs a second or two of CPU to start (Python, numpy, PyAV, zray). Ray
    starts them on demand, and on this 2-core machine a few dozen starting at once would be timed
    as scheduling. Idle workers stay in the pool and serve the batch's tasks and actors.
    """
    import ray

    @ray.remote(num_cpus=1)
    def hold(until: float) -> int:
        import sim_steps  # noqa: F401  (what the batch's tasks import)

        time.sleep(max(0.0, until - time.time()))
        return os.getpid()

    # Every task holds its CPU until all have started, so each one gets a process of its own.
    until = time.time() + 5.0
    while True:
        pids = set(ray.get([hold.remote(until) for _ in range(count)]))
        if len(pids) == count or time.time() > until + 120:
            return
        until = time.time() + 5.0


def run_zray(items: list[tuple[RunRequest, Script]], config: Config, *, max_jobs: int) -> float:
    """The batch through `execute`, the code behind `zray batch`; returns the makespan in seconds."""
    from rich.console import Console

    from zray.pipeline.run import execute

    console = Console(file=io.StringIO())
    with sim_steps.installed():
        start = time.time()
        reports = execute(items, config, console=console, isolate=True, max_jobs=max_jobs)
        seconds = time.time() - start
    failed = {str(r.script): r.failed for r in reports if not r.ok}
    if failed:
        raise RuntimeError(f"zray failed on the benchmark batch: {failed}")
    return seconds


def check_videos(output: Path, workload: Workload, sim: SimSettings) -> None:
    """Every language's video is there and lasts its narration (decoded, when the steps were real)."""
    videos = sorted(output.rglob("S01E*.mp4"))
    expected = workload.episodes * workload.languages
    if len(videos) != expected:
        raise RuntimeError(f"{output}: {len(videos)} videos, expected {expected}")
    least = workload.scenes * sim.narration_s * 24
    for record in output.rglob("run.json"):
        for name, info in json.loads(record.read_text())["outputs"].items():
            if name.endswith(".mp4") and info["duration"] * 24 < least:
                raise RuntimeError(f"{record.parent / name}: lasts {info['duration']} s")
    if sim.real_steps:
        import av

        with av.open(str(videos[-1])) as container:
            frames = sum(1 for _ in container.decode(video=0))
        if frames < least:
            raise RuntimeError(f"{videos[-1]}: only {frames} frames")


# --- measurements ------------------------------------------------------------------------------


def read_events(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def analyse(events: list[dict[str, Any]], *, start: float, wall: float, gpus: int) -> dict[str, Any]:
    """Start-up and makespan, busy time per simulated GPU, overlaps, placement, CPU faithfulness."""
    gpu_events = [e for e in events if e["gpu"]]
    cpu_events = [e for e in events if not e["gpu"]]
    by_node: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in gpu_events:
        by_node[e["node"]].append(e)
    overlaps = 0
    for node_events in by_node.values():
        node_events.sort(key=lambda e: e["start"])
        overlaps += sum(1 for a, b in itertools.pairwise(node_events) if b["start"] < a["end"] - 1e-3)
    busy = {node: sum(e["end"] - e["start"] for e in evs) for node, evs in by_node.items()}
    actors: dict[str, int] = defaultdict(int)  # "image:3" = image actors on node 3
    names = {node: i for i, node in enumerate(sorted({e["node"] for e in events}))}
    for kind, node, _ in {(e["kind"], e["node"], e["pid"]) for e in gpu_events}:
        actors[f"{kind}@node{names[node]}"] += 1
    startup = min((e["start"] for e in gpu_events), default=start) - start
    makespan = wall - startup
    last = max((e["end"] for e in events), default=start)
    return {
        "startup_s": round(startup, 3),  # until the first model call began
        "makespan_s": round(makespan, 3),
        "gpu_busy_s": round(sum(busy.values()), 3),
        "gpu_busy_per_node_s": [round(busy.get(node, 0.0), 3) for node in sorted(names, key=names.get)],
        "gpu_utilisation": round(sum(busy.values()) / (gpus * makespan), 4),
        "gpu_overlaps": overlaps,
        "records_s": round(start + wall - last, 3),  # after the last step ended (run.json, checksums)
        "cpu_steps": len(cpu_events),
        "cpu_overruns": sum(1 for e in cpu_events if e["real"] > e["nominal"]),
        "cpu_real_max_s": round(max((e["real"] for e in cpu_events), default=0.0), 3),
        "actors": dict(sorted(actors.items())),
        "tasks_per_node": [
            sum(1 for e in cpu_events if e["node"] == node) for node in sorted(names, key=names.get)
        ],
    }


# --- results -----------------------------------------------------------------------------------


def write_results(out: Path, record: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "throughput.json").write_text(json.dumps(record, indent=1) + "\n")
    (out / "throughput.md").write_text(markdown(record))
    plotted = plot(out / "throughput.png", record)
    print(
        f"results: {out / 'throughput.json'}, {out / 'throughput.md'}" + (f", {plotted}" if plotted else "")
    )


def markdown(record: dict[str, Any]) -> str:
    w, seq = record["workload"], record["sequential"]
    lines = [
        "# zray throughput benchmark",
        "",
        f"Batch: {w['episodes']} episodes x {w['scenes']} scenes x {w['languages']} languages; simulated "
        f"GPU time {record['gpu_seconds']:.1f} s, simulated CPU time {record['cpu_seconds']:.1f} s; "
        f"actors: {record['settings']['actors']}; episodes in flight: "
        f"{record['settings']['max_episodes_in_flight']}; max_in_flight: {record['settings']['max_in_flight']}. "
        f"Command: `{record['command']}` ({record['machine']}).",
        "",
    ]
    if seq:
        lines += [
            f"Seed's sequential schedule on one GPU: {seq['makespan_s']:.1f} s, "
            f"{seq['episodes_per_hour']:.0f} episodes/h, GPU utilisation {seq['gpu_utilisation']:.0%}.",
            "",
        ]
    lines += [
        "| nodes (1 GPU each) | wall s | actor start-up s | makespan s | lower bound s | over bound "
        "| GPU util | episodes/h | x one node | efficiency | vs sequential |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in record["zray"]:
        cells = [
            str(r["nodes"]),
            f"{r['wall_s']:.1f}",
            f"{r['startup_s']:.1f}",
            f"{r['makespan_s']:.1f}",
            f"{r['lower_bound_s']:.1f}",
            f"{r['over_lower_bound']:+.1%}",
            f"{r['gpu_utilisation']:.0%}",
            f"{r['episodes_per_hour']:.0f}",
            _fmt(r["scaling"], "{:.2f}x"),
            _fmt(r["scaling_efficiency"], "{:.2f}"),
            _fmt(r["speedup_vs_sequential"], "{:.2f}x"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Goals:", ""]
    for goal in record["goals"]:
        lines.append(f"- {'PASS' if goal['met'] else 'MISS'}: {goal['goal']} (measured {goal['measured']})")
    lines += [
        "",
        "Wall: `execute` (the code behind `zray batch`) on a `ray.cluster_utils.Cluster` on this machine. Actor "
        "start-up: from the call until the first model call, spent starting the actor processes (on this "
        "2-core machine, seconds per process; a real GPU node loads its models then). Makespan: the rest, "
        "first model call to the last record written; throughput, the lower bound (simulated GPU time / "
        "GPUs) and the goals use it. Efficiency: throughput on N nodes over N times the one-node throughput.",
        "",
    ]
    return "\n".join(lines)


def _fmt(value: float | None, spec: str) -> str:
    return "" if value is None else spec.format(value)


def plot(path: Path, record: dict[str, Any]) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot (pip install matplotlib)")
        return None
    runs = record["zray"]
    nodes = [r["nodes"] for r in runs]
    one = next((r["episodes_per_hour"] for r in runs if r["nodes"] == 1), None)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    if one:
        left.plot(nodes, [one * n for n in nodes], "--", color="grey", label="linear")
        left.plot(
            nodes, [SCALING_GOAL * one * n for n in nodes], ":", color="red", label=f"goal {SCALING_GOAL} x N"
        )
    left.plot(nodes, [r["episodes_per_hour"] for r in runs], "o-", color="tab:blue", label="zray (makespan)")
    left.plot(
        nodes,
        [r["episodes_per_hour_wall"] for r in runs],
        "s--",
        color="tab:cyan",
        label="zray (wall, with start-up)",
    )
    if record["sequential"]:
        left.axhline(record["sequential"]["episodes_per_hour"], color="tab:orange", label="sequential, 1 GPU")
    left.set(xlabel="nodes, one simulated GPU each", ylabel="episodes per hour", xticks=nodes)
    left.set_title("Throughput")
    left.legend(fontsize="small")
    xs = list(range(len(runs)))
    right.bar(xs, [r["startup_s"] for r in runs], 0.5, color="lightgrey", label="actor start-up")
    right.bar(
        xs, [r["makespan_s"] for r in runs], 0.5, bottom=[r["startup_s"] for r in runs], label="makespan"
    )
    right.scatter(
        xs,
        [r["startup_s"] + r["lower_bound_s"] for r in runs],
        marker="_",
        s=900,
        color="red",
        zorder=3,
        label="start-up + lower bound",
    )
    right.set(xticks=xs, xticklabels=[str(n) for n in nodes], xlabel="nodes", ylabel="seconds")
    right.set_title("Wall time of the batch")
    right.set_ylim(0, 1.35 * max(r["wall_s"] for r in runs))
    right.legend(fontsize="small", loc="upper right")
    fig.suptitle(
        f"{record['workload']['episodes']} episodes x {record['workload']['scenes']} scenes x "
        f"{record['workload']['languages']} languages, simulated GPU {record['gpu_seconds']:.0f} s"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# --- main --------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--quick", action="store_true", help="3 episodes x 4 scenes on 1 and 2 nodes (a smoke run)"
    )
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--scenes", type=int, default=10)
    p.add_argument("--languages", type=int, default=2, choices=range(1, len(LANGUAGES) + 1))
    p.add_argument("--nodes", default="1,2,4", help="node counts to run zray on, comma-separated")
    p.add_argument("--image-s", type=float, default=0.2, help="GPU seconds per image")
    p.add_argument("--tts-s-per-s", type=float, default=0.075, help="GPU seconds per second of narration")
    p.add_argument("--music-s-per-s", type=float, default=0.05, help="GPU seconds per second of music")
    p.add_argument("--narration-s", type=float, default=2.0, help="narration per scene, seconds")
    p.add_argument("--music-s", type=float, default=10.0, help="music generated per episode, seconds")
    p.add_argument("--encode-s", type=float, default=0.3, help="CPU seconds per scene encode")
    p.add_argument("--pad-s", type=float, default=0.05, help="CPU seconds per narration padding")
    p.add_argument("--assemble-s", type=float, default=1.0, help="CPU seconds per language's final video")
    p.add_argument("--thumbs-s", type=float, default=0.1, help="CPU seconds per language's thumbnails")
    p.add_argument("--subs-s", type=float, default=0.02, help="CPU seconds per language's subtitles")
    p.add_argument("--cpus-per-node", type=int, default=4, help="logical CPUs per simulated node")
    p.add_argument(
        "--max-episodes-in-flight",
        type=int,
        default=4,
        help="zray batch's option of that name (its default: 4)",
    )
    p.add_argument("--max-in-flight", type=int, default=64, help="zray's max_in_flight setting (default 64)")
    p.add_argument(
        "--real-steps",
        action="store_true",
        help="run zray's real media steps (tiny media) inside the CPU costs",
    )
    p.add_argument(
        "--cold", action="store_true", help="time Ray's worker start-up too (no warm-up of the worker pool)"
    )
    p.add_argument("--keep", action="store_true", help="keep the work folder (scripts, outputs, events)")
    p.add_argument("--skip-sequential", action="store_true", help="do not run the seed's schedule")
    p.add_argument("--out", type=Path, default=HERE / "results")
    args = p.parse_args(argv)
    if args.quick:
        args.episodes, args.scenes = 3, 4
        if args.nodes == "1,2,4":
            args.nodes = "1,2"
    try:
        args.nodes = sorted({int(n) for n in args.nodes.split(",")})
    except ValueError:
        p.error(f"--nodes {args.nodes!r}: expected comma-separated integers such as 1,2,4")
    if not args.nodes or min(args.nodes) < 1:
        p.error("--nodes: every node count must be at least 1")
    for name in ("episodes", "scenes", "cpus_per_node", "max_episodes_in_flight", "max_in_flight"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1, not {getattr(args, name)}")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    workload = Workload(
        episodes=args.episodes, scenes=args.scenes, languages=args.languages, music_s=args.music_s
    )
    cpu = {
        "segment": args.encode_s,
        "intro": args.encode_s,
        "pad": args.pad_s,
        "video": args.assemble_s,
        "thumbs": args.thumbs_s,
        "subs": args.subs_s,
    }
    base = SimSettings(
        image_s=args.image_s,
        tts_s_per_s=args.tts_s_per_s,
        music_s_per_s=args.music_s_per_s,
        narration_s=args.narration_s,
        cpu_s=cpu,
        real_steps=args.real_steps,
    )
    gpu_total = workload.gpu_seconds(base)
    print(
        f"batch: {workload.episodes} episodes x {workload.scenes} scenes x {workload.languages} languages; "
        f"simulated GPU {gpu_total:.1f} s, CPU {workload.cpu_seconds(base):.1f} s"
    )
    record: dict[str, Any] = {
        "command": " ".join(
            ["python", "benchmarks/throughput.py", *(argv if argv is not None else sys.argv[1:])]
        ),
        "machine": f"{platform.node()} {os.cpu_count()} cores",
        "workload": asdict(workload),
        "settings": {
            **asdict(base),
            "lock_dir": None,
            "events": None,
            "cpus_per_node": args.cpus_per_node,
            "max_episodes_in_flight": args.max_episodes_in_flight,
            "max_in_flight": args.max_in_flight,
            "actors": "zray default (an image, narration and music actor pinned to each GPU)",
            "gpu_shares": GPU_SHARE,
        },
        "gpu_seconds": round(gpu_total, 3),
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
    summary(record)
    write_results(args.out, record)
    return record


def run_all(
    args: argparse.Namespace,
    record: dict[str, Any],
    tmp: Path,
    *,
    workload: Workload,
    base: SimSettings,
) -> None:
    """The sequential baseline, then zray on each node count; fills record."""
    paths = write_scripts(tmp / "scripts" / "bench", workload)
    items = load_items(paths, workload)

    if not args.skip_sequential:
        sim = _settings(base, tmp / "sequential")
        os.environ[ENV] = sim.to_env()
        config = bench_config(
            tmp / "sequential" / "out",
            workload=workload,
            max_in_flight=args.max_in_flight,
        )
        start = time.time()
        seconds = run_sequential(items, config)
        check_videos(tmp / "sequential" / "out", workload, sim)
        stats = analyse(read_events(Path(sim.events)), start=start, wall=seconds, gpus=1)
        record["sequential"] = {
            "makespan_s": round(seconds, 3),
            "episodes_per_hour": round(workload.episodes / seconds * 3600, 2),
            "gpu_utilisation": round(stats["gpu_busy_s"] / seconds, 4),
            "cpu_overruns": stats["cpu_overruns"],
        }
        print(f"sequential: {seconds:6.1f} s  GPU utilisation {stats['gpu_utilisation']:.0%}")

    if not args.nodes:
        return
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
    items: list[tuple[RunRequest, Script]],
    *,
    workload: Workload,
    sim: SimSettings,
) -> None:
    """zray's batch on `nodes` nodes; appends the run's figures to record."""
    gpu_total = workload.gpu_seconds(sim)
    folder = tmp / f"zray-{nodes}"
    config = bench_config(
        folder / "out",
        workload=workload,
        max_in_flight=args.max_in_flight,
    )
    began = time.time()
    cluster.grow(nodes)
    start = time.time()
    setup = start - began
    seconds = run_zray(items, config, max_jobs=args.max_episodes_in_flight)
    check_videos(folder / "out", workload, sim)
    events = [e for e in read_events(Path(sim.events)) if start <= e["start"] <= start + seconds]
    stats = analyse(events, start=start, wall=seconds, gpus=nodes)
    if stats["gpu_overlaps"]:
        raise RuntimeError(f"{stats['gpu_overlaps']} model calls overlapped on a simulated GPU")
    bound = gpu_total / nodes
    makespan = stats["makespan_s"]
    run = {
        "nodes": nodes,
        "wall_s": round(seconds, 3),
        "cluster_setup_s": round(setup, 3),  # untimed: cluster start and worker warm-up
        "lower_bound_s": round(bound, 3),
        "over_lower_bound": round(makespan / bound - 1, 4),
        "episodes_per_hour": round(workload.episodes / makespan * 3600, 2),
        "episodes_per_hour_wall": round(workload.episodes / seconds * 3600, 2),
        "scenes_per_s": round(workload.episodes * workload.scenes / makespan, 4),
        **stats,
    }
    record["zray"].append(run)
    if stats["cpu_overruns"]:
        print(f"  note: {stats['cpu_overruns']} CPU steps took longer for real than their simulated cost")
    print(
        f"zray, {nodes} node(s): wall {seconds:5.1f} s = actor start-up {stats['startup_s']:4.1f} s "
        f"+ makespan {makespan:5.1f} s; lower bound {bound:5.1f} s ({makespan / bound - 1:+.1%}); "
        f"GPU utilisation {stats['gpu_utilisation']:.0%}; {run['episodes_per_hour']:.0f} episodes/h"
    )


def _settings(base: SimSettings, folder: Path) -> SimSettings:
    folder.mkdir(parents=True, exist_ok=True)
    return SimSettings(
        **{**asdict(base), "lock_dir": str(folder / "locks"), "events": str(folder / "events.jsonl")}
    )


def _scaling(record: dict[str, Any]) -> None:
    runs = record["zray"]
    one = next((r for r in runs if r["nodes"] == 1), None)
    seq = record["sequential"]
    for r in runs:
        r["scaling"] = round(r["episodes_per_hour"] / one["episodes_per_hour"], 4) if one else None
        r["scaling_efficiency"] = round(r["scaling"] / r["nodes"], 4) if one else None
        r["speedup_vs_sequential"] = round(seq["makespan_s"] / r["makespan_s"], 3) if seq else None


def goals(record: dict[str, Any]) -> list[dict[str, Any]]:
    runs = {r["nodes"]: r for r in record["zray"]}
    out = []
    if 1 in runs:
        over = runs[1]["makespan_s"] / runs[1]["lower_bound_s"] - 1
        out.append(
            {
                "goal": "within 10 % of the lower bound on one GPU",
                "measured": f"{over:+.1%}",
                "met": over <= LOWER_BOUND_GOAL,
            }
        )
        for n, r in runs.items():
            if n == 1:
                continue
            ratio = r["scaling"]
            out.append(
                {
                    "goal": f"at least {SCALING_GOAL} x {n} = {SCALING_GOAL * n:.2f} x the one-node throughput on {n} nodes",
                    "measured": f"{ratio:.2f}x",
                    "met": ratio >= SCALING_GOAL * n,
                }
            )
    return out


def summary(record: dict[str, Any]) -> None:
    seq = record["sequential"]
    runs = {r["nodes"]: r for r in record["zray"]}
    if seq and 1 in runs:
        print(
            f"makespan ratio sequential / zray on one GPU: {seq['makespan_s'] / runs[1]['makespan_s']:.2f}x "
            f"({seq['makespan_s'] / runs[1]['wall_s']:.2f}x counting zray's actor start-up)"
        )
    for goal in record["goals"]:
        print(f"{'PASS' if goal['met'] else 'MISS'}: {goal['goal']} (measured {goal['measured']})")


if __name__ == "__main__":
    main()
