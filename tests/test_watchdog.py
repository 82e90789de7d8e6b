"""The embedded Ray's watchdog needs nothing beyond the standard library: it runs in an interpreter
that cannot import psutil (or anything outside the standard library), on any install.

Here it watches a process tree standing for Ray's (a root, its children and grandchildren, as the
raylet and its workers), started by a process standing for zray, exactly as `cluster` starts it.
The tests with the real Ray are in test_ray_edge.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil

from zray.actors import watchdog
from zray.actors.cluster import watchdog_command

# Ray's processes: a root whose children and grandchildren sleep (the raylet, its agents and workers).
TREE = textwrap.dedent(
    """
    import subprocess, sys, time
    depth = int(sys.argv[1])
    kids = [subprocess.Popen([sys.executable, __file__, str(depth - 1)]) for _ in range(2)] if depth else []
    time.sleep(3600)
    """
)

# "zray": starts the tree, then the watchdog on it the way `cluster._reap_when_we_die` does, prints
# the root's pid and waits; with "clean" it first ends the tree itself, as `ray.shutdown()` does.
DRIVER = textwrap.dedent(
    """
    import os, signal, subprocess, sys, time
    from zray.actors import watchdog
    from zray.actors.cluster import watchdog_command

    tree, session, mode = sys.argv[1:4]
    root = subprocess.Popen([sys.executable, tree, "2"], start_new_session=True)
    time.sleep(1.0)
    subprocess.Popen(
        watchdog_command(os.getpid(), session, [root.pid], script=watchdog.__file__),
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    print(root.pid, flush=True)
    if mode == "clean":
        time.sleep(1.0)
        os.killpg(root.pid, signal.SIGKILL)
        root.wait()
    time.sleep(3600)
    """
)


def start_driver(session: Path, mode: str) -> tuple[subprocess.Popen, psutil.Process]:
    tree = session.parent / "tree.py"
    tree.write_text(TREE)
    driver = subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(tree), str(session), mode], stdout=subprocess.PIPE, text=True
    )
    root = psutil.Process(int(driver.stdout.readline()))
    return driver, root


def tree_of(root: psutil.Process) -> list[psutil.Process]:
    deadline = time.monotonic() + 60
    while len(found := [root, *root.children(recursive=True)]) < 7 and time.monotonic() < deadline:
        time.sleep(0.1)
    return found


def test_the_watchdog_s_interpreter_cannot_import_psutil_or_anything_outside_the_stdlib(tmp_path):
    interpreter = watchdog_command(1, str(tmp_path), [1], script=watchdog.__file__)[:-4]
    assert interpreter[1:] == ["-I", "-S"]
    for module in ("psutil", "ray", "zray", "numpy"):
        probe = subprocess.run([*interpreter, "-c", f"import {module}"], capture_output=True, text=True)
        assert probe.returncode != 0 and "ModuleNotFoundError" in probe.stderr, module
    # ... and it is all the watchdog needs: it runs there and watches (here, nothing: it leaves).
    alone = subprocess.run(watchdog_command(os.getpid(), "", [2**22 + 7], script=watchdog.__file__))
    assert alone.returncode == 0


def test_kill_9_of_zray_takes_the_whole_tree_down(tmp_path):
    session = tmp_path / "session_x"
    session.mkdir()
    driver, root = start_driver(session, "kill")
    tree = tree_of(root)
    assert len(tree) == 7
    try:
        time.sleep(0.5)  # the watchdog has looked at the tree at least once
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait()
        _gone, alive = psutil.wait_procs(tree, timeout=10)
        assert not alive, alive
        assert session.exists()  # a killed run's Ray logs are kept
    finally:
        for proc in tree:
            if proc.is_running():
                proc.kill()


def test_a_clean_shutdown_removes_the_session_folder_and_the_watchdog_leaves(tmp_path):
    session = tmp_path / "session_y"
    (session / "logs").mkdir(parents=True)
    (tmp_path / "session_latest").symlink_to(session)
    driver, _root = start_driver(session, "clean")
    watchdogs = [p for p in psutil.Process(driver.pid).children() if watchdog.__file__ in p.cmdline()]
    try:
        deadline = time.monotonic() + 60
        while session.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not session.exists() and not (tmp_path / "session_latest").is_symlink()
        _gone, alive = psutil.wait_procs(watchdogs, timeout=10)
        # It left (a zombie until its parent, "zray", reaps it), and zray itself lives on.
        assert all(p.status() == psutil.STATUS_ZOMBIE for p in alive) and driver.poll() is None
    finally:
        driver.kill()
        driver.wait()
