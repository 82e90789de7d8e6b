"""A studio's own licensed music: the music engine that picks a track from a folder instead of generating.

The script may name a track (`file`, its `music_file`); otherwise the prompt picks one, by sha256 over
the sorted track list, so the same prompt gets the same track in every process and on every machine.
The whole track is returned at 48 kHz stereo; the pipeline loops or trims it to the video.

Identity: `identity_for(prompt, file=...)` is what decides one bed, the folder as configured (never an
absolute path, so another checkout or node keeps the keys) and the chosen track's name and content
hash; replacing that track's audio changes it, adding an unrelated track does not unless it changes
the pick. `identity()` describes the whole folder (names, sizes, modification times) for the run record.

Tracks are decoded with libsndfile (soundfile: WAV, FLAC, OGG, MP3) and resampled with scipy, so the
engine needs no PyAV.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from zray.engines.base import BaseEngine, EngineError, EngineSettings
from zray.input_files import file_problem
from zray.media.constants import SAMPLE_RATE

ENGINE_VERSION = "2"  # 2: decoded with libsndfile + scipy instead of FFmpeg
DEFAULT_FOLDER = "inputs/music"
AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg")
CHANNELS = 2
_HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class LibrarySettings(EngineSettings):
    folder: str = DEFAULT_FOLDER  # as configured: what the identity names
    # Where a relative `folder` is found (the planning run's working directory: an actor may run in
    # another one). Not part of the identity.
    base_dir: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.folder, str) or not self.folder.strip():
            raise EngineError(f"library music folder must be a folder path, got {self.folder!r}")

    @property
    def path(self) -> Path:
        folder = Path(self.folder).expanduser()
        return folder if folder.is_absolute() or not self.base_dir else Path(self.base_dir) / folder


class LibraryMusicEngine(BaseEngine):
    """Returns a track from the folder as float32 (2, n) at 48 kHz, whole (not cut to `seconds`)."""

    name: ClassVar[str] = "library"
    role: ClassVar[str] = "music"
    uses_gpu: ClassVar[bool] = False
    accepts_file: ClassVar[bool] = True
    requires: ClassVar[tuple[str, ...]] = ("soundfile", "scipy")
    install_hint: ClassVar[str] = "pip install soundfile scipy"
    settings_type = LibrarySettings

    def __init__(self, settings: LibrarySettings | None = None) -> None:
        super().__init__(settings)
        self.folder = self.settings.folder

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

    def identity_for(self, prompt: str, *, file: str | None = None) -> dict[str, Any]:
        track = self.choose(prompt, file=file)
        return {
            "engine": "library",
            "version": ENGINE_VERSION,
            "model": None,
            "folder": self.folder,
            "track": track.name,
            "track_sha256": _content_digest(track),
            "sample_rate": SAMPLE_RATE,
            "channels": CHANNELS,
        }

    def tracks(self) -> list[Path]:
        """The folder's audio files, sorted by name; EngineError if there are none."""
        folder = self.settings.path
        if not folder.is_dir():
            raise EngineError(
                f"library music folder {self.folder!r} does not exist; create it and put the studio's "
                f"licensed tracks ({', '.join(AUDIO_SUFFIXES)}) in it, or choose another music engine"
            )
        named = [
            path
            for path in folder.iterdir()
            if not path.name.startswith(".") and path.suffix.lower() in AUDIO_SUFFIXES
        ]
        for path in sorted(named):
            problem = file_problem(path)  # a FIFO would hang the decoder, a device never ends
            if problem:
                raise EngineError(
                    f"library music folder {self.folder!r}: {path.name}: {problem}; remove it, or put the "
                    "track itself there"
                )
        found = sorted(named, key=lambda path: path.name)
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
        if (
            isinstance(seconds, bool)
            or not isinstance(seconds, int | float)
            or not math.isfinite(seconds)
            or seconds <= 0
        ):
            raise EngineError(f"music length must be a positive number of seconds, got {seconds!r}")
        track = self.choose(prompt, file=file)
        audio = _decode(track)
        if audio.shape[1] == 0:
            raise EngineError(f"library music track {track.name!r} has no audio; replace or remove it")
        return audio


def _decode(track: Path) -> np.ndarray:
    """The whole track as float32 (2, n) at SAMPLE_RATE: mono doubled, stereo as it is."""
    import soundfile
    from scipy.signal import resample_poly

    try:
        data, rate = soundfile.read(track, dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, OSError) as exc:
        raise EngineError(
            f"library music track {track.name!r} cannot be decoded ({exc}); replace it"
        ) from None
    frames = data.T  # (channels, n)
    if frames.shape[0] > CHANNELS:
        raise EngineError(
            f"library music track {track.name!r} has {frames.shape[0]} channels; give it in stereo or mono"
        )
    if frames.shape[0] == 1:
        frames = np.repeat(frames, CHANNELS, axis=0)
    if rate != SAMPLE_RATE and frames.shape[1]:
        divisor = math.gcd(SAMPLE_RATE, rate)
        frames = resample_poly(frames, SAMPLE_RATE // divisor, rate // divisor, axis=1)
    return np.ascontiguousarray(frames, dtype=np.float32)


def _listing_digest(tracks: list[Path]) -> str:
    digest = hashlib.sha256()
    for track in tracks:
        stat = track.stat()
        digest.update(f"{track.name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


# A track's content digest, remembered by (path, size, mtime) so planning rereads nothing unchanged.
_digests: dict[tuple[str, int, int], str] = {}


def _content_digest(track: Path) -> str:
    stat = track.stat()
    key = (str(track.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _digests:
        digest = hashlib.sha256()
        with track.open("rb") as handle:
            while chunk := handle.read(_HASH_CHUNK):
                digest.update(chunk)
        _digests[key] = digest.hexdigest()[:16]
    return _digests[key]
