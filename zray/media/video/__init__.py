"""Episode video with PyAV, at a cost that grows with distinct images, not minutes of video.

One module per idea: `settings` (the output format and its rules), `still` (a still scene as one
IDR picture plus skip pictures), `bitstream` (Annex B parsing and the hand-written H.264 skip
slices), `encoder` (libx264 as every segment opens it), `clip` (intros: retimed and letterboxed),
`aac` (the AAC track in chunks, spliced; packets as data), `mux` (segments and audio into one MP4)
and `probing` (what a media file holds, and its audio's loudness and true peak).

The public names load lazily, so `zray.config` can read `settings` (stdlib only) without PyAV.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from zray.media.video.aac import EncodedAudio
    from zray.media.video.clip import encode_clip
    from zray.media.video.mux import AssemblyInfo, Segment, assemble
    from zray.media.video.probing import AudioLevels, MediaInfo, audio_levels, probe
    from zray.media.video.settings import PRESETS, VideoError, VideoSettings, X264Preset
    from zray.media.video.still import encode_still

__all__ = [
    "PRESETS",
    "AssemblyInfo",
    "AudioLevels",
    "EncodedAudio",
    "MediaInfo",
    "Segment",
    "VideoError",
    "VideoSettings",
    "X264Preset",
    "assemble",
    "audio_levels",
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
    "AudioLevels": "probing",
    "audio_levels": "probing",
    "EncodedAudio": "aac",
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
