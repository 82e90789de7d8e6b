"""The parts of the real-size benchmark: each builds what it needs, runs zray's engine classes, and
returns its figures as a flat dict (seconds, real-time factors, GiB).

A part gets the run (device, configs, sizes) and a shared `state` dict in which it may leave a
built model for the parts after it; a part that needs one that is not there builds its own.
Every timing synchronises the device first, so it measures work, not launches.
"""

from __future__ import annotations

import gc
import math
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import real_models

PROMPTS = [
    "Alien forest at dawn, bioluminescent plants, mist, cinematic wide shot",
    "Red dwarf star over a dark purple jungle, scientific illustration",
    "Tidally locked planet, twilight band, orbital view",
    "A quiet harbour at night, lanterns on the water",
]
MUSIC_PROMPTS = [
    "calm ambient pads, slow and dreamy",
    "epic orchestral soundtrack for a nature documentary",
    "lofi hip hop beat with warm vinyl crackle",
    "upbeat acoustic guitar and light percussion",
    "dark cinematic drones with distant percussion",
    "soft piano and strings, hopeful",
    "minimal electronic pulses, curious mood",
    "celtic harp and flute, misty morning",
    "deep space ambience with slow synth swells",
    "playful pizzicato strings and marimba",
]
# 87 words of Spanish narration (the H200 run's length: 30.3 s of speech at the pinned rate).
SPANISH = (
    "Las enanas rojas son las estrellas más comunes de nuestra galaxia, y también las más discretas. "
    "Emiten sobre todo luz infrarroja, de modo que un planeta que orbite cerca de una de ellas recibiría "
    "un cielo rojizo y tenue durante todo el año. Para aprovechar esa luz, las plantas de esos mundos "
    "quizá serían casi negras, capaces de absorber cada fotón disponible. Si algún día encontramos un "
    "bosque alienígena, es posible que no sea verde, sino oscuro como el carbón, y que brille apenas "
    "bajo un sol que nunca se pone del todo."
)


@dataclass(frozen=True)
class Run:
    """What every part needs: where it runs and at what sizes."""

    tiny: bool
    device: str
    configs: dict[str, Any]
    image_size: tuple[int, int]  # (width, height) of a scene
    thumb_size: tuple[int, int]  # a thumbnail base
    images: int  # timed scene images
    music_seconds: float  # one bed
    music_window: float
    beds: int  # beds in the largest batched call

    @property
    def cuda(self) -> bool:
        return self.device.startswith("cuda")


# --- measuring --------------------------------------------------------------------------------------


def sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    sync()
    start = time.perf_counter()
    out = fn()
    sync()
    return out, time.perf_counter() - start


def reset_peak() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def peak_memory() -> dict[str, float | None]:
    """Peak allocated and reserved GiB since the last reset (torch's caching allocator), None on a CPU."""
    import torch

    if not torch.cuda.is_available():
        return {"peak_allocated_gib": None, "peak_reserved_gib": None}
    return {
        "peak_allocated_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2),
        "peak_reserved_gib": round(torch.cuda.max_memory_reserved() / 2**30, 2),
    }


# What the parts keep on the device (freed between parts that need the room); other state is host data.
MODELS = (
    "zimage_pipe",
    "musicgen_small",
    "musicgen_small_engines",
    "musicgen_medium",
    "musicgen_medium_engines",
)


def free(state: dict[str, Any], *names: str) -> None:
    import torch

    for name in names:
        state.pop(name, None)
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


@contextmanager
def stage_timer(pipe: Any) -> Iterator[dict[str, list[float]]]:
    """Seconds per transformer forward, VAE decode and text-encoder call, read with synchronising hooks."""
    times: dict[str, list[float]] = {"transformer": [], "vae_decode": [], "text_encode": []}
    handles = []
    starts: dict[str, float] = {}

    def before(name: str) -> Callable[..., None]:
        def hook(*_: Any, **__: Any) -> None:
            sync()
            starts[name] = time.perf_counter()

        return hook

    def after(name: str) -> Callable[..., None]:
        def hook(*_: Any, **__: Any) -> None:
            sync()
            times[name].append(time.perf_counter() - starts[name])

        return hook

    for name, module in (("transformer", pipe.transformer), ("text_encode", pipe.text_encoder)):
        handles.append(module.register_forward_pre_hook(before(name)))
        handles.append(module.register_forward_hook(after(name)))
    decode = pipe.vae.decode

    def timed_decode(*args: Any, **kwargs: Any) -> Any:
        before("vae_decode")()
        out = decode(*args, **kwargs)
        after("vae_decode")()
        return out

    pipe.vae.decode = timed_decode
    try:
        yield times
    finally:
        for handle in handles:
            handle.remove()
        pipe.vae.decode = decode


