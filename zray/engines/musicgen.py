"""MusicGen through transformers: the production profile's music engine.

MusicGen writes about 30 s at a time, so a longer bed is built by windowed continuation: every window
after the first is prompted with the text and with the tail of the audio made so far (MusicGen's audio
prompt: the processor's `audio=` input becomes `input_values`, which the model encodes with EnCodec
into the first decoder tokens). The model returns the codec's reconstruction of that tail followed by
the new music; the reconstruction is not bit-identical to the tail, so the join is crossfaded from the
original tail into the reconstruction, where the new music continues without a step.

The bed then loops: a little more than `seconds` is made and its extra end is crossfaded (equal power)
into its head, so that the last sample leads into the first exactly as the original audio ran on.
Sampling is seeded from the prompt and the window number, so the same prompt gives the same bed on
the same device. The official weights are CC-BY-NC-4.0 (see LICENSE_NOTE).

A ready model and processor can be handed in (`model=`, `processor=`: a benchmark builds them on the
GPU, a test in memory); they are cast and placed as the settings say, exactly as loaded ones.

Two ways to sample (`method`): "generate" calls transformers' `generate` per window; "graphs" runs
the same sampling on a static cache (`musicgen_static`), one CUDA graph replay per step on a GPU, and
can make several beds in one loop (`generate_many`). "auto" takes "graphs" on CUDA and "generate" on
the CPU. Both draw the same tokens for the same seed (the CPU tests hold them to it), so the method
is not part of the identity: on a GPU their roundings differ as two attention kernels' do, not more.
"""

from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from zray.engines.base import BaseEngine, EngineError, EngineSettings, require, seed_from
from zray.media.constants import SAMPLE_RATE

log = logging.getLogger(__name__)

ENGINE_VERSION = "1"
DEFAULT_MODEL = "facebook/musicgen-small"
LICENSE_NOTE = (
    "MusicGen weights (facebook/musicgen-*) are licensed CC-BY-NC-4.0: music made with them may not be "
    "used commercially, e.g. in monetised videos; use the library music engine for those"
)
MAX_SECONDS = 3600.0
MIN_WINDOW, MAX_WINDOW = 1.0, 30.0
# Each continuation hears the last third of a window (10 s of a 30 s window) and writes the rest.
CONTEXT_FRACTION = 1 / 3
# The loop's crossfade: long enough to hide the change of phrase, short next to the bed.
LOOP_CROSSFADE_S = 2.0
# Where each continuation joins: the tail and the codec's reconstruction of it are the same music.
JOIN_CROSSFADE_S = 0.1
# Sampling settings of the official checkpoints' generation_config, passed explicitly so that a local
# model without one behaves the same.
GUIDANCE_SCALE = 3.0
TOP_K = 250
PEAK_CEILING = 10 ** (-1 / 20)  # -1 dBFS
DTYPES = ("auto", "bfloat16", "float16", "float32")
METHODS = ("auto", "generate", "graphs")
# Beds made before the dtype was recorded ran in bfloat16 (on a GPU, the only place production music
# was made): an identity without "dtype" means bfloat16, so upgrading keeps their keys.
UNRECORDED_DTYPE = "bfloat16"


