"""What leaves the episode folder is what zray made: every file is checked against the sha256 that
run.json recorded when zray wrote it, before its first byte is sent (to YouTube or to a website).

A rerun only looks at a file's size and mtime (see the README), so a file damaged in place with
both kept looks unchanged there; the bytes are hashed here, once, at the moment they leave. A file
run.json records no hash for (a record older than file hashes) is sent as it is.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from pathlib import Path

from zray.episode import RUN_FILE, Episode, EpisodeError
from zray.store import FileRecord, Store, file_digest


class DamagedOutput(EpisodeError):
    """A finished file whose bytes are not the ones run.json recorded: nothing of it is sent."""

    def __init__(self, url: str):
        super().__init__(
            f"{url} is not the file zray made (its sha256 differs from the one in {RUN_FILE}: damaged "
            "or edited): nothing of it was sent; run `zray run` on the script to rebuild it"
        )


def recorded_sha256(episode: Episode, path: str) -> str | None:
    """The sha256 run.json recorded for a file of the folder (relative path), or None."""
    for entry in episode.nodes.values():
        files = entry.get("files") if isinstance(entry, dict) else None
        record = FileRecord.from_json(files.get(path)) if isinstance(files, dict) else None
        if record is not None:
            return record.sha256
    return None


def check_bytes(episode: Episode, path: str, data: bytes) -> bytes:
    """`data` (the file's bytes, as read) if they are the recorded ones; DamagedOutput if not."""
    wanted = recorded_sha256(episode, path)
    if wanted is not None and hashlib.sha256(data).hexdigest() != wanted:
        raise DamagedOutput(episode.store.url(path))
    return data


def read_checked(episode: Episode, path: str) -> bytes:
    """A small file's bytes (a thumbnail, captions), read once and checked."""
    return check_bytes(episode, path, episode.store.read_bytes(path))


def check_file(episode: Episode, path: str) -> None:
    """Hash a large file (a video) as it is now; DamagedOutput when it is not the recorded one."""
    wanted = recorded_sha256(episode, path)
    if wanted is not None and episode.store.checksum(path) != wanted:
        raise DamagedOutput(episode.store.url(path))


@contextlib.contextmanager
def checked_copy(store: Store, key: str, sha256: str | None) -> Iterator[Path]:
    """A local file holding the key's bytes (the file itself on a local disk), hashed before it is
    yielded; DamagedOutput, before anything is sent, when it is not the recorded one."""
    with store.local_copy(key) as local:
        if sha256 is not None and file_digest(local) != sha256:
            raise DamagedOutput(store.url(key))
        yield local