def psnr(a: Any, b: Any) -> float | None:
    """PSNR in dB between two 8-bit images; None when one of them is not finite."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        return None
    mse = float(np.mean((x - y) ** 2))
    return math.inf if mse == 0 else round(10 * math.log10(255.0**2 / mse), 2)


def _mean(values: list[float]) -> float | None:
    return round(statistics.fmean(values), 4) if values else None


# --- Z-Image ----------------------------------------------------------------------------------------


def _zimage_pipe(run: Run, state: dict[str, Any]) -> tuple[Any, float]:
    import torch

    if "zimage_pipe" in state:
        return state["zimage_pipe"], 0.0
    dtype = torch.float32 if run.tiny else torch.bfloat16
    pipe, seconds = timed(lambda: real_models.build_zimage(run.configs, device=run.device, dtype=dtype))
    state["zimage_pipe"] = pipe
    return pipe, seconds


def _zimage_engine(run: Run, pipe: Any, **settings: Any) -> Any:
    from zray.engines.zimage import ZImageEngine, ZImageSettings

    dtype = "float32" if run.tiny else "bfloat16"
    options = {"model": "real-size-random", "device": run.device, "dtype": dtype, **settings}
    return ZImageEngine(ZImageSettings(**options), pipeline=pipe)


def _image(engine: Any, size: tuple[int, int], seed: int, prompt: str = PROMPTS[0]) -> Any:
    return engine.generate(prompt, width=size[0], height=size[1], seed=seed)


def zimage_resident(run: Run, state: dict[str, Any]) -> dict[str, Any]:
    """Resident Z-Image: per-image seconds at scene and thumbnail size, the split by stage, memory."""
    reset_peak()
    pipe, build_s = _zimage_pipe(run, state)
    engine = _zimage_engine(run, pipe)
    engine.load()
    from real_models import parameters

    loaded = peak_memory()
    _, warm_s = timed(lambda: _image(engine, run.image_size, seed=1))
    seconds, stages = [], []
    for i in range(run.images):
        with stage_timer(pipe) as times:
            image, s = timed(lambda i=i: _image(engine, run.image_size, seed=10 + i, prompt=PROMPTS[i % 4]))
        seconds.append(s)
        stages.append(times)
        if i == 0:
            state["zimage_reference"] = np.asarray(image)
    _, thumb_warm_s = timed(lambda: _image(engine, run.thumb_size, seed=2))
    _, thumb_s = timed(lambda: _image(engine, run.thumb_size, seed=3))
    first = stages[0]
    return {
        "params_transformer_b": round(parameters(pipe.transformer) / 1e9, 3),
        "params_text_encoder_b": round(parameters(pipe.text_encoder) / 1e9, 3),
        "params_vae_m": round(parameters(pipe.vae) / 1e6, 1),
        "build_s": round(build_s, 2),
        "warmup_image_s": round(warm_s, 3),
        "image_s": _mean(seconds),
        "image_s_each": [round(s, 3) for s in seconds],
        "transformer_forwards": len(first["transformer"]),
        "transformer_forward_s": _mean([t for times in stages for t in times["transformer"]]),
        "vae_decode_s": _mean([t for times in stages for t in times["vae_decode"]]),
        "text_encode_s": _mean([t for times in stages for t in times["text_encode"]]),
        "thumb_warmup_s": round(thumb_warm_s, 3),
        "thumb_image_s": round(thumb_s, 3),
        "after_load_allocated_gib": loaded["peak_allocated_gib"],
        **peak_memory(),
        "finite_output": bool(np.isfinite(np.asarray(state["zimage_reference"], dtype=np.float64)).all()),
    }


def zimage_attention(run: Run, state: dict[str, Any]) -> dict[str, Any]:
    """diffusers' attention backends on the resident transformer: seconds per image and PSNR against
    the default path's image for the same prompt and seed."""
    pipe, _ = _zimage_pipe(run, state)
    engine = _zimage_engine(run, pipe)
    engine.load()
    reference = state.get("zimage_reference")
    if reference is None:
        _image(engine, run.image_size, seed=1)
        reference = np.asarray(_image(engine, run.image_size, seed=10))
    out: dict[str, Any] = {}
    backends = ["_native_efficient", "_native_cudnn", "_native_flash"] if run.cuda else ["_native_math"]
    try:
        for backend in backends:
            try:
                pipe.transformer.set_attention_backend(backend)
                _image(engine, run.image_size, seed=1)  # warm-up: kernel choice and plans for these shapes
                image, seconds = timed(lambda: _image(engine, run.image_size, seed=10))
                out[f"{backend}_image_s"] = round(seconds, 3)
                out[f"{backend}_psnr_db"] = psnr(image, reference)
            except Exception as exc:  # a backend this torch or these shapes cannot use
                out[f"{backend}_error"] = _one_line(exc)
    finally:
        pipe.transformer.set_attention_backend("native")
    return out


