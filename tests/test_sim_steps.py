"""The throughput benchmark's simulated steps and engines: typed like zray's own, handed to
`execute` through its `steps` argument (zray's table is never patched), and the measured overlap of
model calls on one GPU instead of a lock."""

from __future__ import annotations

import io
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from rich.console import Console

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import sim_engines

    settings = sim_engines.SimSettings(
        time_scale=0.001,
        cpu_s={"segment": 0.3, "intro": 0.3, "pad": 0.05, "video": 1.0, "thumbs": 0.1, "subs": 0.02},
        busy_dir=str(tmp_path / "busy"),
        events=str(tmp_path / "events.jsonl"),
    )
    monkeypatch.setenv(sim_engines.ENV, settings.to_env())
    yield settings
    for name in ("sim_engines", "sim_steps"):
        sys.modules.pop(name, None)


def events(settings) -> list[dict]:
    return [json.loads(line) for line in Path(settings.events).read_text().splitlines()]


def test_execute_runs_the_steps_it_is_given_and_leaves_zrays_table_alone(bench, tmp_path: Path) -> None:
    import sim_steps
    from conftest import small_script, write_script

    from zray.config import load_config
    from zray.nodes import Kind
    from zray.pipeline import steps
    from zray.pipeline.prepare import RunRequest
    from zray.pipeline.run import execute
    from zray.script import load_script

    table = dict(steps.STEPS)
    script = write_script(tmp_path / "scripts", small_script())
    config = load_config(
        None,
        output=str(tmp_path / "out"),
        profile="draft",
        quiet=True,
        executor="in-process",
        video={"width": 64, "height": 64, "fps": 24, "preset": "fast", "gop": 24},
        engines={
            "image": "sim_engines:SimImageEngine",
            "music": "sim_engines:SimMusicEngine",
            "tts_default": "sim_engines:SimTTSEngine",
        },
    )
    request = RunRequest(script=script)
    (report,) = execute(
        [(request, load_script(script)[0])],
        config,
        console=Console(file=io.StringIO()),
        isolate=False,
        steps=sim_steps.SIM_STEPS,
    )
    assert report.ok, report.failed
    assert table == steps.STEPS  # nothing was swapped in
    kinds = {e["kind"] for e in events(bench)}
    assert {"pad", "segment", "subs", "video", "thumbs"} <= kinds  # every CPU step was the simulated one
    assert {"image", "thumb", "tts", "music"} <= kinds  # and the model calls the simulated engines
    videos = list((tmp_path / "out").rglob("*.mp4"))
    assert videos and all(v.read_bytes().startswith(b"simulated video") for v in videos)
    assert set(sim_steps.SIM_STEPS) == set(steps.STEPS) == set(sim_steps.PLACEHOLDERS)
    assert Kind.VIDEO in sim_steps.SIM_STEPS


def test_a_model_call_beside_another_runs_slower_instead_of_waiting(bench) -> None:
    """A call in flight on the same node (its marker) slows this one by the overlap, never blocks it."""
    import sim_engines

    settings = replace(bench, time_scale=1.0, overlap=0.5)
    folder = Path(settings.busy_dir) / sim_engines.node_id()
    folder.mkdir(parents=True)
    other = folder / "another-call"
    other.touch()
    sim_engines.use_gpu(settings, "image", 0.05)
    alone_started = time.time()
    other.unlink()
    sim_engines.use_gpu(settings, "music", 0.05)
    beside, alone = events(settings)[-2:]
    assert beside["most_running"] == 2 and alone["most_running"] == 1
    # 0.05 s of work at half speed beside the other call: at least 0.075 s; alone, at least 0.05 s.
    assert beside["end"] - beside["start"] >= 0.05 * 1.5
    assert alone["end"] - alone["start"] >= 0.05 and alone["start"] >= alone_started
    assert not list(folder.iterdir())  # each call removed its own marker
