"""The studio's own media named by a script: a scene's `image_file` or `clip_file`, a language's
`thumbnail_file`.

Each is checked before any work (it exists and decodes; a clip has a video stream), copied into
the episode folder under its content hash (so workers on other machines read it there), and its
content, never its path, goes into the cache keys: replacing the file rebuilds what uses it. The
hash is remembered with the file's size and mtime in the run record, so an unchanged rerun does
not read a large clip again.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zray import episode as layout
from zray.errors import RunError
from zray.input_files import file_problem
from zray.script import Script
from zray.store import Store, file_digest

RECORD_FIELD = "studio_files"
# A decoded picture costs width x height x 4 bytes or more: 40 megapixels (7680x5120) is 160 MB,
# while a 144-megapixel PNG would take 1.4 GB on the way to a 1920x1080 frame.
MAX_PICTURE_PIXELS = 40_000_000


@dataclass(frozen=True)
class StudioFile:
    """One studio file: where the script names it, where it is on this machine, its content."""

    name: str  # as the script spells it, relative to the script's folder
    local: Path
    digest: str  # sha256
    kind: str  # "image" or "clip"
    size: tuple[int, int] | None = None  # a picture's width and height (read from its header)

    @property
    def key(self) -> str:
        """Its copy in the episode folder."""
        return layout.studio_file(self.digest, self.local.suffix)


def named_files(script: Script) -> list[tuple[str, str, str]]:
    """(where in the script, file name, kind) for every studio file the script names."""
    found = []
    for i, scene in enumerate(script.scenes):
        if scene.image_file:
            found.append((f"scenes.{i}.image_file", scene.image_file, "image"))
        if scene.clip_file:
            found.append((f"scenes.{i}.clip_file", scene.clip_file, "clip"))
    for lang, seo in script.seo.items():
        if seo.thumbnail_file:
            found.append((f"seo.{lang}.thumbnail_file", seo.thumbnail_file, "image"))
    return found


def check(script: Script, folder: Path) -> None:
    """Every studio file exists and decodes; RunError naming the JSON path otherwise."""
    for where, name, kind in named_files(script):
        path = folder / name
        problem = file_problem(path)  # a FIFO or a device would hang the decoder
        if problem:
            raise RunError(f"{where}: {name!r}: {problem} next to the script ({folder})")
        if kind == "image":
            _check_image(where, path)
        else:
            _check_clip(where, path)


def _check_image(where: str, path: Path) -> None:
    from PIL import Image

    try:
        with Image.open(path) as image:
            width, height = image.size  # from the header: nothing decoded yet
            if width * height > MAX_PICTURE_PIXELS:
                raise RunError(
                    f"{where}: {path.name} is {width}x{height} ({width * height / 1e6:.0f} megapixels); "
                    f"zray takes pictures up to {MAX_PICTURE_PIXELS // 1_000_000} megapixels: scale it down"
                )
            image.verify()
    except RunError:
        raise
    except Exception as exc:  # Pillow raises many kinds for a broken file
        raise RunError(f"{where}: {path.name} is not a picture zray can read ({exc})") from None


def _picture_size(path: Path) -> tuple[int, int] | None:
    """Width and height as the picture is shown (EXIF rotation applied); reads only its header."""
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as image:
            width, height = image.size
            orientation = image.getexif().get(ImageOps.ExifTags.Base.Orientation, 1)
    except Exception:  # checked before; a file that changed since is caught where it is used
        return None
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def _check_clip(where: str, path: Path) -> None:
    from zray.media import video

    try:
        info = video.probe(path)
    except (OSError, ValueError) as exc:
        raise RunError(f"{where}: {path.name} cannot be read as a video ({exc})") from None
    if info.video_codec is None or info.frames == 0:
        raise RunError(f"{where}: {path.name} has no video stream")


def digests(script: Script, folder: Path, remembered: Any) -> dict[str, StudioFile]:
    """The studio files with their content hashes; a file whose size and mtime are the ones
    remembered keeps its remembered hash (no read)."""
    known = remembered if isinstance(remembered, dict) else {}
    out: dict[str, StudioFile] = {}
    for _, name, kind in named_files(script):
        path = folder / name
        stat = path.stat()
        seen = known.get(name)
        if (
            isinstance(seen, dict)
            and seen.get("size") == stat.st_size
            and seen.get("mtime_ns") == stat.st_mtime_ns
            and isinstance(seen.get("sha256"), str)
        ):
            digest = seen["sha256"]
        else:
            digest = file_digest(path)
        out[name] = StudioFile(
            name=name,
            local=path,
            digest=digest,
            kind=kind,
            size=_picture_size(path) if kind == "image" else None,
        )
    return out


def copy_into(store: Store, files: dict[str, StudioFile], remembered: Any) -> dict[str, Any]:
    """Put each file's copy into the episode folder, unless the copy there is the one put before
    (same fingerprint); returns what the run record keeps so the next run need neither hash the
    originals nor read the copies."""
    known = remembered if isinstance(remembered, dict) else {}
    out = {}
    for name, item in files.items():
        seen = known.get(name) if isinstance(known.get(name), dict) else {}
        try:
            current = list(store.stamp(item.key))
        except FileNotFoundError:
            current = None
        if current is None or seen.get("sha256") != item.digest or seen.get("copy") != current:
            store.put(item.local, item.key)
            current = list(store.stamp(item.key))
        stat = item.local.stat()
        out[name] = {
            "size": stat.st_size,
            "mtime_ns": stat.st_mtime_ns,
            "sha256": item.digest,
            "copy": current,
        }
    return out


def content_id(files: dict[str, StudioFile]) -> str:
    """One digest over all studio files (for logs and tests)."""
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(f"{name}\0{files[name].digest}\n".encode())
    return digest.hexdigest()[:16]
