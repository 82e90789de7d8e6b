"""Progress inside long steps: a step's reports (frames done of its total) reach the driver from a
thread of this process or from a Ray worker, the run shows a bar per running step, and with --quiet a
log line every 10 s for a step that takes longer."""

from __future__ import annotations

import io
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from rich.console import Console

from zray.nodes import Kind, Node, Request, Result
from zray.pipeline import progress as progress_mod
from zray.pipeline.executor import InProcessExecutor
from zray.store import Store
from zray.work import StepProgress, Work, counted

FRAMES = 480


@dataclass(frozen=True)
class EncodeRequest(Request):
    """Stands for a video step: `frames` to encode, then wait for the test's go-ahead file."""

    kind = Kind.MOTION
    frames: int
    release: str  # a file whose existence lets the step finish


def encode_then_wait(store: Store, request: EncodeRequest, inputs: object) -> Result:
    """Feeds frames through `counted`, as the motion, captioned and Shorts steps do, then holds
    until the test has seen its progress (a polled file: the step may run in another process)."""
    for _frame in counted(range(request.frames), request.frames):
        pass
    while not Path(request.release).exists():
        time.sleep(0.05)
    return Result(path="")


def _work(tmp_path: Path) -> Work:
    request = EncodeRequest(frames=FRAMES, release=str(tmp_path / "release"))
    node = Node(id="video:es", stage="video", key="k", request=request)
    return Work(job="proj/S01E01", node=node, inputs=None, store=Store(str(tmp_path / "ep")))


def _seen_while_running(executor, tmp_path: Path) -> list[StepProgress]:
    """Submit the step, wait until the driver-side executor reports it finished its frames, let it
    end, and return what was reported while it ran; afterwards nothing is reported for it."""
    executor.submit(_work(tmp_path))
    while True:
        reports = executor.progress()
        if any(r.done == FRAMES for r in reports):
            break
        # The step holds until released, so a step that ended here failed: say how, never spin.
        for done in executor.wait(0.2):
            pytest.fail(f"the step ended before its progress was seen: {done.outcome.error}")
    (tmp_path / "release").touch()
    done = []
    while not done:
        done = executor.wait(0.5)
    assert done[0].outcome.error is None, done[0].outcome.error
    assert executor.progress() == []
    return reports


def test_a_step_s_progress_reaches_the_in_process_driver(tmp_path):
    executor = InProcessExecutor(steps={Kind.MOTION: encode_then_wait}, threads=2)
    try:
        (report,) = _seen_while_running(executor, tmp_path)
    finally:
        executor.close()
    assert (report.job, report.node, report.done, report.total, report.unit) == (
        "proj/S01E01",
        "video:es",
        FRAMES,
        FRAMES,
        "frames",
    )


def test_a_step_s_progress_reaches_the_driver_from_a_ray_worker(ray_session, tmp_path):
    from zray.actors.executor import RayExecutor

    class NoActors:
        def shutdown(self) -> None:
            pass

        def done(self, ref) -> None:
            pass

    executor = RayExecutor(NoActors(), steps={Kind.MOTION: encode_then_wait}, task_retries=0)  # type: ignore[arg-type]
    try:
        (report,) = _seen_while_running(executor, tmp_path)
    finally:
        executor.close()
    assert (report.node, report.done, report.total) == ("video:es", FRAMES, FRAMES)


def _bars(*, enabled: bool) -> progress_mod._Bars:
    return progress_mod._Bars(Console(file=io.StringIO(), force_terminal=False), enabled=enabled)


def test_a_running_step_gets_a_bar_with_its_frames_and_loses_it_when_done():
    bars = _bars(enabled=True)
    bars.step_progress([StepProgress("ep", "video:es", 120, 480)], now=0.0)
    (task,) = bars.progress.tasks
    assert task.description.strip() == "video:es" and (task.completed, task.total) == (120, 480)
    bars.step_progress([StepProgress("ep", "video:es", 360, 480)], now=1.0)
    assert bars.progress.tasks[0].completed == 360
    bars.step_progress([], now=2.0)
    assert bars.progress.tasks == []


def test_quiet_says_how_far_a_long_step_has_got_every_ten_seconds(caplog):
    bars = _bars(enabled=False)
    caplog.set_level(logging.INFO, logger="zray")
    for second, done in ((0, 0), (5, 500), (10, 1000), (15, 1500), (20, 2000), (31, 3100)):
        bars.step_progress([StepProgress("proj/S01E01", "shorts:es", done, 4000)], now=float(second))
    lines = [r.getMessage() for r in caplog.records]
    # Nothing for the first 10 s, then a line every 10 s: 100 frames a second, so the time left is exact.
    assert lines == [
        "proj/S01E01: shorts:es: 1000/4000 frames, about 0:30 left",
        "proj/S01E01: shorts:es: 2000/4000 frames, about 0:20 left",
        "proj/S01E01: shorts:es: 3100/4000 frames, about 0:09 left",
    ]
    assert bars.progress.tasks == []  # no bars with --quiet


def test_the_video_and_shorts_steps_report_their_frames(tmp_path, monkeypatch):
    """A real draft run (in this process): every video and Shorts step reports frames done of its
    total, ending with all of them."""
    from conftest import FAST_VIDEO, write_script

    from zray import work as executor_mod
    from zray.config import load_config
    from zray.pipeline.run import RunRequest, run_episode

    seen: list[StepProgress] = []
    original = executor_mod.ProgressBoard.report

    def record(board, report: StepProgress) -> None:
        seen.append(report)
        original(board, report)

    monkeypatch.setattr(executor_mod.ProgressBoard, "report", record)
    script = write_script(tmp_path / "scripts" / "proj")
    config = load_config(
        None,
        output=str(tmp_path / "out"),
        profile="draft",
        quiet=True,
        video=FAST_VIDEO,
        executor="in-process",
        shorts={"enabled": True},
    )
    report = run_episode(RunRequest(script=script), config)
    assert report.ok, report.failed
    nodes = json.loads((tmp_path / "out" / "proj" / script.stem / "run.json").read_text())["nodes"]
    for node in ("video:es", "video:ca", "shorts:es", "shorts:ca"):
        mine = [r for r in seen if r.node == node]
        assert mine and all(r.unit == "frames" and 0 < r.done <= r.total for r in mine), node
        assert [r.done for r in mine] == sorted(r.done for r in mine)
        assert mine[-1].done == mine[-1].total, node
    assert mine_total("video:es", seen) == nodes["video:es"]["result"]["frames"]


def mine_total(node: str, seen: list[StepProgress]) -> int:
    return next(r.total for r in seen if r.node == node)


def test_an_upload_off_a_terminal_says_its_bytes_every_ten_seconds_and_at_the_end():
    out = io.StringIO()
    clock = iter([0.0, 4.0, 10.5, 12.0, 13.0])
    shown = progress_mod.UploadProgress(Console(file=out, force_terminal=False), clock=lambda: next(clock))
    with shown:
        for sent in (262_144, 524_288, 2_097_152, 2_359_296):
            shown("es", sent, 3_000_000)
        shown("es", 3_000_000, 3_000_000)
    assert out.getvalue().splitlines() == ["es: 2.1 of 3.0 MB sent", "es: 3.0 of 3.0 MB sent"]
