"""The real-size benchmark's Wan parts: one 5 s clip at 1280x704 (121 frames) from a picture, through
zray's `WanVideoEngine`, with Wan2.2-TI2V-5B's real shapes and random weights made on the device.

- `wan_steps`: resident, the same clip at 20, 30 and 50 steps (the same seed): seconds, seconds per
  step, the VAE decode, peak GiB; PSNR and SSIM of the 20- and 30-step clips against the 50-step one;
  the FLOPs of a step at this size (two transformer forwards: guidance) against the card's measured
  bf16 matmul rate, i.e. how far each run is from what the card could do at best.
- `wan_cache`: diffusers' FirstBlockCache at two thresholds (30 and 20 steps), against the 50-step clip.
- `wan_compile`: regional compilation of the transformer's blocks (first clip, then seconds).
- `wan_group_offload`: the small-card mode (blocks streamed from the host): seconds and peak GiB.

With random weights PSNR/SSIM say how much fewer steps or a cache change the arithmetic's result, not
how good a trained model's clip looks: a trained model's trajectories are smoother, so these are
lower bounds on its agreement. `--tiny` runs the same code on tests/tiny_wan.py's shapes on a CPU.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any

import numpy as np
import real_models
from real_parts import Run, _mean, _one_line, free, peak_memory, psnr, reset_peak, stage_timer, timed

PROMPT = "The camera slowly pushes in while mist drifts between glowing alien trees"
STEPS = (20, 30, 50)
CACHE_THRESHOLDS = (0.05, 0.1)


def _clip_size(run: Run) -> tuple[int, int, int]:
    c = run.configs["wan"]["clip"]
    return c["width"], c["height"], c["frames"]


def _picture(run: Run) -> Any:
    """A first frame with structure (gradients and blocks), the clip's size."""
    from PIL import Image

    width, height, _ = _clip_size(run)
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([x * 255 // max(1, width - 1), y * 255 // max(1, height - 1), (x + y) % 256], axis=-1)
    rgb[height // 4 : height // 2, width // 3 : width // 2] = (240, 200, 40)
    return Image.fromarray(rgb.astype(np.uint8))


def _pipe(run: Run, state: dict[str, Any]) -> tuple[Any, float]:
    import torch

    if "wan_pipe" in state:
        return state["wan_pipe"], 0.0
    dtype = torch.float32 if run.tiny else torch.bfloat16
    pipe, seconds = timed(lambda: real_models.build_wan(run.configs, device=run.device, dtype=dtype))
    state["wan_pipe"] = pipe
    return pipe, seconds


def _engine(run: Run, pipe: Any, **settings: Any) -> Any:
    from zray.engines.wan import WanSettings, WanVideoEngine

    options = {
        "model": "real-size-random",
        "device": run.device,
        "dtype": "float32" if run.tiny else "bfloat16",
    }
    return WanVideoEngine(WanSettings(**{**options, **settings}), pipeline=pipe)


def _clip(run: Run, engine: Any, seed: int = 10) -> np.ndarray:
    width, height, frames = _clip_size(run)
    return engine.generate(_picture(run), PROMPT, width=width, height=height, frames=frames, seed=seed)


def ssim(a: np.ndarray, b: np.ndarray) -> float | None:
    """Mean SSIM of two clips' luma (frames, h, w, 3 uint8), 7x7 windows (Wang et al.'s constants)."""
    import torch
    import torch.nn.functional as F

    if a.shape != b.shape:
        return None
    weights = torch.tensor([0.299, 0.587, 0.114], dtype=torch.float64)
    x = torch.from_numpy(a).double() @ weights
    y = torch.from_numpy(b).double() @ weights
    x, y = x[:, None], y[:, None]

    def pool(t: Any) -> Any:
        return F.avg_pool2d(t, 7, stride=1)

    mx, my = pool(x), pool(y)
    vx, vy, cov = pool(x * x) - mx * mx, pool(y * y) - my * my, pool(x * y) - mx * my
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    value = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return round(float(value.mean()), 4)


def matmul_tflops(run: Run) -> float | None:
    """The card's bf16 matmul rate (8192^3, ten in a row): the most a transformer step could reach."""
    import torch

    if not run.cuda:
        return None
    a = torch.randn(8192, 8192, device=run.device, dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device=run.device, dtype=torch.bfloat16)
    torch.matmul(a, b)  # warm-up
    _, seconds = timed(lambda: [a @ b for _ in range(10)])
    return round(10 * 2 * 8192**3 / seconds / 1e12, 1)


def _timed_clip(run: Run, engine: Any, pipe: Any, seed: int = 10) -> tuple[np.ndarray, dict[str, Any]]:
    reset_peak()
    with stage_timer(pipe) as times:
        clip, seconds = timed(lambda: _clip(run, engine, seed))
    steps = engine.settings.steps
    return clip, {
        "s": round(seconds, 2),
        "s_per_step": round(sum(times["transformer"]) / steps, 3),
        "transformer_forwards": len(times["transformer"]),
        "vae_decode_s": _mean(times["vae_decode"]),
        "text_encode_s": round(sum(times["text_encode"]), 3),
        **peak_memory(),
    }


def wan_steps(run: Run, state: dict[str, Any]) -> dict[str, Any]:
    """Resident Wan: the clip at 20, 30 and 50 steps, quality against 50, distance from the card's limit."""
    pipe, build_s = _pipe(run, state)
    width, height, frames = _clip_size(run)
    out: dict[str, Any] = {
        "clip": f"{width}x{height}x{frames}",
        "params_transformer_b": round(real_models.parameters(pipe.transformer) / 1e9, 3),
        "params_text_encoder_b": round(real_models.parameters(pipe.text_encoder) / 1e9, 3),
        "params_vae_m": round(real_models.parameters(pipe.vae) / 1e6, 1),
        "build_s": round(build_s, 2),
    }
    warm = _engine(run, pipe, steps=2)
    warm.load()
    _, out["warmup_2_steps_s"] = timed(lambda: _clip(run, warm, seed=1))
    clips: dict[int, np.ndarray] = {}
    for steps in STEPS:
        clip, figures = _timed_clip(run, _engine(run, pipe, steps=steps), pipe)
        clips[steps] = clip
        out.update({f"steps{steps}_{k}": v for k, v in figures.items()})
    reference = clips[STEPS[-1]]
    state["wan_reference"] = reference
    for steps in STEPS[:-1]:
        out[f"steps{steps}_psnr_db"] = psnr(clips[steps], reference)
        out[f"steps{steps}_ssim"] = ssim(clips[steps], reference)
    flops_step = 2 * real_models.wan_flops_per_forward(run.configs, width=width, height=height, frames=frames)
    out["tflop_per_step"] = round(flops_step / 1e12, 1)
    peak = matmul_tflops(run)
    out["matmul_bf16_tflops"] = peak
    if peak:
        for steps in STEPS:
            per_step = out[f"steps{steps}_s_per_step"]
            out[f"steps{steps}_achieved_tflops"] = round(flops_step / per_step / 1e12, 1)
            out[f"steps{steps}_floor_s"] = round(steps * flops_step / (peak * 1e12), 1)
        out["steps_within_60_s_at_matmul_peak"] = math.floor(60 * peak * 1e12 / flops_step)
    out["finite_output"] = bool(np.isfinite(reference.astype(np.float64)).all())
    return out


def wan_cache(run: Run, state: dict[str, Any]) -> dict[str, Any]:
    """FirstBlockCache: a step whose first block changed its input less than the threshold reuses the
    other blocks' previous residual. Seconds and quality against the 50-step clip (same seed)."""
    pipe, _ = _pipe(run, state)
    reference = state.get("wan_reference")
    out: dict[str, Any] = {}
    for threshold in CACHE_THRESHOLDS:
        for steps in (30, 20):
            name = f"cache{threshold:g}_steps{steps}"
            engine = _engine(run, pipe, steps=steps, cache_threshold=threshold)
            try:
                engine.load()
                clip, figures = _timed_clip(run, engine, pipe)
                out.update(
                    {
                        f"{name}_{k}": v
                        for k, v in figures.items()
                        if k in ("s", "s_per_step", "peak_reserved_gib")
                    }
                )
                out[f"{name}_transformer_forwards"] = figures["transformer_forwards"]
                if reference is not None:
                    out[f"{name}_psnr_db"] = psnr(clip, reference)
                    out[f"{name}_ssim"] = ssim(clip, reference)
            except Exception as exc:  # a diffusers without this hook for Wan
                out[f"{name}_error"] = _one_line(exc)
            finally:
                with contextlib.suppress(Exception):  # nothing was enabled
                    pipe.transformer.disable_cache()
    return out


def wan_compile(run: Run, state: dict[str, Any]) -> dict[str, Any]:
    """Regional compilation: the first clip (compiling), then seconds at 20 steps."""
    pipe, _ = _pipe(run, state)
    engine = _engine(run, pipe, steps=20, compile=True)
    engine.load()
    _, first_s = timed(lambda: _clip(run, engine, seed=1))
    clip, figures = _timed_clip(run, engine, pipe)
    free(state, "wan_pipe")  # its blocks stay compiled: later parts build their own
    reference = state.get("wan_reference")
    return {
        "first_clip_with_compile_s": round(first_s, 2),
        "steps20_s": figures["s"],
        "steps20_s_per_step": figures["s_per_step"],
        "psnr_db_vs_50_steps": psnr(clip, reference) if reference is not None else None,
    }


def wan_group_offload(run: Run, state: dict[str, Any]) -> dict[str, Any]:
    """The small-card mode: the transformer's blocks and the text encoder's layers streamed from pinned
    host memory, the VAE on the card. Peak GiB is what a card needs; 20 steps."""
    pipe, build_s = _pipe(run, state)
    state.pop("wan_pipe")  # offload hooks stay on it: nobody after this part reuses it
    _, to_host_s = timed(lambda: pipe.to("cpu"))
    free(state)
    reset_peak()
    engine = _engine(run, pipe, steps=20, memory="group_offload")
    _, load_s = timed(engine.load)
    # No warm-up of its own: the kernels for these shapes were chosen by the resident parts before.
    clip, figures = _timed_clip(run, engine, pipe)
    engine = pipe = None
    free(state)
    return {
        "placement": "group_offload" if run.cuda else "resident (no CUDA)",
        "build_s": round(build_s, 2),
        "to_host_s": round(to_host_s, 2),
        "load_s": round(load_s, 2),
        "steps20_s": figures["s"],
        "steps20_s_per_step": figures["s_per_step"],
        "peak_reserved_gib": figures["peak_reserved_gib"],
        "peak_allocated_gib": figures["peak_allocated_gib"],
        "finite_output": bool(np.isfinite(clip.astype(np.float64)).all()),
    }
