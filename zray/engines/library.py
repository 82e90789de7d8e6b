"""A studio's own licensed music: the music engine that picks a track from a folder instead of generating.

The script may name a track (`file`); otherwise the prompt picks one, by sha256 over the sorted track
list, so the same prompt gets the same track in every process and on every machine. The whole track is
returned at 48 kHz stereo; the pipeline loops or trims it to the video. `identity()` digests the
folder's listing (names, sizes, modification times), so adding a track or replacing a file changes
the cache keys of everything made from it.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

import numpy as np

from zray.engines.base import EngineError
from zray.media.audio import SAMPLE_RATE, AudioError, decode_audio

ENGINE_VERSION = "1"
DEFAULT_FOLDER = "inputs/music"
AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg")
CHANNELS = 2


class LibraryMusicEngine:
    """Returns a track from `folder` as float32 (2, n) at 48 kHz, whole (not cut to `seconds`)."""

    def __init__(self, *, folder: str = DEFAULT_FOLDER) -> None:
        if not isinstance(folder, str) or not folder.strip():
            raise ValueError(f"library music folder must be a folder path, got {folder!r}")
        self.folder = folder

    def load(self) -> None:
        """Nothing stays resident; checking the folder now fails a run before its first step."""
        self.tracks()

    def identity(self) -> dict[str, Any]:
        return {
            "engine": "library",
            "version": ENGINE_VERSION,
            "model": None,
            "folder": self.folder,
            "tracks": _listing_digest(self.tracks()),
            "sample_rate": SAMPLE_RATE,
            "channels": CHANNELS,
        }

    def tracks(self) -> list[Path]:
        """The folder's audio files, sorted by name; EngineError if there are none."""
        folder = Path(self.folder).expanduser()
        if not folder.is_dir():
            raise EngineError(
                f"library music folder {self.folder!r} does not exist; create it and put the studio's "
                f"licensed tracks ({', '.join(AUDIO_SUFFIXES)}) in it, or choose another music engine"
            )
        found = sorted(
            (
                path
                for path in folder.iterdir()
                if path.is_file() and not path.name.startswith(".") and path.suffix.lower() in AUDIO_SUFFIXES
            ),
            key=lambda path: path.name,
        )
        if not found:
            raise EngineError(
                f"library music folder {self.folder!r} has no tracks; put the studio's licensed music "
                f"({', '.join(AUDIO_SUFFIXES)}) in it, or choose another music engine"
            )
        return found

    def choose(self, prompt: str, *, file: str | None = None) -> Path:
        """The track for a prompt: `file` (a name in the folder) if given, else a stable pick by prompt."""
        tracks = self.tracks()
        if file is not None:
            for track in tracks:
                if track.name == file:
                    return track
            names = ", ".join(track.name for track in tracks[:10]) + (", ..." if len(tracks) > 10 else "")
            raise EngineError(
                f"music file {file!r} is not a track in the library folder {self.folder!r} "
                f"(it has: {names}); fix the name in the script or add the file to the folder"
            )
        digest = hashlib.sha256(prompt.encode("utf-8")).digest()
        return tracks[int.from_bytes(digest[:8], "big") % len(tracks)]

    def generate(self, prompt: str, *, seconds: float = 60.0, file: str | None = None) -> np.ndarray:
        # `seconds` is what the pipeline wants in the end; it loops or trims the whole track to it.
        if not isinstance(seconds, int | float) or not math.isfinite(seconds) or seconds <= 0:
            raise ValueError(f"music length must be a positive number of seconds, got {seconds!r}")
        track = self.choose(prompt, file=file)
        try:
            audio = decode_audio(track, sample_rate=SAMPLE_RATE, channels=CHANNELS)
        except AudioError as exc:
            raise EngineError(f"library music track cannot be used: {exc}") from None
        if audio.shape[1] == 0:
            raise EngineError(f"library music track {str(track)!r} has no audio; replace or remove it")
        return audio


def _listing_digest(tracks: list[Path]) -> str:
    digest = hashlib.sha256()
    for track in tracks:
        stat = track.stat()
        digest.update(f"{track.name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]
