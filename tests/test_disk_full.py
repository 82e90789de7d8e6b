"""A full disk is one line naming the folder and the file being written, never an AssertionError or a
traceback, and nothing half-written is trusted by the next run.

With root (CI containers, this machine) the run writes to a 2 MB tmpfs, which fills up mid-run; the
same run then finishes once the tmpfs has room. Without root, the store's writer meets the kernel's
own ENOSPC from /dev/full.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import av
import pytest
from conftest import write_script

from zray.store import DiskFull, Store


def zray_run(script: Path, out: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZRAY_")} | {"ZRAY_EXECUTOR": "in-process"}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "zray",
            "run",
            str(script),
            "--output",
            str(out),
            "--profile",
            "draft",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )


@pytest.fixture
def small_disk(tmp_path: Path):
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(
            "mounting a tmpfs needs root; test_a_write_into_a_full_disk_is_disk_full covers the store"
        )
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


def test_a_run_on_a_disk_that_fills_up_is_one_line_and_the_next_run_finishes(tmp_path, small_disk):
    script = write_script(tmp_path / "scripts" / "proj")
    out = small_disk / "out"
    folder = out / "proj" / script.stem

    failed = zray_run(script, out)

    assert failed.returncode == 1
    assert "Traceback" not in failed.stderr and "AssertionError" not in failed.stderr, failed.stderr[-3000:]
    last = failed.stderr.strip().splitlines()[-1]
    assert last.startswith("zray: ") and "no space left on device" in last
    assert f"{folder} is full" in last and str(folder / "run.json") in last

    subprocess.run(["mount", "-o", "remount,size=256m", str(small_disk)], check=True)
    finished = zray_run(script, out)

    assert finished.returncode == 0, finished.stderr[-3000:]
    assert not [p for p in folder.rglob("*") if ".zray-tmp-" in p.name or p.name.endswith(".tmp")]
    videos = sorted(folder.glob("S01E02-*.mp4"))
    assert len(videos) == 2
    for video in videos:
        with av.open(str(video)) as container:
            assert sum(1 for _ in container.decode(video=0)) > 0


def test_a_write_into_a_full_disk_is_disk_full_naming_the_folder_and_file(tmp_path):
    store = Store(tmp_path / "EP")
    with pytest.raises(DiskFull) as caught, store.writer("assets/audio.wav") as tmp:
        tmp.write_bytes(b"RIFF")
        with open("/dev/full", "wb") as full:  # the kernel's own ENOSPC
            full.write(b"\0" * 4096)
            full.flush()
    message = str(caught.value)
    assert message.startswith("no space left on device: ")
    assert (
        f"{tmp_path / 'EP'} is full" in message and str(tmp_path / "EP" / "assets" / "audio.wav") in message
    )
    assert store.list() == [] and not list((tmp_path / "EP").rglob("*.wav"))
