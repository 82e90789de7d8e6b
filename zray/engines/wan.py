"""Scene clips with Wan2.2 through diffusers' `WanImageToVideoPipeline`: the production video engine.

The scene's picture is the clip's first frame. Wan2.2-TI2V-5B (Apache-2.0) encodes it into the first
latent frame and keeps it there while the rest is denoised (`expand_timesteps`), at 1280x704, 24 fps,
4n + 1 frames, 50 UniPC steps with guidance 5 by default. Any diffusers Wan image-to-video checkpoint
works by id or local folder (Wan2.1's 480p models for smaller cards); `max_pixels` sets the size it
is asked for (`zray.media.generated.clip_size`).

Clips are made one pipeline call each, also in `generate_many`: in diffusers 0.42.1 the pipeline
encodes the whole batch's condition once per generator (B pictures give B x B conditions), so a
batch of different pictures cannot go in one call; and as for Z-Image, a clip's pixels must not
depend on which clips shared its call. `generate_many` still saves what a batch can: the model is
loaded once and the calls run back to back on a warm GPU.

The text encoder is UMT5-XXL (5.7 B parameters): with group offload it never sits on the card
whole. The VAE decodes in float32, as Wan's own examples do: in bfloat16 its 121-frame decode bands.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from PIL import Image

from zray.engines import pretrained
from zray.engines.base import BaseEngine, EngineError, EngineSettings, require
from zray.media.generated import CLIP_FPS

ENGINE_VERSION = "1"
DEFAULT_MODEL = "Wan-AI/Wan2.2-TI2V-5B-Diffusers"
DEFAULT_STEPS = 50
DEFAULT_GUIDANCE = 5.0
NATIVE_PIXELS = 1280 * 704  # Wan2.2-TI2V-5B's 720p
SIZE_MULTIPLE = 32  # the VAE's 16x spatial compression times the transformer's 2x2 patches
MEMORY_MODES = ("resident", "group_offload", "model_offload")
DTYPES = ("auto", "bfloat16", "float16", "float32")
# Wan's own negative prompt (its examples, in English): what a clip should not look like.
NEGATIVE_PROMPT = (
    "Bright tones, overexposed, static, blurred details, subtitles, style, works, paintings, images, "
    "static, overall gray, worst quality, low quality, JPEG compression residue, ugly, incomplete, "
    "extra fingers, poorly drawn hands, poorly drawn faces, deformed, disfigured, misshapen limbs, "
    "fused fingers, still picture, messy background, three legs, many people in the background, "
    "walking backwards"
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WanSettings(EngineSettings):
    """How to load and run Wan. `dtype` "auto" is resolved from these settings alone, as for Z-Image
    (float32 when `device` is "cpu", else bfloat16), so planner and workers agree on keys."""

    model: str = DEFAULT_MODEL  # a Hugging Face id or a local directory
    steps: int = DEFAULT_STEPS
    guidance: float = DEFAULT_GUIDANCE
    max_pixels: int = NATIVE_PIXELS  # the clip's size: the frame's shape scaled to about this many pixels
    memory: str = "resident"  # one of MEMORY_MODES
    device: str = "auto"
    dtype: str = "auto"
    # diffusers' FirstBlockCache: skip the other blocks of a step whose first block's output changed
    # less than this (0: off). It changes pixels, so it is in the identity.
    cache_threshold: float = 0.0
    compile: bool = False  # regional compilation of the transformer's blocks (speed only)

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model.strip():
            raise EngineError(
                f"video model must be a Hugging Face id or a local directory, not {self.model!r}"
            )
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise EngineError(f"video steps must be a positive integer, not {self.steps!r}")
        if isinstance(self.guidance, bool) or not isinstance(self.guidance, int | float) or self.guidance < 0:
            raise EngineError(f"video guidance must be a number >= 0, not {self.guidance!r}")
        pixels = self.max_pixels
        if isinstance(pixels, bool) or not isinstance(pixels, int) or pixels < SIZE_MULTIPLE**2:
            raise EngineError(f"video max_pixels must be an integer >= {SIZE_MULTIPLE**2}, not {pixels!r}")
        if self.memory not in MEMORY_MODES:
            raise EngineError(
                f"video memory mode must be one of {', '.join(MEMORY_MODES)}, not {self.memory!r}"
            )
        if not isinstance(self.device, str) or not self.device.strip():
            raise EngineError(f"video device must be auto, cpu, cuda or cuda:N, not {self.device!r}")
        if self.dtype not in DTYPES:
            raise EngineError(f"video dtype must be one of {', '.join(DTYPES)}, not {self.dtype!r}")
        threshold = self.cache_threshold
        if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0 <= threshold < 1:
            raise EngineError(f"video cache_threshold must be a number in [0, 1), not {threshold!r}")
        if not isinstance(self.compile, bool):
            raise EngineError(f"video compile must be true or false, not {self.compile!r}")

    @property
    def resolved_dtype(self) -> str:
        if self.dtype != "auto":
            return self.dtype
        return "float32" if self.device == "cpu" else "bfloat16"


class WanVideoEngine(BaseEngine):
    """Wan image-to-video: loaded once, kept resident, one clip per picture, prompt and seed.

    `pipeline` hands it a ready `WanImageToVideoPipeline` (built in memory by a test or a benchmark)
    instead of loading `settings.model`; it is cast and placed exactly as a loaded one.
    """

    name: ClassVar[str] = "wan"
    role: ClassVar[str] = "video"
    uses_gpu: ClassVar[bool] = True
    requires: ClassVar[tuple[str, ...]] = ("torch", "diffusers", "transformers", "ftfy")
    settings_type = WanSettings

    def __init__(self, settings: WanSettings | None = None, *, pipeline: Any = None) -> None:
        super().__init__(settings)
        self.model = self.settings.model
        self.placement: str | None = None
        self._pipe: Any = pipeline
        self._device: str | None = None

    @property
    def pipeline(self) -> Any:
        self.load()
        return self._pipe

    def load(self) -> None:
        if self.placement is not None:
            return
        require(self)
        import torch

        device = pretrained.resolve_device(torch, self.settings.device, role="video")
        dtype = getattr(torch, self.settings.resolved_dtype)
        pipe = self._pipe if self._pipe is not None else _from_pretrained(self.model, dtype=dtype)
        if pipe.transformer.dtype != dtype:
            pipe.transformer.to(dtype=dtype)
            pipe.text_encoder.to(dtype=dtype)
        if pipe.vae.dtype != torch.float32:
            pipe.vae.to(dtype=torch.float32)
        pipe.set_progress_bar_config(disable=True)
        self.placement = _place(pipe, memory=self.settings.memory, device=device)
        if self.settings.cache_threshold > 0:
            from diffusers.hooks import FirstBlockCacheConfig

            pipe.transformer.enable_cache(FirstBlockCacheConfig(threshold=self.settings.cache_threshold))
        if self.settings.compile:
            pipe.transformer.compile_repeated_blocks(fullgraph=self.placement == "resident")
        self._pipe = pipe
        self._device = device

    def identity(self) -> dict[str, Any]:
        # As Z-Image's: the memory mode and device move weights, not the arithmetic; the dtype does.
        local = pretrained.local_dir(self.model)
        return {
            "engine": "wan",
            "version": ENGINE_VERSION,
            "model": local.name if local else self.model,
            "model_digest": pretrained.dir_digest(local) if local else None,
            "steps": self.settings.steps,
            "guidance": float(self.settings.guidance),
            "dtype": self.settings.resolved_dtype,
            "cache_threshold": float(self.settings.cache_threshold),
            "max_pixels": self.settings.max_pixels,
            "size_multiple": SIZE_MULTIPLE,
            "fps": CLIP_FPS,
        }

    def generate(
        self,
        image: Image.Image,
        prompt: str,
        *,
        width: int,
        height: int,
        frames: int,
        seed: int,
        layers: tuple[str, int, str] | None = None,
    ) -> np.ndarray:
        """The clip as uint8 RGB frames (frames, height, width, 3); frame 0 is the picture, cover-fitted
        to width x height. `layers` is for the draft engine and is ignored here."""
        _check_request(image=image, prompt=prompt, width=width, height=height, frames=frames, seed=seed)
        self.load()
        return self._generate(image, prompt, width=width, height=height, frames=frames, seed=seed)

    def generate_many(self, requests: list[dict[str, Any]]) -> list[np.ndarray]:
        """One clip per request dict (image, prompt, width, height, frames, seed), in order; every
        request is checked before any clip is made. One pipeline call each (see the module docstring)."""
        for r in requests:
            _check_request(**{k: r.get(k) for k in ("image", "prompt", "width", "height", "frames", "seed")})
        if requests:
            self.load()
        return [
            self._generate(
                r["image"],
                r["prompt"],
                width=r["width"],
                height=r["height"],
                frames=r["frames"],
                seed=r["seed"],
            )
            for r in requests
        ]

    def _generate(
        self, image: Image.Image, prompt: str, *, width: int, height: int, frames: int, seed: int
    ) -> np.ndarray:
        import torch

        generator = torch.Generator(device=self._device).manual_seed(seed)
        try:
            output = self._pipe(
                image=cover(image, width=width, height=height),
                prompt=prompt,
                negative_prompt=NEGATIVE_PROMPT,
                height=height,
                width=width,
                num_frames=frames,
                num_inference_steps=self.settings.steps,
                guidance_scale=float(self.settings.guidance),
                generator=generator,
                output_type="pt",
            )
        except torch.OutOfMemoryError:
            raise EngineError(
                f"out of GPU memory making a {width}x{height} clip of {frames} frames with {self.model}; "
                "set models.video_memory to group_offload, or models.video_seconds lower"
            ) from None
        video = output.frames[0]  # (frames, 3, height, width) in [0, 1]
        pixels = (video.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1)
        return np.ascontiguousarray(pixels.cpu().numpy())


def cover(image: Image.Image, *, width: int, height: int) -> Image.Image:
    """The picture scaled to cover width x height and cropped to it, centred (Lanczos)."""
    rgb = image.convert("RGB")
    if rgb.size == (width, height):
        return rgb
    scale = max(width / rgb.width, height / rgb.height)
    w, h = rgb.width * scale, rgb.height * scale
    box = (
        (w - width) / 2 / scale,
        (h - height) / 2 / scale,
        (w + width) / 2 / scale,
        (h + height) / 2 / scale,
    )
    return rgb.resize((width, height), Image.Resampling.LANCZOS, box=box)


def check_frames(frames: Any) -> None:
    if isinstance(frames, bool) or not isinstance(frames, int) or frames < 5 or frames % 4 != 1:
        raise EngineError(f"clip frames must be 4n + 1 and at least 5 (as Wan needs), not {frames!r}")


def _check_request(*, image: Any, prompt: Any, width: Any, height: Any, frames: Any, seed: Any) -> None:
    if not isinstance(image, Image.Image):
        raise EngineError(f"a clip starts from a picture (a PIL image), not {type(image).__name__}")
    if not isinstance(prompt, str):
        raise EngineError(f"video prompt must be text, not {prompt!r}")
    if not all(
        isinstance(v, int) and not isinstance(v, bool) and v > 0 and v % SIZE_MULTIPLE == 0
        for v in (width, height)
    ):
        raise EngineError(
            f"clip width and height must be positive multiples of {SIZE_MULTIPLE}, got width={width!r} height={height!r}"
        )
    check_frames(frames)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise EngineError(f"video seed must be an integer, not {seed!r}")


def _place(pipe: Any, *, memory: str, device: str) -> str:
    """Put the pipeline where `memory` says (see `zray.engines.zimage._place`); returns the mode applied.

    Group offload streams the transformer's 30 blocks and the text encoder's 24 layers through the
    card one at a time, overlapping each copy with the previous block's work; the VAE stays on the
    card (its 121-frame decode is the largest single allocation)."""
    if memory != "resident" and not pretrained.is_cuda(device):
        log.warning(
            "video memory mode %s needs a CUDA device; on %s the model stays resident", memory, device
        )
        memory = "resident"
    if memory == "resident":
        pipe.to(device)
    elif memory == "model_offload":
        pipe.enable_model_cpu_offload(device=device)
    else:
        import torch

        pipe.enable_group_offload(
            onload_device=torch.device(device),
            offload_device=torch.device("cpu"),
            offload_type="block_level",
            num_blocks_per_group=1,
            use_stream=True,
            exclude_modules=["vae"],
        )
        pipe.vae.to(device)
    return memory


def _from_pretrained(model: str, *, dtype: Any) -> Any:
    from diffusers import WanImageToVideoPipeline

    return pretrained.load_pipeline(
        WanImageToVideoPipeline, model, dtype=dtype, role="video", setting="models.video"
    )
