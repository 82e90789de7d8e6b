"""What the embedded Ray instance leaves behind and says: nothing, and nothing a user need read."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest
from conftest import small_script, write_script

pytestmark = pytest.mark.slow
TESTS = Path(__file__).resolve().parent


@pytest.fixture
def ray_tmp():
    """Ray's temp folder for one test (short: Ray's socket paths must fit in 107 bytes)."""
    folder = Path(tempfile.mkdtemp(prefix="zr-", dir="/tmp"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def sessions(ray_tmp: Path) -> list[Path]:
    return sorted(p for p in ray_tmp.glob("session_2*") if p.is_dir())


def interrupt_twice(proc: subprocess.Popen, *, group: bool) -> None:
    """Ctrl-C twice, 0.3 s apart: to zray alone, or to its process group as a terminal does."""
    for _ in range(2):
        if group:
            os.killpg(proc.pid, signal.SIGINT)
        else:
            os.kill(proc.pid, signal.SIGINT)
        time.sleep(0.3)


@pytest.mark.parametrize("ending", ["kill-9", "sigint-twice", "sigint-twice-to-the-group"])
def test_a_killed_driver_takes_its_embedded_ray_with_it(tmp_path, ray_tmp, ending):
    """kill -9 of the zray process alone (not its process group), or two quick Ctrl-C: the GCS,
    raylet, agents and workers it started must not outlive it by more than 10 s."""
    gate = tmp_path / "gate"
    data = small_script()
    data["scenes"][-1]["image_prompt"] = f"GATE:{gate} a last scene"
    script = write_script(tmp_path / "scripts" / "proj", data)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
        "ZRAY_ENGINES__IMAGE": "fault_engines:GatedImageEngine",
        "ZRAY_EXECUTOR": "ray",
        "RAY_TMPDIR": str(ray_tmp),
    }
    cmd = [
        sys.executable,
        "-m",
        "zray",
        "run",
        str(script),
        "--output",
        str(tmp_path / "out"),
        "--profile",
        "draft",
        "--quiet",
    ]
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    try:
        driver = psutil.Process(proc.pid)
        holder = tmp_path / "gate.holder"
        deadline = time.monotonic() + 300
        while not holder.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert holder.exists(), proc.stderr.read().decode()[-2000:] if proc.poll() is not None else "timeout"
        ray_processes = [p for p in driver.children(recursive=True) if "ray" in " ".join(p.cmdline()).lower()]
        assert any(p.name() in ("raylet", "gcs_server") for p in ray_processes), ray_processes
        if ending == "kill-9":
            os.kill(proc.pid, signal.SIGKILL)
        else:
            interrupt_twice(proc, group=ending.endswith("group"))
        proc.wait()
        _gone, alive = psutil.wait_procs(ray_processes, timeout=10)
        alive = [p for p in alive if p.status() != psutil.STATUS_ZOMBIE]
        assert not alive, f"still running after the driver died: {[(p.pid, p.name()) for p in alive]}"
    finally:
        gate.touch()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


def test_an_embedded_run_does_not_print_rays_token_notice_and_leaves_no_session_folder(tmp_path, ray_tmp):
    script = write_script(tmp_path / "scripts" / "proj")
    env = {
        **os.environ,
        "RAY_TMPDIR": str(ray_tmp),
        "ZRAY_EXECUTOR": "ray",
        "ZRAY_VIDEO__WIDTH": "320",
        "ZRAY_VIDEO__HEIGHT": "176",
        "ZRAY_VIDEO__PRESET": "fast",
    }
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "zray",
            "run",
            str(script),
            "--output",
            str(tmp_path / "out"),
            "--profile",
            "draft",
            "--lang",
            "es",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Token authentication" not in result.stderr + result.stdout
    # The watchdog removes the run's Ray session folder once Ray is shut down.
    deadline = time.monotonic() + 10
    while sessions(ray_tmp) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not sessions(ray_tmp)
