"""The seed system's episode folder, read only: where its files are, and reading them safely.

The layout (`outputs/<project>/<episode>/`): `assets/common/img_<scene_id>.png`,
`assets/common/bg_music_common_<md5(prompt)[:8]>_<seconds>s.wav`,
`assets/<lang>/raw/audio_<lang>_<scene_id>_<hash>_raw.wav` (the seed never defined `<hash>`, so
narrations match on language and scene id only), `assets/thumbnails/thumbnail_raw_<lang>.png` and
the final MP4s at the top. Its OAuth tokens are `token_<project>_<lang>.pickle` files elsewhere.

A file is read only when it is a regular file inside the folder it was looked for in: a symlink,
or a path that resolves outside (a linked parent folder), is refused. Bytes are read once, through
a descriptor opened without following links, so what is hashed is what is converted.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

ASSETS = "assets"
COMMON = f"{ASSETS}/common"
THUMBNAILS = f"{ASSETS}/thumbnails"
_MUSIC = re.compile(r"bg_music_common_([0-9A-Fa-f]+)_(\d+(?:\.\d+)?)s\.wav")


class UnsafeFile(Exception):
    """A file that is not a regular file inside its folder: never read."""


@dataclass(frozen=True)
class SeedFile:
    """One file's bytes, read once, with where it was and its sha256."""

    relative: str  # as found, relative to its folder
    data: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def read_inside(root: Path, relative: str) -> SeedFile:
    """The bytes of `root/relative` when it is a regular file inside `root`; UnsafeFile otherwise
    (FileNotFoundError when it is not there)."""
    base = root.resolve()
    path = root / relative
    info = os.lstat(path)  # FileNotFoundError when absent
    if stat.S_ISLNK(info.st_mode):
        raise UnsafeFile(f"{relative} is a symbolic link; only regular files inside {root} are adopted")
    if not stat.S_ISREG(info.st_mode):
        raise UnsafeFile(f"{relative} is not a regular file")
    if not path.resolve().is_relative_to(base):
        raise UnsafeFile(f"{relative} lies outside {root} (through a linked folder); not adopted")
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UnsafeFile(f"{relative} is not a regular file")
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = handle.read()
    finally:
        os.close(fd)
    return SeedFile(relative, data)


@dataclass(frozen=True)
class MusicBed:
    relative: str
    prompt_hash: str
    seconds: float


class SeedFolder:
    """One seed episode folder; every look-up lists names only, reading happens in `read`."""

    def __init__(self, root: Path):
        self.root = root

    def read(self, relative: str) -> SeedFile:
        return read_inside(self.root, relative)

    def _names(self, folder: str) -> list[str]:
        path = self.root / folder
        try:
            return sorted(entry.name for entry in os.scandir(path))
        except (FileNotFoundError, NotADirectoryError):
            return []

    def image(self, scene_id: str) -> str:
        return f"{COMMON}/img_{scene_id}.png"

    def images(self) -> dict[str, str]:
        """Every scene picture, by the scene id its name carries."""
        found = {}
        for name in self._names(COMMON):
            match = re.fullmatch(r"img_(.+)\.png", name)
            if match:
                found[match.group(1)] = f"{COMMON}/{name}"
        return found

    def narrations(self, lang: str) -> dict[str, list[str]]:
        """Each raw narration of a language by scene id (a list: the seed may have made several)."""
        folder = f"{ASSETS}/{lang}/raw"
        pattern = re.compile(rf"audio_{re.escape(lang)}_(.+)_([^_]+)_raw\.wav")
        found: dict[str, list[str]] = {}
        for name in self._names(folder):
            match = pattern.fullmatch(name)
            if match:
                found.setdefault(match.group(1), []).append(f"{folder}/{name}")
        return found

    def narration_languages(self) -> list[str]:
        return [name for name in self._names(ASSETS) if (self.root / ASSETS / name / "raw").is_dir()]

    def music(self) -> list[MusicBed]:
        beds = []
        for name in self._names(COMMON):
            match = _MUSIC.fullmatch(name)
            if match:
                beds.append(MusicBed(f"{COMMON}/{name}", match.group(1).lower(), float(match.group(2))))
        return beds

    def thumbnail(self, lang: str) -> str:
        return f"{THUMBNAILS}/thumbnail_raw_{lang}.png"

    def videos(self) -> list[str]:
        return [name for name in self._names(".") if name.lower().endswith(".mp4")]


def music_hash(prompt: str) -> str:
    """The seed's name for a music prompt: the first 8 hex digits of its md5."""
    return hashlib.md5(prompt.encode("utf-8"), usedforsecurity=False).hexdigest()[:8]
