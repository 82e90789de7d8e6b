"""The files the review page may serve: a table built from the episode's records, never from a request.

A request names a file by the path run.json lists for it; the server looks that string up in this
table and opens only what the table holds. A path the records do not list (`../../etc/passwd`, a
user's notes, another episode's files, run.json itself) is simply not in the table.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from zray import episode as layout
from zray.episode import Episode

# What the page shows: pictures, sound, video, subtitles, chapters.
MEDIA_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
    ".wav": "audio/wav",
    ".mp4": "video/mp4",
    ".vtt": "text/vtt; charset=utf-8",
    ".srt": "text/plain; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
}
PICTURES = frozenset({".png", ".jpg", ".jpeg", ".webp"})


@dataclass(frozen=True)
class Served:
    path: str  # relative to the episode folder, as run.json lists it
    media_type: str
    version: str  # changes whenever the file's content does (its recorded hash)
    sha256: str | None = None  # as run.json recorded it: what is served is checked against it

    @property
    def picture(self) -> bool:
        return _suffix(self.path) in PICTURES


def _suffix(path: str) -> str:
    name = path.rsplit("/", 1)[-1]
    return "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""


def allowed_files(episode: Episode) -> dict[str, Served]:
    """Every file of the episode the page may serve, by its path in the folder."""
    table: dict[str, Served] = {}
    for entry in episode.nodes.values():
        files = entry.get("files") or {}
        for path in entry.get("outputs") or []:
            media_type = MEDIA_TYPES.get(_suffix(path))
            if media_type is None or not layout.inside(path):
                continue
            digest = (files.get(path) or {}).get("sha256") if isinstance(files, dict) else None
            digest = digest if isinstance(digest, str) else None
            version = digest[:12] if digest else str(entry.get("key", ""))[:12]
            table[path] = Served(path, media_type, version, digest)
    return table


def file_url(served: Served) -> str:
    """The page's URL of a file; the version makes the browser fetch it again once it changed."""
    return f"/files/{quote(served.path)}?v={served.version}"


def preview_url(served: Served) -> str:
    return f"/previews/{quote(served.path)}?v={served.version}"