def zimage_compile(run: Run, state: dict[str, Any]) -> dict[str, Any]:
    """Regional compilation (the transformer's repeated blocks): compile time, seconds per image, PSNR."""
    free(state, "zimage_pipe")
    pipe, build_s = _zimage_pipe(run, state)
    plain = _zimage_engine(run, pipe)
    plain.load()
    reference = state.get("zimage_reference")
    if reference is None:
        _image(plain, run.image_size, seed=1)
        reference = np.asarray(_image(plain, run.image_size, seed=10))
    compiled = _zimage_engine(run, pipe, compile=True)
    compiled.load()
    _, first_s = timed(lambda: _image(compiled, run.image_size, seed=1))
    seconds = []
    for i in range(2):
        image, s = timed(lambda i=i: _image(compiled, run.image_size, seed=10 if i == 0 else 11))
        seconds.append(s)
        if i == 0:
            quality = psnr(image, reference)
    free(state, "zimage_pipe")  # its blocks stay compiled: later parts build their own
    return {
        "build_s": round(build_s, 2),
        "first_image_with_compile_s": round(first_s, 2),
        "image_s": _mean(seconds),
        "psnr_db": quality,
    }


def _offloaded(run: Run, state: dict[str, Any], memory: str, *, vae_tiling: bool = False) -> dict[str, Any]:
    """Z-Image in an offload mode: weights move from the host (so the pipeline is moved there
    first), peak memory from a reset, one warm-up image, one timed."""
    pipe, build_s = _zimage_pipe(run, state)
    state.pop("zimage_pipe")  # offload hooks stay on it: nobody after this part reuses it
    reset_peak()
    _, to_host_s = timed(lambda: pipe.to("cpu"))
    free(state)
    reset_peak()
    engine = _zimage_engine(run, pipe, memory=memory, vae_tiling=vae_tiling)
    _, load_s = timed(engine.load)
    _, warm_s = timed(lambda: _image(engine, run.image_size, seed=1))
    image, seconds = timed(lambda: _image(engine, run.image_size, seed=10))
    reference = state.get("zimage_reference")
    out = {
        "placement": engine.placement,
        "build_s": round(build_s, 2),
        "to_host_s": round(to_host_s, 2),
        "load_s": round(load_s, 2),
        "warmup_image_s": round(warm_s, 2),
        "image_s": round(seconds, 3),
        **peak_memory(),
        "psnr_db_vs_resident": psnr(image, reference) if reference is not None and not vae_tiling else None,
    }
    if vae_tiling:
        return out
    if memory == "group_offload":
        # The same hooks with VAE tiling on top, for the peak that a decode in tiles saves.
        pipe.vae.enable_tiling()
        reset_peak()
        _, tiled_s = timed(lambda: _image(engine, run.image_size, seed=10))
        tiled = peak_memory()
        out.update(
            vae_tiling_image_s=round(tiled_s, 3),
            vae_tiling_peak_reserved_gib=tiled["peak_reserved_gib"],
            vae_tiling_peak_allocated_gib=tiled["peak_allocated_gib"],
        )
    engine = pipe = None  # the hooks' pinned host copies and device buffers go with them
    free(state)
    return out


def zimage_group_offload(run: Run, state: dict[str, Any]) -> dict[str, Any]:
    """The 12 GB mode: block-level group offloading with CUDA streams, text encoder included."""
    return _offloaded(run, state, "group_offload")


def zimage_sequential_offload(run: Run, state: dict[str, Any]) -> dict[str, Any]:
    return _offloaded(run, state, "sequential_offload")


def zimage_model_offload(run: Run, state: dict[str, Any]) -> dict[str, Any]:
    return _offloaded(run, state, "model_offload", vae_tiling=True)


# --- MusicGen ---------------------------------------------------------------------------------------


