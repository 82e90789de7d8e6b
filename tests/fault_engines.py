"""Test-only engines for fault injection, loaded by Ray workers as `fault_engines:Class`."""

from __future__ import annotations

import os
import time
from pathlib import Path

from zray.engines.storyboard import StoryboardImageEngine

CRASH_PREFIX = "CRASH-ONCE:"


class CrashOnceImageEngine(StoryboardImageEngine):
    """Kills its whole actor process the first time it sees a prompt `CRASH-ONCE:<marker path>`.

    The marker file makes the crash happen once across restarts, like a transient CUDA fault.
    """

    def generate(self, prompt, *, width, height, seed, label=""):
        if prompt.startswith(CRASH_PREFIX):
            marker = Path(prompt[len(CRASH_PREFIX) :].split()[0])
            if not marker.exists():
                marker.write_text(str(os.getpid()))
                os._exit(1)
        return super().generate(prompt, width=width, height=height, seed=seed, label=label)


GATE_PREFIX = "GATE:"


class GatedImageEngine(StoryboardImageEngine):
    """Holds a prompt `GATE:<path> ...` until that file exists, so a test can kill a run at a known point.

    The engine's identity is the same with the gate shut or open, so a rerun reuses what the first run made.
    While it waits, `<gate>.holder` names the Ray node holding the prompt ("in-process" without Ray).
    """

    def generate(self, prompt, *, width, height, seed, label=""):
        if prompt.startswith(GATE_PREFIX):
            gate = Path(prompt[len(GATE_PREFIX) :].split()[0])
            if not gate.exists():
                import sys

                where = "in-process"
                if "ray" in sys.modules and sys.modules["ray"].is_initialized():
                    where = sys.modules["ray"].get_runtime_context().get_node_id()
                holder = gate.with_name(gate.name + ".holder")
                holder.with_suffix(".tmp").write_text(where)
                holder.with_suffix(".tmp").replace(holder)
            while not gate.exists():
                time.sleep(0.05)
        return super().generate(prompt, width=width, height=height, seed=seed, label=label)
