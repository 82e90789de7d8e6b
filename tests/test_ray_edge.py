"""What the embedded Ray instance leaves behind and says: nothing, and nothing a user need read."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from conftest import small_script, write_script

pytestmark = pytest.mark.slow
TESTS = Path(__file__).resolve().parent


def test_a_killed_driver_takes_its_embedded_ray_with_it(tmp_path):
    """kill -9 of the zray process alone (not its process group): the GCS, raylet, agents and workers
    it started must not outlive it."""
    gate = tmp_path / "gate"
    data = small_script()
    data["scenes"][-1]["image_prompt"] = f"GATE:{gate} a last scene"
    script = write_script(tmp_path / "scripts" / "proj", data)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
        "ZRAY_ENGINES__IMAGE": "fault_engines:GatedImageEngine",
        "ZRAY_EXECUTOR": "ray",
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
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        _gone, alive = psutil.wait_procs(ray_processes, timeout=30)
        assert not alive, f"still running after the driver died: {[(p.pid, p.name()) for p in alive]}"
    finally:
        gate.touch()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


def test_an_embedded_run_does_not_print_rays_token_notice(tmp_path):
    script = write_script(tmp_path / "scripts" / "proj")
    env = {
        **os.environ,
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
