"""Which profile a run uses: `auto` is production where Ray sees a GPU, else draft."""

from __future__ import annotations

import os

from zray.config import Config


def resolve_profile(config: Config, *, gpus: float | None = None) -> str:
    if config.profile != "auto":
        return config.profile
    if gpus is None:
        gpus = local_gpu_count()
    return "production" if gpus > 0 else "draft"


def local_gpu_count() -> int:
    """GPUs Ray would see on this machine, without starting Ray."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return 0
    try:
        from ray._private.accelerators import NvidiaGPUAcceleratorManager

        return int(NvidiaGPUAcceleratorManager.get_current_node_num_accelerators())
    except Exception:  # no driver, no NVML: no GPU for our purposes
        return 0


def cluster_gpus(config: Config) -> float | None:
    """GPUs for --profile auto: the cluster's when joining one, else this machine's."""
    if config.profile != "auto" or not config.address:
        return None
    import ray

    from zray.actors.cluster import connect

    connect(config)
    return float(ray.cluster_resources().get("GPU", 0))