@dataclass(frozen=True)
class MusicGenSettings(EngineSettings):
    """How to load and run MusicGen.

    `dtype` "auto" is resolved here, from these settings alone: float32 when `device` is "cpu",
    else bfloat16 for the language model (EnCodec always runs in float32). It is never read from the
    machine that computes it, so the planning host and the GPU workers agree on the bed's key.
    """

    model: str = DEFAULT_MODEL  # a Hugging Face id or a local folder
    window: float = 30.0  # seconds MusicGen writes per call
    device: str = "auto"  # "auto" (CUDA where the worker has it, else CPU), "cpu", "cuda", "cuda:N"
    dtype: str = "auto"  # one of DTYPES
    method: str = "auto"  # one of METHODS (see the module docstring)

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model.strip():
            raise EngineError(
                f"musicgen model must be a Hugging Face model id or a folder, got {self.model!r}"
            )
        if self.method not in METHODS:
            raise EngineError(f"musicgen method must be one of {', '.join(METHODS)}, not {self.method!r}")
        window = self.window
        if (
            isinstance(window, bool)
            or not isinstance(window, int | float)
            or not MIN_WINDOW <= window <= MAX_WINDOW
        ):
            raise EngineError(
                f"musicgen window must be {MIN_WINDOW:g}..{MAX_WINDOW:g} seconds "
                f"(MusicGen writes about 30 s at a time), got {window!r}"
            )
        if not isinstance(self.device, str) or not self.device.strip():
            raise EngineError(f"musicgen device must be auto, cpu, cuda or cuda:N, not {self.device!r}")
        if self.dtype not in DTYPES:
            raise EngineError(f"musicgen dtype must be one of {', '.join(DTYPES)}, not {self.dtype!r}")

    @property
    def resolved_dtype(self) -> str:
        if self.dtype != "auto":
            return self.dtype
        return "float32" if self.device == "cpu" else "bfloat16"


