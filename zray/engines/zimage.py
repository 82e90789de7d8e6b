"""Scene images with Z-Image-Turbo through diffusers' `ZImagePipeline`: the production image engine.

Turbo is distilled for 8 denoising steps without classifier-free guidance. Since diffusers 0.39 the
pipeline's `num_inference_steps` is the number of transformer forwards (sigmas 1 .. 1/n, then 0);
before, it ended on a redundant forward at sigma 0, so 9 meant 8 real steps. `steps` here always counts
transformer forwards, and diffusers >= 0.40 is required (0.40 also brought the `dtype` argument).

Several prompts in one pipeline call are not used: a batched call agrees with one-by-one calls only to
about 1e-6 (masked attention over padded sequences rounds differently), which flips a few 8-bit pixel
values, so an image's bytes would depend on which scenes shared its batch. Content-addressed images must
depend on their own prompt and seed alone, so `generate_many` runs one prompt at a time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, ClassVar

from PIL import Image

from zray.engines import pretrained
from zray.engines.base import BaseEngine, EngineError, EngineSettings, require

ENGINE_VERSION = "1"
DEFAULT_MODEL = "Tongyi-MAI/Z-Image-Turbo"
TURBO_STEPS = 8
TURBO_GUIDANCE = 0.0
SIZE_MULTIPLE = 16  # VAE downsampling (8) times the transformer's 2x2 patches
# Fastest first. group_offload is the mode that fits a 12 GB card with the text encoder (see _place).
MEMORY_MODES = ("resident", "group_offload", "model_offload", "sequential_offload")
DTYPES = ("auto", "bfloat16", "float16", "float32")
MIN_DIFFUSERS = (0, 40)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ZImageSettings(EngineSettings):
    """How to load and run Z-Image.

    `dtype` "auto" is resolved here, from these settings alone: float32 when `device` is "cpu",
    else bfloat16 (the model's own precision). It is never read from the machine that computes it,
    so a CPU head that plans and the GPU workers that run agree on every image's cache key; a
    CPU-only machine that should run in float32 says `device = "cpu"`.
    """

    model: str = DEFAULT_MODEL  # a Hugging Face id or a local directory
    memory: str = "resident"  # one of MEMORY_MODES
    vae_tiling: bool = False
    steps: int = TURBO_STEPS  # transformer forwards per image
    device: str = "auto"  # "auto" (CUDA where the worker has it, else CPU), "cpu", "cuda", "cuda:N"
    dtype: str = "auto"  # one of DTYPES
    # Speed levers that leave the images within bfloat16 noise (the real-size benchmark checks PSNR
    # against the plain path), so they are not in the identity: diffusers' attention backend for the
    # transformer ("default": torch's own choice) and regional compilation of its repeated blocks.
    attention: str = "default"
    compile: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model.strip():
            raise EngineError(
                f"image model must be a Hugging Face id or a local directory, not {self.model!r}"
            )
        if not isinstance(self.attention, str) or not self.attention.strip():
            raise EngineError(
                f"image attention must be default or a diffusers attention backend, not {self.attention!r}"
            )
        if not isinstance(self.compile, bool):
            raise EngineError(f"image compile must be true or false, not {self.compile!r}")
        if self.memory not in MEMORY_MODES:
            raise EngineError(
                f"image memory mode must be one of {', '.join(MEMORY_MODES)}, not {self.memory!r}"
            )
        steps = self.steps
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise EngineError(f"image steps must be a positive integer, not {steps!r}")
        if not isinstance(self.device, str) or not self.device.strip():
            raise EngineError(f"image device must be auto, cpu, cuda or cuda:N, not {self.device!r}")
        if self.dtype not in DTYPES:
            raise EngineError(f"image dtype must be one of {', '.join(DTYPES)}, not {self.dtype!r}")

    @property
    def resolved_dtype(self) -> str:
        if self.dtype != "auto":
            return self.dtype
        return "float32" if self.device == "cpu" else "bfloat16"


class ZImageEngine(BaseEngine):
    """Z-Image-Turbo text-to-image: loaded once, kept resident, one image per prompt and seed.

    `pipeline` hands it a ready `ZImagePipeline` (built in memory by a test or a benchmark) instead
    of loading `settings.model`; it is cast to the settings' dtype and placed as `memory` says,
    exactly as a loaded one, so the identity stays true.
    """

    name: ClassVar[str] = "zimage"
    role: ClassVar[str] = "image"
    uses_gpu: ClassVar[bool] = True
    requires: ClassVar[tuple[str, ...]] = ("torch", "diffusers", "transformers")
    settings_type = ZImageSettings

    def __init__(self, settings: ZImageSettings | None = None, *, pipeline: Any = None) -> None:
        super().__init__(settings)
        self.model = self.settings.model
        self.steps = self.settings.steps
        # What load() actually did: offload modes fall back to resident without CUDA.
        self.placement: str | None = None
        self._pipe: Any = pipeline
        self._device: str | None = None

    @property
    def pipeline(self) -> Any:
        """The loaded `ZImagePipeline` (loading it first if needed)."""
        self.load()
        return self._pipe

    def load(self) -> None:
        if self.placement is not None:
            return
        require(self)
        import diffusers
        import torch

        _require_diffusers(diffusers.__version__)
        device = pretrained.resolve_device(torch, self.settings.device, role="image")
        dtype = getattr(torch, self.settings.resolved_dtype)
        pipe = self._pipe if self._pipe is not None else _from_pretrained(self.model, dtype=dtype)
        if pipe.transformer.dtype != dtype:
            pipe.to(dtype=dtype)
        pipe.set_progress_bar_config(disable=True)
        self.placement = _place(
            pipe, memory=self.settings.memory, device=device, vae_tiling=self.settings.vae_tiling
        )
        if self.settings.attention != "default":
            pipe.transformer.set_attention_backend(self.settings.attention)
        if self.settings.compile:
            # Regional compilation: each repeated block compiled once, in seconds rather than minutes.
            # Offload hooks sit on the blocks, so only a resident model compiles as one graph.
            pipe.transformer.compile_repeated_blocks(fullgraph=self.placement == "resident")
        self._pipe = pipe
        self._device = device

    def identity(self) -> dict[str, Any]:
        # The memory mode is left out: offloading moves weights, not the arithmetic. VAE tiling decodes
        # large images in blended tiles, which changes pixels. The device is left out too: the dtype,
        # resolved from the settings, is what changes the arithmetic.
        local = pretrained.local_dir(self.model)
        return {
            "engine": "zimage",
            "version": ENGINE_VERSION,
            # A local directory is named by its folder name and contents, so moving it keeps its keys.
            "model": local.name if local else self.model,
            "model_digest": pretrained.dir_digest(local) if local else None,
            "steps": self.steps,
            "guidance": TURBO_GUIDANCE,
            "dtype": self.settings.resolved_dtype,
            "vae_tiling": self.settings.vae_tiling,
        }

    def generate(self, prompt: str, *, width: int, height: int, seed: int, label: str = "") -> Image.Image:
        _check_request(prompt=prompt, width=width, height=height, seed=seed)
        self.load()
        return self._generate(prompt, width=width, height=height, seed=seed)

    def generate_many(self, requests: list[dict[str, Any]]) -> list[Image.Image]:
        """One image per request dict (prompt, width, height, seed, optional label), in order.

        Every request is checked before any image is made. One pipeline call per prompt: see the module
        docstring for why batching would make images depend on their batch.
        """
        for request in requests:
            _check_request(
                prompt=request.get("prompt"),
                width=request.get("width"),
                height=request.get("height"),
                seed=request.get("seed"),
            )
        if requests:
            self.load()
        return [
            self._generate(r["prompt"], width=r["width"], height=r["height"], seed=r["seed"])
            for r in requests
        ]

    def _generate(self, prompt: str, *, width: int, height: int, seed: int) -> Image.Image:
        import torch

        generator = torch.Generator(device=self._device).manual_seed(seed)
        try:
            output = self._pipe(
                prompt=prompt,
                width=width,
                height=height,
                num_inference_steps=self.steps,
                guidance_scale=TURBO_GUIDANCE,
                generator=generator,
                output_type="pil",
            )
        except torch.OutOfMemoryError:
            raise EngineError(
                f"out of GPU memory making a {width}x{height} image with {self.model}; set "
                "models.image_memory to group_offload (12 GB cards) or sequential_offload, or "
                "models.vae_tiling to true"
            ) from None
        image: Image.Image = output.images[0]
        return image if image.mode == "RGB" else image.convert("RGB")


def _check_request(*, prompt: Any, width: Any, height: Any, seed: Any) -> None:
    if not isinstance(prompt, str):
        raise EngineError(f"image prompt must be text, not {prompt!r}")
    sizes_ok = all(
        isinstance(v, int) and not isinstance(v, bool) and v > 0 and v % SIZE_MULTIPLE == 0
        for v in (width, height)
    )
    if not sizes_ok:
        raise EngineError(
            f"image width and height must be positive multiples of {SIZE_MULTIPLE}, "
            f"got width={width!r} height={height!r}"
        )
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise EngineError(f"image seed must be an integer, not {seed!r}")


def _require_diffusers(installed: str) -> None:
    parts = []
    for piece in installed.split(".")[:2]:
        digits = "".join(c for c in piece if c.isdigit())
        parts.append(int(digits) if digits else 0)
    if tuple(parts) < MIN_DIFFUSERS:
        wanted = ".".join(map(str, MIN_DIFFUSERS))
        raise EngineError(
            f"the zimage engine needs diffusers>={wanted} (installed: {installed}); older releases count "
            f"Z-Image steps differently. Upgrade with: pip install -U 'diffusers>={wanted}'"
        )


def _place(pipe: Any, *, memory: str, device: str, vae_tiling: bool) -> str:
    """Put the pipeline where `memory` says; returns the mode applied.

    Offloading keeps weights in CPU memory and moves them to the GPU as needed, trading speed for
    VRAM: whole models per call (model_offload: the 12 GB transformer still fits only a 16 GB card),
    one block at a time with the next block's copy overlapping the current block's work
    (group_offload: about 1 GB of weights on the card at once, text encoder included), or layer by
    layer (sequential_offload: the least memory, the most copies). How fast an offload mode runs
    depends on the card's PCIe link and on pinned host memory: a figure from one machine does not
    carry over to another. Without CUDA there is nothing to offload to, so the model stays resident
    rather than failing a run that would work.
    """
    if memory != "resident" and not pretrained.is_cuda(device):
        log.warning(
            "image memory mode %s needs a CUDA device; on %s the model stays resident", memory, device
        )
        memory = "resident"
    if memory == "resident":
        pipe.to(device)
    elif memory == "model_offload":
        pipe.enable_model_cpu_offload(device=device)
    elif memory == "group_offload":
        group_offload(pipe, device=device, use_stream=True)
    else:
        pipe.enable_sequential_cpu_offload(device=device)
    if vae_tiling:
        pipe.vae.enable_tiling()
    return memory


def group_offload(pipe: Any, *, device: str, use_stream: bool) -> None:
    """Block-level group offloading of the transformer and the text encoder (diffusers'
    `enable_group_offload`); the VAE (84 M parameters) stays on `device`.

    Each transformer block (about 0.4 GB in bfloat16) and each text-encoder layer is copied in when
    it runs; with `use_stream` (CUDA) the next one's copy runs on a side stream during the current
    one's work, from pinned host memory, so the weights of the 6 B transformer and the 4 B text
    encoder (20 GB) never sit on the card together."""
    import torch

    pipe.enable_group_offload(
        onload_device=torch.device(device),
        offload_device=torch.device("cpu"),
        offload_type="block_level",
        num_blocks_per_group=1,
        use_stream=use_stream,
        exclude_modules=["vae"],
    )
    pipe.vae.to(device)


def _from_pretrained(model: str, *, dtype: Any) -> Any:
    from diffusers import ZImagePipeline

    return pretrained.load_pipeline(ZImagePipeline, model, dtype=dtype, role="image", setting="models.image")
