"""The embedded Ray instance's watchdog: if zray dies without shutting Ray down (kill -9, a second
Ctrl-C during the shutdown), the Ray processes it started go with it instead of living on.

It runs as its own interpreter, started with `-I -S` from this file's path: no site-packages, so it
needs and can import nothing but the standard library, on any install (psutil, for one, comes only
with some extras). It keeps a list of every process under Ray's own (agents and workers are the
raylet's children, out of reach once it is gone), each known by its pid and start time so a reused
pid is never killed, and when zray is gone it kills them all. When Ray's processes end while zray
lives (a clean `ray.shutdown()`), it removes the run's Ray session folder and leaves.

Linux reads /proc; elsewhere `ps` gives the process table. Usage:
`python -I -S watchdog.py ZRAY_PID SESSION_DIR ROOT_PID...`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time

POLL_SECONDS = 0.25
Proc = tuple[int, str]  # (pid, start time): a pid alone may be reused


def table() -> dict[int, tuple[int, str]]:
    """Every process: pid -> (parent pid, start time)."""
    found: dict[int, tuple[int, str]] = {}
    if os.path.isdir("/proc/self"):
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                with open(f"/proc/{name}/stat", "rb") as fh:
                    fields = fh.read().rsplit(b")", 1)[1].split()
            except (OSError, IndexError):
                continue  # gone meanwhile
            # After the command's closing parenthesis: state, ppid, ... starttime is the 20th.
            found[int(name)] = (int(fields[1]), fields[19].decode())
        return found
    out = subprocess.run(["ps", "-A", "-o", "pid=,ppid=,lstart="], capture_output=True, text=True).stdout
    for line in out.splitlines():
        parts = line.split(None, 2)
        if len(parts) == 3 and parts[0].isdigit() and parts[1].isdigit():
            found[int(parts[0])] = (int(parts[1]), parts[2].strip())
    return found


def descendants(roots: set[Proc], procs: dict[int, tuple[int, str]]) -> set[Proc]:
    """The roots still running and every process under them."""
    alive = {(pid, start) for pid, start in roots if procs.get(pid, (0, ""))[1] == start}
    found, frontier = set(alive), {pid for pid, _ in alive}
    while frontier:
        children = {(pid, start) for pid, (ppid, start) in procs.items() if ppid in frontier}
        children -= found
        found |= children
        frontier = {pid for pid, _ in children}
    return found


def kill(known: set[Proc]) -> None:
    procs = table()
    for pid, start in known:
        if procs.get(pid, (0, ""))[1] == start:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def remove_session(session_dir: str) -> None:
    """The run's Ray session folder, and Ray's `session_latest` link when it points there."""
    if not session_dir or not os.path.isdir(session_dir):
        return
    latest = os.path.join(os.path.dirname(session_dir), "session_latest")
    if os.path.islink(latest) and os.path.realpath(latest) == os.path.realpath(session_dir):
        with contextlib.suppress(OSError):
            os.unlink(latest)
    shutil.rmtree(session_dir, ignore_errors=True)


def watch(parent: int, session_dir: str, root_pids: list[int]) -> None:
    procs = table()
    roots = {(pid, procs[pid][1]) for pid in root_pids if pid in procs}
    known: set[Proc] = set()
    while os.getppid() == parent:  # once zray is gone, this process is someone else's child
        running = descendants(roots, table())
        known |= running
        if not running & roots:
            break  # Ray was shut down
        time.sleep(POLL_SECONDS)
    clean = not descendants(roots, table()) & roots
    # Whatever of Ray's is left goes. New workers may start while the first ones die, so look and
    # kill until nothing is left.
    for _ in range(50):
        known |= descendants(roots, table())
        kill(known)
        procs = table()
        if not any(procs.get(pid, (0, ""))[1] == start for pid, start in known):
            break
        time.sleep(0.1)
    if clean:
        remove_session(session_dir)  # a killed run's logs are kept; a clean one leaves nothing


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C is zray's to handle, not ours
    watch(int(sys.argv[1]), sys.argv[2], [int(p) for p in sys.argv[3:]])