@contextmanager
def window_clock(engine: Any) -> Iterator[list[dict[str, Any]]]:
    """Seconds and new tokens of each window the engine samples meanwhile (wraps its `_windows`)."""
    windows: list[dict[str, Any]] = []
    inner = engine._windows

    def clocked(prompts: list[str], *, index: int, tails: Any, new_tokens: int) -> Any:
        out, seconds = timed(lambda: inner(prompts, index=index, tails=tails, new_tokens=new_tokens))
        windows.append(
            {"index": index, "new_tokens": new_tokens, "s": round(seconds, 3), "beds": len(prompts)}
        )
        return out

    engine._windows = clocked
    try:
        yield windows
    finally:
        del engine._windows  # the class's method again


def _music_engine(run: Run, state: dict[str, Any], method: str, size: str = "small") -> Any:
    """The engine for this model size and method, kept in `state` (with its captured graphs)."""
    from zray.engines.musicgen import MusicGenEngine, MusicGenSettings

    key = f"musicgen_{size}"
    if key not in state:
        state[key], state[f"{key}_build_s"] = timed(
            lambda: real_models.build_musicgen(run.configs, size, device=run.device)
        )
    engines = state.setdefault(f"{key}_engines", {})
    if method not in engines:
        model, processor = state[key]
        dtype = "float32" if run.tiny else "bfloat16"
        settings = MusicGenSettings(
            model=f"musicgen-{size}-random",
            window=run.music_window,
            device=run.device,
            dtype=dtype,
            method=method,
        )
        engines[method] = MusicGenEngine(settings, model=model, processor=processor)
        engines[method].load()
    return engines[method]


def musicgen_diagnosis(run: Run, state: dict[str, Any]) -> dict[str, Any]:
    """Why generate's first window is slow: per-step time from an empty prefix at key lengths never
    seen before, with torch's default attention backends and then with cuDNN's attention switched off
    (at lengths also new), and which backend torch picks for a decode step."""
    import torch

    engine = _music_engine(run, state, "generate")
    model = engine._model
    inputs = engine._inputs(MUSIC_PROMPTS[0], None)
    cold, off = (40, 60) if run.tiny else (200, 300)

    def generate(tokens: int) -> float:
        with torch.inference_mode():
            _, seconds = timed(
                lambda: model.generate(
                    **inputs, do_sample=True, guidance_scale=3.0, top_k=250, max_new_tokens=tokens
                )
            )
        return seconds

    out: dict[str, Any] = {"decode_backend": _decode_backend(model)}
    out["cold_ms_per_step"] = round(1000 * generate(cold) / cold, 2)
    out["repeat_ms_per_step"] = round(1000 * generate(cold) / cold, 2)
    if run.cuda:
        previous = torch.backends.cuda.cudnn_sdp_enabled()
        torch.backends.cuda.enable_cudnn_sdp(False)
        try:
            out["cudnn_off_decode_backend"] = _decode_backend(model)
            out["cudnn_off_ms_per_step"] = round(1000 * generate(off) / off, 2)
        finally:
            torch.backends.cuda.enable_cudnn_sdp(previous)
    return out


def _decode_backend(model: Any) -> str:
    """The SDPA backend torch picks for one decode step's self-attention (q length 1, 500 keys)."""
    import torch

    config = model.decoder.config
    heads = int(config.num_attention_heads)
    dim = int(config.hidden_size) // heads
    parameter = next(model.decoder.parameters())
    q = torch.zeros((2, heads, 1, dim), dtype=parameter.dtype, device=parameter.device)
    k = torch.zeros((2, heads, 500, dim), dtype=parameter.dtype, device=parameter.device)
    try:
        choice = torch._fused_sdp_choice(q, k, k)
        return torch.nn.attention.SDPBackend(choice).name
    except Exception as exc:
        return f"unknown ({_one_line(exc)})"


def _bed(run: Run, state: dict[str, Any], method: str, size: str = "small") -> dict[str, Any]:
    engine = _music_engine(run, state, method, size)
    reset_peak()
    with window_clock(engine) as windows:
        bed, seconds = timed(lambda: engine.generate(MUSIC_PROMPTS[0], seconds=run.music_seconds))
    state[f"bed_{method}_{size}"] = bed
    steps = sum(w["new_tokens"] for w in windows)
    out = {
        "method": engine.method,
        "bed_s": round(seconds, 3),
        "realtime_factor": round(run.music_seconds / seconds, 3),
        "gpu_s_per_bed_s": round(seconds / run.music_seconds, 4),
        "steps": steps,
        "ms_per_step": round(1000 * seconds / steps, 2),
        "windows": windows,
        "window_ms_per_step": [round(1000 * w["s"] / w["new_tokens"], 2) for w in windows],
        **peak_memory(),
    }
    if method == "graphs":
        decoders = list(engine._decoders.values())
        out["cuda_graph_captured"] = bool(decoders and decoders[0].graph is not None)
    build = state.get(f"musicgen_{size}_build_s")
    if build is not None:
        out["build_s"] = round(build, 2)
    return out


