"""Two models at once, in two processes on one device, as zray's image and music actors run.

Each process builds its own model, warms up, then: images alone, a bed alone, and finally a bed while
the other process makes images the whole time. Barriers keep the phases apart; the parent samples the
device's used memory (all processes) throughout. A model call beside another costs what the "together"
figures show over the "alone" ones: the throughput benchmark's overlap model comes from here.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from typing import Any

# Generous for a phase (building Z-Image and capturing graphs take seconds), short enough that a
# stuck child cannot eat the device lease: the parent gives up after TOTAL_TIMEOUT_S.
PHASE_TIMEOUT_S = 240.0
TOTAL_TIMEOUT_S = 360.0


def _setup(spec: dict[str, Any]) -> Any:
    import sys

    sys.path[:0] = [p for p in spec["sys_path"] if p not in sys.path]
    import real_parts

    if spec["run"]["tiny"]:
        import torch

        torch.set_num_threads(1)  # two processes on a shared CPU: as the parent does

    return real_parts


def image_process(spec: dict[str, Any], barrier: Any, events: tuple[Any, Any], queue: Any) -> None:
    music_started, music_done = events
    try:
        real_parts = _setup(spec)
        run = real_parts.Run(**spec["run"])
        state: dict[str, Any] = {}
        pipe, _ = real_parts._zimage_pipe(run, state)
        engine = real_parts._zimage_engine(run, pipe)
        engine.load()
        real_parts._image(engine, run.image_size, seed=1)
        barrier.wait(PHASE_TIMEOUT_S)  # 1: both ready
        alone = [
            real_parts.timed(lambda i=i: real_parts._image(engine, run.image_size, seed=20 + i))[1]
            for i in range(2)
        ]
        barrier.wait(PHASE_TIMEOUT_S)  # 2: images alone done
        barrier.wait(PHASE_TIMEOUT_S)  # 3: bed alone done
        together = []
        i = 0
        while not music_done.is_set():
            beside = music_started.is_set()
            started = time.perf_counter()
            real_parts._image(engine, run.image_size, seed=40 + i)
            real_parts.sync()
            if beside and not music_done.is_set():  # only images that ran wholly beside the bed
                together.append(time.perf_counter() - started)
            i += 1
        queue.put(("image", {"alone_s": alone, "together_s": together, **real_parts.peak_memory()}))
    except BaseException as exc:  # reported, so the parent can say which side failed
        queue.put(("image", {"error": f"{type(exc).__name__}: {exc}"[:300]}))
        barrier.abort()


def music_process(spec: dict[str, Any], barrier: Any, events: tuple[Any, Any], queue: Any) -> None:
    music_started, music_done = events
    try:
        real_parts = _setup(spec)
        run = real_parts.Run(**spec["run"])
        state: dict[str, Any] = {}
        engine = real_parts._music_engine(run, state, "graphs")
        real_parts._warm_up(run, engine, real_parts.MUSIC_PROMPTS[:1])  # captures the graph
        barrier.wait(PHASE_TIMEOUT_S)  # 1
        barrier.wait(PHASE_TIMEOUT_S)  # 2
        _, alone = real_parts.timed(
            lambda: engine.generate(real_parts.MUSIC_PROMPTS[0], seconds=run.music_seconds)
        )
        barrier.wait(PHASE_TIMEOUT_S)  # 3
        time.sleep(0.5 if run.tiny else 2.0)  # let the image side be mid-image when the bed starts
        music_started.set()
        _, together = real_parts.timed(
            lambda: engine.generate(real_parts.MUSIC_PROMPTS[0], seconds=run.music_seconds)
        )
        music_done.set()
        queue.put(("music", {"alone_s": alone, "together_s": together, **real_parts.peak_memory()}))
    except BaseException as exc:
        queue.put(("music", {"error": f"{type(exc).__name__}: {exc}"[:300]}))
        music_done.set()
        barrier.abort()


def two_at_once(run: Any, state: dict[str, Any]) -> dict[str, Any]:
    """Z-Image and MusicGen (graphs) in two spawned processes; slowdowns and device memory."""
    import dataclasses
    import sys

    import real_parts

    real_parts.free(state, *real_parts.MODELS)  # the parent's models off the device first
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    events = (context.Event(), context.Event())  # music started, music done
    queue = context.Queue()
    spec = {"run": dataclasses.asdict(run), "sys_path": list(sys.path)}
    processes = [
        context.Process(target=image_process, args=(spec, barrier, events, queue), daemon=True),
        context.Process(target=music_process, args=(spec, barrier, events, queue), daemon=True),
    ]
    sampler = _DeviceMemory() if run.cuda else None
    for process in processes:
        process.start()
    results: dict[str, Any] = {}
    deadline = time.monotonic() + (3 * PHASE_TIMEOUT_S if run.tiny else TOTAL_TIMEOUT_S)
    try:
        while len(results) < 2 and time.monotonic() < deadline:
            try:
                side, data = queue.get(timeout=5.0)
            except Exception:
                if not any(p.is_alive() for p in processes):
                    break
                continue
            results[side] = data
    finally:
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                os.kill(process.pid, 9)  # a child of this part, stuck on a broken barrier
        peak_used = sampler.stop() if sampler else None
    image, music = results.get("image", {}), results.get("music", {})
    out: dict[str, Any] = {"device_peak_used_gib": peak_used}
    for side, data in (("image", image), ("music", music)):
        if "error" in data or not data:
            out[f"{side}_error"] = data.get("error", "no result (process died)")
            continue
        alone = (
            sum(data["alone_s"]) / len(data["alone_s"])
            if isinstance(data["alone_s"], list)
            else data["alone_s"]
        )
        together_list = data["together_s"] if isinstance(data["together_s"], list) else [data["together_s"]]
        out[f"{side}_alone_s"] = round(alone, 3)
        out[f"{side}_together_s"] = (
            round(sum(together_list) / len(together_list), 3) if together_list else None
        )
        out[f"{side}_together_n"] = len(together_list)
        if together_list:
            out[f"{side}_slowdown"] = round(out[f"{side}_together_s"] / alone - 1, 4)
        out[f"{side}_peak_reserved_gib"] = data.get("peak_reserved_gib")
    return out


class _DeviceMemory:
    """The device's used memory (every process), sampled every 0.1 s; stop() gives the peak in GiB."""

    def __init__(self) -> None:
        import torch

        self.torch = torch
        self.peak = 0
        self.running = True
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def _sample(self) -> None:
        while self.running:
            free, total = self.torch.cuda.mem_get_info()
            self.peak = max(self.peak, total - free)
            time.sleep(0.1)

    def stop(self) -> float:
        self.running = False
        self.thread.join(timeout=2)
        return round(self.peak / 2**30, 2)
