"""How much GPU memory each production model takes, per mode: the README's VRAM table, the actors'
GPU shares (`zray.actors.placement`) and `zray doctor`'s advice all read this one table.

A figure is torch's peak reserved memory (GiB) in the process that runs the model, making a
1920x1072 image, a 60 s bed or a paragraph of speech, as `benchmarks/real_size.py` prints it at real
size on a GPU (its summary lists rows in this form). Each process also holds a CUDA context that
torch does not count (CONTEXT_GIB). Rows with `measured=False` are estimates from the weights' sizes
until a device run measures them; the README says which. Stdlib only: doctor and placement import it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# A CUDA context per process (driver, kernels, cuBLAS/cuDNN handles): outside torch's figure.
CONTEXT_GIB = 0.5
# Room left on a card for fragmentation and the odd larger request: a plan must fit in this share.
USABLE = 0.95
# Image memory modes, fastest first (zimage.MEMORY_MODES): the first that fits is the one to use.
IMAGE_MODES = ("resident", "group_offload", "model_offload", "sequential_offload")


_H200 = "H200 2026-11-28 (benchmarks/results/real_size_h200_*): "


@dataclass(frozen=True)
class Footprint:
    engine: str  # the engine's name, with the model size for MusicGen ("musicgen-small")
    mode: str  # image and video: memory mode (+vae_tiling); music: method; voices: "resident"
    gib: float  # peak reserved, GiB
    measured: bool
    source: str


FOOTPRINTS: tuple[Footprint, ...] = (
    Footprint("zimage", "resident", 28.32, True, _H200 + "1920x1072; 23.98 GiB allocated, 21.1 after load"),
    Footprint(
        "zimage", "group_offload", 9.31, True, _H200 + "1920x1072, text encoder included; 3.58 s/image"
    ),
    Footprint("zimage", "group_offload+vae_tiling", 9.31, True, _H200 + "1920x1072; 3.85 s/image"),
    Footprint("zimage", "model_offload+vae_tiling", 13.89, True, _H200 + "1920x1072; 19.5 s/image"),
    Footprint("zimage", "sequential_offload", 5.17, True, _H200 + "1920x1072; 19.8 s/image"),
    Footprint("musicgen-small", "graphs", 4.01, True, _H200 + "60 s bed, 4.66 ms per step"),
    Footprint("musicgen-small", "generate", 4.08, True, _H200 + "60 s bed, 54.1 ms per step"),
    # Measured in a process that still held another model's weights, so only an upper bound was
    # seen (26.8 GiB); the estimate stands until a run of its own.
    Footprint("musicgen-medium", "graphs", 5.0, False, "estimate: 3.3 GB of weights, a static cache"),
    # Likewise: 4.09 GiB was the process's peak after the image and music parts had run.
    Footprint("kokoro", "resident", 1.0, False, "estimate: 82 M float32 parameters and activations"),
    # Wan2.2-TI2V-5B, one 5 s clip (121 frames) at 1280x704; not yet measured on a GPU.
    Footprint(
        "wan",
        "resident",
        34.0,
        False,
        "estimate: 5 B transformer + 5.7 B UMT5 in bfloat16 (21.4 GB) and the float32 VAE's 121-frame decode",
    ),
    Footprint(
        "wan",
        "group_offload",
        14.0,
        False,
        "estimate: one block on the card at a time; the VAE's 121-frame decode is the peak",
    ),
    Footprint("wan", "model_offload", 24.0, False, "estimate: the whole transformer or text encoder at once"),
)


def footprint(engine: str, mode: str) -> Footprint | None:
    for row in FOOTPRINTS:
        if (row.engine, row.mode) == (engine, mode):
            return row
    return None


def engine_footprint(name: str, settings: Any) -> Footprint | None:
    """The row for a built-in engine with these settings (None for an engine this table lacks).

    Z-Image's mode is its memory mode, with "+vae_tiling" when tiling is on (falling back to the
    mode alone); MusicGen's size comes from its model id and its mode from the method it takes on
    a GPU ("auto" is "graphs" there)."""
    if name == "zimage":
        memory = getattr(settings, "memory", "resident")
        tiled = (
            footprint("zimage", f"{memory}+vae_tiling") if getattr(settings, "vae_tiling", False) else None
        )
        return tiled or footprint("zimage", memory)
    if name == "musicgen":
        model = str(getattr(settings, "model", "facebook/musicgen-small")).lower()
        size = "medium" if "medium" in model else "small" if "small" in model else None
        method = getattr(settings, "method", "auto")
        if size is None:
            return None
        return footprint(f"musicgen-{size}", "graphs" if method == "auto" else method)
    if name == "kokoro":
        return footprint("kokoro", "resident")
    if name == "wan":
        return footprint("wan", getattr(settings, "memory", "resident"))
    return None


def shares(gib: dict[str, float]) -> dict[str, float]:
    """GPU shares per role in proportion to memory, adding up to at most one GPU (a card holds one
    actor of each role); each at least 0.01, as Ray needs a share to pin an actor to a GPU."""
    total = sum(gib.values())
    if total <= 0:
        return dict.fromkeys(gib, 0.0)
    raw = {role: value / total for role, value in gib.items()}
    out = {role: max(0.01, int(share * 100) / 100) for role, share in raw.items()}
    while sum(out.values()) > 1 + 1e-9:  # the 0.01 floors pushed it over: take from the largest
        largest = max(out, key=lambda role: out[role])
        out[largest] = round(out[largest] - 0.01, 2)
    return out


@dataclass(frozen=True)
class Advice:
    """The image memory mode for a card: the fastest whose models, all on one card, fit it."""

    mode: str | None  # None: even the leanest mode does not fit
    card_gib: float
    needed_gib: float  # for `mode` (or the leanest, when none fits): models + one context each
    parts: dict[str, float]  # what `needed_gib` adds up

    @property
    def fits(self) -> bool:
        return self.mode is not None


def advise_image_memory(card_gib: float, *, others: dict[str, float], vae_tiling: bool = False) -> Advice:
    """The fastest Z-Image mode whose footprint, with the other models on the same card (`others`:
    role -> GiB, e.g. music and voices) and a CUDA context per process, fits USABLE of the card."""
    candidates = []
    for mode in IMAGE_MODES:
        row = (footprint("zimage", f"{mode}+vae_tiling") if vae_tiling else None) or footprint("zimage", mode)
        if row is None:
            continue
        parts = {f"zimage {row.mode}": row.gib, **others, "CUDA contexts": CONTEXT_GIB * (1 + len(others))}
        needed = round(sum(parts.values()), 2)
        candidates.append((mode, needed, parts))
        if needed <= USABLE * card_gib:
            return Advice(mode=mode, card_gib=card_gib, needed_gib=needed, parts=parts)
    _, needed, parts = min(candidates, key=lambda c: c[1])
    return Advice(mode=None, card_gib=card_gib, needed_gib=needed, parts=parts)


def markdown_table() -> str:
    """The README's VRAM table, from FOOTPRINTS (estimates marked as such)."""
    lines = ["| model | mode | peak GiB | source |", "|---|---|---|---|"]
    for row in FOOTPRINTS:
        figure = f"{row.gib:g}" if row.measured else f"~{row.gib:g} (estimate)"
        lines.append(f"| {row.engine} | {row.mode} | {figure} | {row.source} |")
    return "\n".join(lines)