def _warm_up(run: Run, engine: Any, prompts: list[str]) -> float:
    """A short bed of the same prompts: captures the graph for this batch and text length."""
    _, seconds = timed(lambda: engine.generate_many(prompts, seconds=min(2.0, run.music_seconds)))
    return round(seconds, 3)


def musicgen_graphs(run: Run, state: dict[str, Any]) -> dict[str, Any]:
    """The new path: one bed through the static cache and CUDA graphs (after a capture warm-up)."""
    engine = _music_engine(run, state, "graphs")
    return {"warmup_short_bed_s": _warm_up(run, engine, MUSIC_PROMPTS[:1]), **_bed(run, state, "graphs")}


def musicgen_generate(run: Run, state: dict[str, Any]) -> dict[str, Any]:
    """The old path on the same bed: transformers' generate, window by window."""
    out = _bed(run, state, "generate")
    new = state.get("bed_graphs_small")
    old = state.get("bed_generate_small")
    if new is not None and old is not None and new.shape == old.shape:
        out["same_bed_as_graphs"] = bool(np.array_equal(new, old))
        out["max_abs_diff_vs_graphs"] = round(float(np.max(np.abs(new - old))), 6)
    return out


def musicgen_batched(run: Run, state: dict[str, Any]) -> dict[str, Any]:
    """Several beds in one sampling loop: seconds per call and per bed; bed 0 against its solo bed."""
    engine = _music_engine(run, state, "graphs")
    out: dict[str, Any] = {}
    for beds in sorted({min(4, run.beds), run.beds}):
        prompts = MUSIC_PROMPTS[:beds]
        out[f"beds_{beds}_warmup_s"] = _warm_up(run, engine, prompts)
        reset_peak()
        many, seconds = timed(
            lambda prompts=prompts: engine.generate_many(prompts, seconds=run.music_seconds)
        )
        out[f"beds_{beds}_call_s"] = round(seconds, 3)
        out[f"beds_{beds}_s_per_bed"] = round(seconds / beds, 3)
        out[f"beds_{beds}_gpu_s_per_bed_s"] = round(seconds / beds / run.music_seconds, 4)
        out[f"beds_{beds}_peak_reserved_gib"] = peak_memory()["peak_reserved_gib"]
        solo = state.get("bed_graphs_small")
        if solo is not None:  # the batch's first bed has the solo bed's prompt and seed
            out[f"beds_{beds}_bed0_equals_solo"] = bool(np.array_equal(many[0], solo))
            out[f"beds_{beds}_bed0_max_abs_diff"] = round(float(np.max(np.abs(many[0] - solo))), 6)
    return out


def musicgen_medium(run: Run, state: dict[str, Any]) -> dict[str, Any]:
    free(state, "musicgen_small", "musicgen_small_engines")
    engine = _music_engine(run, state, "graphs", "medium")
    warm = _warm_up(run, engine, MUSIC_PROMPTS[:1])
    out = {"warmup_short_bed_s": warm, **_bed(run, state, "graphs", "medium")}
    free(state, "musicgen_medium", "musicgen_medium_engines")
    return out


# --- Kokoro -----------------------------------------------------------------------------------------


def kokoro(run: Run, state: dict[str, Any]) -> dict[str, Any]:
    """Spanish narration: seconds of speech per second of work, after a warm-up sentence."""
    from zray.engines.kokoro import KokoroSettings, KokoroTTSEngine

    reset_peak()
    (model, voices), build_s = timed(lambda: real_models.build_kokoro(run.configs))
    settings = KokoroSettings(model="hexgrad/Kokoro-82M", voices={"es": "ef_dora"}, device=run.device)
    engine = KokoroTTSEngine(settings, model=model, voices=voices)
    _, load_s = timed(engine.load)
    timed(lambda: engine.synthesize("Hola, esto es una prueba.", lang="es"))
    text = SPANISH.split(". ")[0] + "." if run.tiny else SPANISH
    speech, seconds = timed(lambda: engine.synthesize(text, lang="es"))
    return {
        "params_m": round(real_models.parameters(model) / 1e6, 1),
        "build_s": round(build_s, 2),
        "load_s": round(load_s, 2),
        "words": len(text.split()),
        "speech_s": round(speech.seconds, 2),
        "synth_s": round(seconds, 3),
        "realtime_factor": round(speech.seconds / seconds, 1),
        "gpu_s_per_speech_s": round(seconds / speech.seconds, 5),
        **peak_memory(),
    }


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]
