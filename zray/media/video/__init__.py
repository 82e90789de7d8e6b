"""Episode video with PyAV, at a cost that grows with distinct images, not minutes of video.

One module per idea: `settings` (the output format and its rules), `still` (a still scene as one
IDR picture plus skip pictures), `bitstream` (Annex B parsing and the hand-written H.264 skip
slices), `clip` (intros: retimed and letterboxed), `aac` (the AAC track in parallel chunks,
spliced), `mux` (segments and audio into one MP4) and `probing` (what a media file holds).

The public names load lazily, so `zray.config` can read `settings` (stdlib only) without PyAV.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from zray.media.video.clip import encode_clip
    from zray.media.video.mux import AssemblyInfo, Segment, assemble
    from zray.media.video.probing import MediaInfo, probe
    from zray.media.video.settings import PRESETS, VideoError, VideoSettings, X264Preset
    from zray.media.video.still import encode_still

__all__ = [
    "PRESETS",
    "AssemblyInfo",
    "MediaInfo",
    "Segment",
    "VideoError",
    "VideoSettings",
    "X264Preset",
    "assemble",
    "encode_clip",
    "encode_still",
    "probe",
]

_HOMES = {
    "PRESETS": "settings",
    "VideoError": "settings",
    "VideoSettings": "settings",
    "X264Preset": "settings",
    "encode_still": "still",
    "encode_clip": "clip",
    "AssemblyInfo": "mux",
    "Segment": "mux",
    "assemble": "mux",
    "MediaInfo": "probing",
    "probe": "probing",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value  # found once; later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