class MusicGenEngine(BaseEngine):
    """A looping music bed for a text prompt: float32 (channels, n) at 48 kHz, channels as the model
    makes them ((1, n) for the mono checkpoints, (2, n) for the stereo ones)."""

    name: ClassVar[str] = "musicgen"
    role: ClassVar[str] = "music"
    uses_gpu: ClassVar[bool] = True
    accepts_file: ClassVar[bool] = False
    requires: ClassVar[tuple[str, ...]] = ("torch", "transformers")
    settings_type = MusicGenSettings

    def __init__(
        self, settings: MusicGenSettings | None = None, *, model: Any = None, processor: Any = None
    ) -> None:
        super().__init__(settings)
        if (model is None) != (processor is None):
            raise EngineError("musicgen takes a ready model and its processor together, or neither")
        self.model = self.settings.model
        self.window = float(self.settings.window)
        self._given = (model, processor)
        self._model: Any = None
        self._processor: Any = None
        # What load() chose for "auto", on the machine that runs the model (never in the identity).
        self.method: str | None = None
        self._decoders: dict[tuple[int, int], Any] = {}

    # -- loading ---------------------------------------------------------------------------------------

    def load(self) -> None:
        if self._model is not None:
            return
        require(self)
        import torch

        device = _torch_device(torch, self.settings.device)
        model, processor = self._given
        if model is None:
            model, processor = _from_pretrained(self.model, torch)
        dtype = getattr(torch, self.settings.resolved_dtype)
        # The language model runs in the settings' dtype; EnCodec (convolutions and an LSTM, a small
        # part of the work) stays in float32, where its decoder is known to be clean.
        model.to(dtype)
        model.audio_encoder.to(torch.float32)
        self._model = model.to(device).eval()
        self._processor = processor
        self._given = (None, None)
        method = self.settings.method
        if method == "auto":
            method = "graphs" if device.type == "cuda" else "generate"
        self.method = method

    def identity(self) -> dict[str, Any]:
        identity: dict[str, Any] = {
            "engine": "musicgen",
            "version": ENGINE_VERSION,
            "model": self.model,
            "window": self.window,
            "context_fraction": round(CONTEXT_FRACTION, 6),
            "guidance_scale": GUIDANCE_SCALE,
            "top_k": TOP_K,
            "loop_crossfade": LOOP_CROSSFADE_S,
            "sample_rate": SAMPLE_RATE,
            "license": LICENSE_NOTE,
        }
        dtype = self.settings.resolved_dtype
        if dtype != UNRECORDED_DTYPE:
            identity["dtype"] = dtype
        local = _local_folder(self.model)
        if local is not None:
            identity["model_files"] = _folder_digest(local)
        return identity

    def identity_for(self, prompt: str, *, file: str | None = None) -> dict[str, Any]:
        return self.identity()

    # -- generation ------------------------------------------------------------------------------------

    def generate(self, prompt: str, *, seconds: float = 60.0, file: str | None = None) -> np.ndarray:
        if file is not None:
            raise EngineError(
                f"the musicgen engine makes its own music and cannot play music_file {file!r}; "
                'set engines.music = "library" (tracks in library.folder) or remove music_file'
            )
        return self._beds([prompt], seconds=seconds)[0]

    def generate_many(self, prompts: list[str], *, seconds: float = 60.0) -> list[np.ndarray]:
        """One bed per prompt, all `seconds` long, each the bed `generate(prompt)` makes.

        With the "graphs" method the beds share one sampling loop (MusicGen is launch-bound, so a
        step for ten beds costs about what a step for one does); each bed draws from its own seeded
        generator, so its tokens do not depend on the others. With "generate", one after another."""
        if not isinstance(prompts, list) or not all(isinstance(p, str) for p in prompts):
            raise EngineError(f"musicgen generate_many takes a list of prompts, got {prompts!r}")
        return self._beds(prompts, seconds=seconds) if prompts else []

    def _beds(self, prompts: list[str], *, seconds: float) -> list[np.ndarray]:
        if (
            isinstance(seconds, bool)
            or not isinstance(seconds, int | float)
            or not math.isfinite(seconds)
            or not 0 < seconds <= MAX_SECONDS
        ):
            raise EngineError(
                f"musicgen music length must be in (0, {MAX_SECONDS:g}] seconds, got {seconds!r}"
            )
        self.load()
        n_out = max(1, round(seconds * SAMPLE_RATE))
        n_fade = round(min(LOOP_CROSSFADE_S, seconds / 4) * SAMPLE_RATE)
        rate = self.sampling_rate
        # A few frames more than the loop needs, so the resampler's end effects fall outside it.
        needed = math.ceil((n_out + n_fade) * rate / SAMPLE_RATE) + 2 * self._samples_per_frame()
        beds = []
        for audio in self._model_rate(prompts, samples=needed):
            bed = _resample(audio, rate)
            if bed.shape[1] < n_out + n_fade:  # cannot happen unless the model returns less than asked
                raise EngineError(f"musicgen returned {bed.shape[1]} samples, fewer than {n_out + n_fade}")
            looped = seamless_loop(bed[:, : n_out + n_fade], n_out)
            peak = float(np.max(np.abs(looped)))
            if peak > PEAK_CEILING:
                looped *= PEAK_CEILING / peak
            beds.append(looped.astype(np.float32, copy=False))
        return beds

    @property
    def sampling_rate(self) -> int:
        """The model's own rate (32 kHz for the official checkpoints)."""
        self.load()
        return int(self._model.config.audio_encoder.sampling_rate)

    def generate_model_rate(self, prompt: str, *, samples: int) -> np.ndarray:
        """At least `samples` of music at the model's rate, (channels, n) float32, window by window."""
        return self._model_rate([prompt], samples=samples)[0]

    def _model_rate(self, prompts: list[str], *, samples: int) -> list[np.ndarray]:
        """Each prompt's music at the model's rate, window by window; every bed has the same windows."""
        self.load()
        config = self._model.config
        frame_rate = float(config.audio_encoder.frame_rate)
        hop = self._samples_per_frame()
        window_frames = self._window_frames()
        context_frames = max(1, round(self.window * CONTEXT_FRACTION * frame_rate))
        # The delay pattern costs (codebooks - 1) frames of each call: ask for that much on top.
        delay = int(config.decoder.num_codebooks)
        frames_needed = math.ceil(samples / hop)

        first = min(window_frames, frames_needed + delay)
        audios = self._windows(prompts, index=0, tails=None, new_tokens=first)
        index = 1
        while audios[0].shape[1] < samples:
            made = audios[0].shape[1]
            context = min(context_frames, made // hop) * hop
            tails = [audio[:, made - context :] for audio in audios]
            remaining = math.ceil((samples - made) / hop)
            new_tokens = min(window_frames - context // hop, remaining + delay)
            outs = self._windows(prompts, index=index, tails=tails, new_tokens=new_tokens)
            if outs[0].shape[1] <= context:
                raise EngineError(f"musicgen window {index} made no new audio; use a longer window")
            fade = round(JOIN_CROSSFADE_S * self.sampling_rate)
            audios = [_join(a, o, context=context, fade=fade) for a, o in zip(audios, outs, strict=True)]
            index += 1
        return audios

    def _window_frames(self) -> int:
        return max(1, round(self.window * float(self._model.config.audio_encoder.frame_rate)))

    def _samples_per_frame(self) -> int:
        audio_config = self._model.config.audio_encoder
        hop = getattr(audio_config, "hop_length", None)
        return int(hop) if hop else round(audio_config.sampling_rate / audio_config.frame_rate)

    def _windows(
        self, prompts: list[str], *, index: int, tails: list[np.ndarray] | None, new_tokens: int
    ) -> list[np.ndarray]:
        if self.method == "graphs":
            return self._static_windows(prompts, index=index, tails=tails, new_tokens=new_tokens)
        return [
            self._window(prompt, index=index, tail=None if tails is None else tails[i], new_tokens=new_tokens)
            for i, prompt in enumerate(prompts)
        ]

    def _window(self, prompt: str, *, index: int, tail: np.ndarray | None, new_tokens: int) -> np.ndarray:
        """One MusicGen call: the text (and the tail, when given) in, (channels, n) float32 out.

        With a tail the output starts with the codec's reconstruction of it (tail.shape[1] samples)."""
        import torch

        model = self._model
        inputs = self._inputs(prompt, tail)
        devices = [model.device.index or 0] if model.device.type == "cuda" else []
        # Seeding inside a forked RNG leaves the process's own random state as it was.
        with torch.random.fork_rng(devices=devices), torch.inference_mode():
            torch.manual_seed(seed_from("musicgen", prompt, str(index)))
            values = model.generate(
                **inputs,
                do_sample=True,
                guidance_scale=GUIDANCE_SCALE,
                top_k=TOP_K,
                max_new_tokens=new_tokens,
            )
        return values[0].float().cpu().numpy()

    def _inputs(self, prompt: str, tail: np.ndarray | None) -> dict[str, Any]:
        model = self._model
        if tail is None:
            inputs = self._processor(text=[prompt], padding=True, return_tensors="pt")
        else:
            # The feature extractor wants (n,) for a mono model and (2, n) for a stereo one.
            example = tail[0] if model.config.decoder.audio_channels == 1 else tail
            inputs = self._processor(
                text=[prompt],
                audio=[example],
                sampling_rate=self.sampling_rate,
                padding=True,
                return_tensors="pt",
            )
        return {key: value.to(model.device) for key, value in inputs.items()}

    def _static_windows(
        self, prompts: list[str], *, index: int, tails: list[np.ndarray] | None, new_tokens: int
    ) -> list[np.ndarray]:
        """The same windows through the static-cache loop, all beds in one loop.

        Text and audio prompts are encoded bed by bed and the codes decoded bed by bed, so only the
        decoder's matrix products see the batch."""
        import torch

        from zray.engines.musicgen_static import (
            TEXT_MULTIPLE,
            Sampling,
            UnsupportedSampling,
            generate_window,
            round_up,
        )

        model = self._model
        try:
            sampling = Sampling.for_model(model, guidance_scale=GUIDANCE_SCALE, top_k=TOP_K)
        except UnsupportedSampling as exc:
            log.warning("musicgen: %s, which the graphs method does not mirror; using generate", exc)
            self.method = "generate"
            return self._windows(prompts, index=index, tails=tails, new_tokens=new_tokens)
        texts, masks, codes, scales = [], [], [], []
        with torch.inference_mode():
            for i, prompt in enumerate(prompts):
                inputs = self._inputs(prompt, None if tails is None else tails[i])
                texts.append(
                    model.text_encoder(
                        input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]
                    ).last_hidden_state[0]
                )
                masks.append(inputs["attention_mask"][0])
                if tails is not None:
                    prompt_codes, prompt_scales = _encode_prompt(model, inputs)
                    codes.append(prompt_codes)
                    scales.append(prompt_scales)
        longest = max(t.shape[0] for t in texts)
        decoder = self._decoder(
            beds=len(prompts), text=round_up(longest, TEXT_MULTIPLE), guided=sampling.guided
        )
        generators = [
            torch.Generator(device=model.device).manual_seed(seed_from("musicgen", prompt, str(index)))
            for prompt in prompts
        ]
        with torch.inference_mode():
            out = generate_window(
                model,
                decoder,
                texts=list(zip(texts, masks, strict=True)),
                prompt_codes=torch.cat(codes) if codes else None,
                new_tokens=new_tokens,
                sampling=sampling,
                generators=generators,
            )
            return [
                _decode(model, out[i : i + 1], scales[i] if scales else None) for i in range(len(prompts))
            ]

    def _decoder(self, *, beds: int, text: int, guided: bool) -> Any:
        """A static decoder for this many beds and text positions, kept for the next windows and beds
        (its CUDA graph is captured once); a new shape replaces the ones kept, to bound memory."""
        from zray.engines.musicgen_static import LENGTH_MULTIPLE, StaticDecoder, round_up

        key = (beds, text)
        if key not in self._decoders:
            self._decoders.clear()
            self._decoders[key] = StaticDecoder(
                self._model,
                beds=beds,
                length=round_up(1 + self._window_frames(), LENGTH_MULTIPLE),
                text=text,
                guided=guided,
                capture=True,
            )
        return self._decoders[key]


def _encode_prompt(model: Any, inputs: dict[str, Any]) -> tuple[Any, Any]:
    """An audio prompt's codes (1, codebooks, n) and codec scales, as `generate` encodes them
    (a stereo model's channels coded one by one and interleaved)."""
    encoder = model.audio_encoder
    values, padding = inputs["input_values"], inputs.get("padding_mask")
    if model.config.decoder.audio_channels == 1:
        encoded = encoder.encode(input_values=values, padding_mask=padding, return_dict=True)
        codes, scales = encoded.audio_codes, encoded.audio_scales
    else:
        left = encoder.encode(input_values=values[:, :1, :], padding_mask=padding, return_dict=True)
        right = encoder.encode(input_values=values[:, 1:, :], padding_mask=padding, return_dict=True)
        frames, bsz, books, n = left.audio_codes.shape
        codes = left.audio_codes.new_ones((frames, bsz, 2 * books, n))
        codes[:, :, ::2, :] = left.audio_codes
        codes[:, :, 1::2, :] = right.audio_codes
        if left.audio_scales != [None] or right.audio_scales != [None]:
            import torch

            scales = torch.stack([left.audio_scales, right.audio_scales], dim=1)
        else:
            scales = [None] * bsz
    if codes.shape[0] != 1:
        raise EngineError(f"musicgen's codec returned {codes.shape[0]} frames of codes for a prompt, not 1")
    return codes[0], scales


def _decode(model: Any, codes: Any, scales: Any) -> np.ndarray:
    """One bed's codes (1, codebooks, n) to (channels, n) float32 audio, as `generate` decodes them."""
    scales = [None] if scales is None else scales
    ids = codes[None, ...]
    if model.config.decoder.audio_channels == 1:
        values = model.audio_encoder.decode(ids, audio_scales=scales).audio_values
    else:
        import torch

        left = model.audio_encoder.decode(ids[:, :, ::2, :], audio_scales=scales).audio_values
        right = model.audio_encoder.decode(ids[:, :, 1::2, :], audio_scales=scales).audio_values
        values = torch.cat([left, right], dim=1)
    return values[0].float().cpu().numpy()


def seamless_loop(audio: np.ndarray, n: int) -> np.ndarray:
    """The first n samples of `audio`, with what follows them (audio[:, n:]) crossfaded into the head.

    Sample n-1 is untouched and sample 0 is almost exactly audio[:, n], its neighbour in the original,
    so looping the result is as smooth as the original at that point. Equal-power (sin/cos) curves
    keep the level through the fade, as the two ends are unrelated music.
    """
    fade = audio.shape[1] - n
    if fade < 0 or fade > n:
        raise ValueError(f"a loop of {n} samples needs {n}..{2 * n} samples of audio, got {audio.shape[1]}")
    looped = np.array(audio[:, :n], dtype=np.float32)
    if fade:
        angle = (np.arange(fade, dtype=np.float64) + 0.5) * (np.pi / (2 * fade))
        looped[:, :fade] = audio[:, :fade] * np.sin(angle) + audio[:, n:] * np.cos(angle)
    return looped


def _join(audio: np.ndarray, out: np.ndarray, *, context: int, fade: int) -> np.ndarray:
    """Append a continuation: `out` is the reconstructed tail (its first `context` samples) + new music."""
    fade = min(fade, context)
    joined = np.concatenate([audio, out[:, context:]], axis=1)
    if fade:
        # The tail and its reconstruction are the same music, so a linear crossfade keeps the level.
        ramp = (np.arange(fade, dtype=np.float32) + 0.5) / fade
        start = audio.shape[1] - fade
        joined[:, start : audio.shape[1]] = (
            audio[:, start:] * (1 - ramp) + out[:, context - fade : context] * ramp
        )
    return joined


def _resample(audio: np.ndarray, rate: int) -> np.ndarray:
    if rate == SAMPLE_RATE:
        return audio.astype(np.float32, copy=False)
    from scipy.signal import resample_poly

    divisor = math.gcd(SAMPLE_RATE, rate)
    return resample_poly(audio, SAMPLE_RATE // divisor, rate // divisor, axis=1).astype(np.float32)


def _torch_device(torch: Any, device: str) -> Any:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except (RuntimeError, ValueError):
        raise EngineError(
            f"musicgen device {device!r} is not a torch device (use auto, cpu, cuda or cuda:N)"
        ) from None


def _from_pretrained(model_id: str, torch: Any) -> tuple[Any, Any]:
    from transformers import AutoProcessor, MusicgenForConditionalGeneration

    local = _local_folder(model_id)
    source = str(local) if local is not None else model_id
    try:
        # Building the modules may draw random initial weights: keep the caller's random stream.
        with torch.random.fork_rng(devices=[]):
            processor = AutoProcessor.from_pretrained(source)
            model = MusicgenForConditionalGeneration.from_pretrained(source, dtype=torch.float32)
    except OSError as exc:
        raise EngineError(
            f"musicgen model {model_id!r} cannot be loaded ({_first_line(exc)}); download it once "
            "with network access (it is then read from the Hugging Face cache) or set the musicgen "
            "model to a local folder"
        ) from None
    return model, processor


def _local_folder(model: str) -> Path | None:
    """The model as a local folder, or None for a Hub id; a path-like name that is no folder is an error."""
    path = Path(model).expanduser()
    if path.is_dir():
        return path
    if model.startswith((".", "/", "~")) or model.count("/") > 1 or "\\" in model:
        raise EngineError(f"musicgen model folder {model!r} does not exist; give a folder or a Hub id")
    return None


def _folder_digest(folder: Path) -> str:
    """A short digest of a local model's file names and sizes: a swapped model changes cache keys."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")):
        digest.update(f"{path.relative_to(folder).as_posix()}\0{path.stat().st_size}\n".encode())
    return digest.hexdigest()[:16]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
