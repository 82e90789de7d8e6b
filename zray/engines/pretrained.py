"""Where a diffusers model comes from and where it runs: shared by the image and video engines.

A model is a local folder or a Hugging Face id. Nothing is downloaded while a run waits: an id that is
not in the local cache is one line saying how to fetch it, and a folder that is not there is named as
a folder (a typo in a path must not read as a Hub id). A folder's digest (paths and sizes) is part of
the engine's identity, so a swapped or retrained model makes new keys.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from zray.engines.base import EngineError


def is_cuda(device: str) -> bool:
    return device == "cuda" or device.startswith("cuda:")


def resolve_device(torch: Any, device: str, *, role: str) -> str:
    """The torch device for a device setting, on the machine that runs the model."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        torch.device(device)
    except (RuntimeError, ValueError):
        raise EngineError(
            f"{role} device {device!r} is not a torch device (use auto, cpu, cuda or cuda:N)"
        ) from None
    return device


def local_dir(model: str) -> Path | None:
    path = Path(model).expanduser()
    return path if path.is_dir() else None


def looks_like_path(model: str) -> bool:
    """Hub ids are `name` or `owner/name`; anything else that is not a directory was meant as one."""
    return model.startswith(("/", ".", "~")) or model.count("/") > 1 or "\\" in model


def dir_digest(folder: Path) -> str:
    """Short hash of every file's relative path and size: a swapped or retrained model changes it."""
    entries = sorted(
        f"{path.relative_to(folder).as_posix()}:{path.stat().st_size}"
        for path in folder.rglob("*")
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(folder).parts)
    )
    return hashlib.sha256("\n".join(entries).encode("utf-8")).hexdigest()[:16]


def in_hf_cache(model: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(model, "model_index.json"), str)
    except ValueError:  # not a valid repo id
        return False


def load_pipeline(pipeline: type, model: str, *, dtype: Any, role: str, setting: str) -> Any:
    """`pipeline.from_pretrained` on a local folder or a cached Hub id, failures in one line naming
    the `setting` (models.image, models.video) that chose the model."""
    local = local_dir(model)
    if local is None and looks_like_path(model):
        raise EngineError(f"{role} model directory {model} does not exist; set {setting} to a model folder")
    try:
        return pipeline.from_pretrained(str(local) if local else model, dtype=dtype)
    except (OSError, ValueError) as exc:
        if local is None and not in_hf_cache(model):
            raise EngineError(
                f"{role} model {model} is not in the Hugging Face cache and cannot be downloaded here; "
                f"download it with `hf download {model}` or set {setting} to a local directory"
            ) from None
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EngineError(f"{role} model {model} could not be loaded: {first_line}") from None
