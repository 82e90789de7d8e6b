"""What the throughput benchmark's events say (start-up, makespan, busy GPU time, overlap, placement)
and how its results are written: JSON, a markdown table with the goals, a plot."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

BOUND_GOAL = 0.10  # within 10 % of the image-bound limit on one GPU
SCALING_GOAL = 0.85  # at least 0.85 x N times the one-node throughput on N nodes


def read_events(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def analyse(events: list[dict[str, Any]], *, start: float, wall: float, gpus: int) -> dict[str, Any]:
    """Start-up and makespan, model time per kind and per simulated GPU, how many calls ran at once,
    placement, CPU faithfulness."""
    gpu_events = [e for e in events if e["gpu"]]
    cpu_events = [e for e in events if not e["gpu"]]
    names = {node: i for i, node in enumerate(sorted({e["node"] for e in events}))}
    by_kind: dict[str, float] = defaultdict(float)
    busy: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for e in gpu_events:
        by_kind[e["kind"]] += e["end"] - e["start"]
        busy[e["node"]].append((e["start"], e["end"]))
    actors: dict[str, int] = defaultdict(int)  # "image@node0" = image actors on node 0
    for kind, node, _ in {(e["kind"], e["node"], e["pid"]) for e in gpu_events}:
        actors[f"{kind}@node{names[node]}"] += 1
    startup = min((e["start"] for e in gpu_events), default=start) - start
    makespan = wall - startup
    last = max((e["end"] for e in events), default=start)
    occupied = {node: _union(spans) for node, spans in busy.items()}
    return {
        "startup_s": round(startup, 3),  # until the first model call began
        "makespan_s": round(makespan, 3),
        "model_s_by_kind": {k: round(v, 3) for k, v in sorted(by_kind.items())},  # slowed by overlap
        "model_nominal_s": round(sum(e["nominal"] for e in gpu_events), 3),
        "gpu_occupied_s": round(sum(occupied.values()), 3),  # time with at least one call running
        "gpu_utilisation": round(sum(occupied.values()) / (gpus * makespan), 4) if makespan > 0 else None,
        "most_calls_at_once": max((e.get("most_running", 1) for e in gpu_events), default=0),
        "records_s": round(start + wall - last, 3),  # after the last step ended (run.json, checksums)
        "cpu_steps": len(cpu_events),
        "cpu_overruns": sum(1 for e in cpu_events if e["real"] > e["nominal"]),
        "actors": dict(sorted(actors.items())),
        "tasks_per_node": [
            sum(1 for e in cpu_events if e["node"] == node) for node in sorted(names, key=names.get)
        ],
    }


def _union(spans: list[tuple[float, float]]) -> float:
    total, end = 0.0, float("-inf")
    for a, b in sorted(spans):
        if b > end:
            total += b - max(a, end)
            end = b
    return total


def goals(record: dict[str, Any]) -> list[dict[str, Any]]:
    runs = {r["nodes"]: r for r in record["zray"]}
    out = []
    if 1 in runs:
        over = runs[1]["over_image_bound"]
        out.append(
            {
                "goal": "within 10 % of the image-bound limit on one GPU",
                "measured": f"{over:+.1%}",
                "met": over <= BOUND_GOAL,
            }
        )
        for n, r in runs.items():
            if n == 1:
                continue
            out.append(
                {
                    "goal": f"at least {SCALING_GOAL} x {n} = {SCALING_GOAL * n:.2f} x the one-node throughput on {n} nodes",
                    "measured": f"{r['scaling']:.2f}x",
                    "met": r["scaling"] >= SCALING_GOAL * n,
                }
            )
    return out


def write_results(out: Path, record: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "throughput.json").write_text(json.dumps(record, indent=1) + "\n")
    (out / "throughput.md").write_text(markdown(record))
    plotted = plot(out / "throughput.png", record)
    print(
        f"results: {out / 'throughput.json'}, {out / 'throughput.md'}" + (f", {plotted}" if plotted else "")
    )


def markdown(record: dict[str, Any]) -> str:
    w, seq, s = record["workload"], record["sequential"], record["settings"]
    scale = s["time_scale"]
    lines = [
        "# zray throughput benchmark",
        "",
        f"Batch: {w['episodes']} episodes x {w['scenes']} scenes x {w['languages']} languages, a "
        f"{w['music_s']:g} s music bed each. Model costs as measured on a GPU (`sim_engines.MEASURED`): "
        f"image {s['image_s']:g} s, thumbnail base {s['thumb_s']:g} s, narration {s['tts_s_per_s']:g} s per "
        f"second of speech ({s['narration_s']:g} s a scene), music {s['music_s_per_s']:g} s per second of bed "
        f"({record['music_method']}); a call beside another runs {s['overlap']:.0%} slower. Every simulated "
        f"second is {scale:g} s here, so the figures below are GPU seconds x {scale:g}. Simulated GPU time "
        f"{record['gpu_seconds']:.1f} s (images {record['image_seconds']:.1f} s: the image-bound limit), "
        f"CPU {record['cpu_seconds']:.1f} s. Actors: {s['actors']}, GPU shares {s['gpu_shares']}; episodes in "
        f"flight {s['max_episodes_in_flight']}. Command: `{record['command']}` ({record['machine']}).",
        "",
    ]
    if seq:
        lines += [
            f"Seed's sequential schedule on one GPU: {seq['makespan_s']:.1f} s, "
            f"{seq['episodes_per_hour']:.0f} episodes/h (x{1 / scale:g} time scale).",
            "",
        ]
    lines += [
        "| nodes (1 GPU each) | wall s | actor start-up s | makespan s | image-bound s | over it "
        "| GPU occupied | most calls at once | episodes/h | x one node | vs sequential |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in record["zray"]:
        cells = [
            str(r["nodes"]),
            f"{r['wall_s']:.1f}",
            f"{r['startup_s']:.1f}",
            f"{r['makespan_s']:.1f}",
            f"{r['image_bound_s']:.1f}",
            f"{r['over_image_bound']:+.1%}",
            _fmt(r["gpu_utilisation"], "{:.0%}"),
            str(r["most_calls_at_once"]),
            f"{r['episodes_per_hour']:.0f}",
            _fmt(r["scaling"], "{:.2f}x"),
            _fmt(r["speedup_vs_sequential"], "{:.2f}x"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Goals:", ""]
    for goal in record["goals"]:
        lines.append(f"- {'PASS' if goal['met'] else 'MISS'}: {goal['goal']} (measured {goal['measured']})")
    lines += [
        "",
        "Wall: `execute` (the code behind `zray batch`) on a `ray.cluster_utils.Cluster` on this machine, the "
        "simulated steps handed to its executor. Actor start-up: until the first model call. Makespan: the "
        "rest, first model call to the last record written. Image-bound limit: the scene and thumbnail "
        "images' simulated time over the GPUs, the least a batch can take when images never wait.",
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
    if not runs:
        return None
    xs = list(range(len(runs)))
    fig, axis = plt.subplots(figsize=(7, 4.2))
    axis.bar(xs, [r["startup_s"] for r in runs], 0.5, color="lightgrey", label="actor start-up")
    axis.bar(
        xs, [r["makespan_s"] for r in runs], 0.5, bottom=[r["startup_s"] for r in runs], label="makespan"
    )
    axis.scatter(
        xs,
        [r["startup_s"] + r["image_bound_s"] for r in runs],
        marker="_",
        s=900,
        color="red",
        zorder=3,
        label="start-up + image-bound limit",
    )
    axis.set(
        xticks=xs, xticklabels=[str(r["nodes"]) for r in runs], xlabel="nodes, one GPU each", ylabel="seconds"
    )
    axis.set_title(
        f"{record['workload']['episodes']} episodes x {record['workload']['scenes']} scenes x "
        f"{record['workload']['languages']} languages, music: {record['music_method']}"
    )
    axis.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
