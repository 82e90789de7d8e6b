"""The one module that talks to fsspec.

A store is a root URL (a local folder, `s3://bucket/prefix`, `gs://...`, `memory://...`) and
keys relative to it (`project/episode/assets/common/img_0.png`). Every write is atomic: local
files are written to a hidden temp name beside the target and renamed; object stores get a
single put of a finished file, which their consistency model makes all-or-nothing. Either way a
reader never sees a half-written artifact.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

TEMP_MARK = ".zray-tmp-"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Writers that use mkstemp leave 0600 files; finished artifacts get the usual permissions.
FILE_MODE = 0o666 & ~_umask()


class StoreError(OSError):
    """The store cannot be used (unreachable, unwritable, or a key that escapes the root)."""


def expand(pattern: str) -> list[str]:
    """Files a path, folder (searched for *.json) or glob names, local or any fsspec URL."""
    fs, path = fsspec.core.url_to_fs(pattern)
    if fs.isdir(path):
        found = fs.glob(path.rstrip("/") + "/**/*.json")
    elif any(c in path for c in "*?["):
        found = fs.glob(path)
    else:
        found = [path] if fs.exists(path) else []
    local = isinstance(fs, LocalFileSystem)
    return sorted(p if local else fs.unstrip_protocol(p) for p in found if TEMP_MARK not in p)


def fetch(url: str, dest: str | os.PathLike[str]) -> Path:
    """Copy one file from any fsspec URL to a local path."""
    fs, path = fsspec.core.url_to_fs(url)
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fs.get_file(path, str(dest))
    return dest


class Store:
    def __init__(
        self, root: str | os.PathLike[str] = "outputs/", *, storage_options: dict[str, Any] | None = None
    ):
        root = os.fspath(root)
        self.storage_options = dict(storage_options or {})
        self.fs, path = fsspec.core.url_to_fs(root, **self.storage_options)
        self.is_local = isinstance(self.fs, LocalFileSystem)
        self.root = path.rstrip("/") if path not in ("/", "") else path
        self.url_root = root

    # Stores travel to Ray workers: rebuild the filesystem there instead of pickling its state.
    # Credentials are never in storage_options: backends read them from each node's environment.
    def __getstate__(self) -> dict[str, Any]:
        return {"root": self.root_url, "storage_options": self.storage_options}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["root"], storage_options=state["storage_options"])  # type: ignore[misc]

    @property
    def root_url(self) -> str:
        return self.root if self.is_local else self.fs.unstrip_protocol(self.root)

    def __repr__(self) -> str:
        return f"Store({self.root_url!r})"

    # --- paths ---------------------------------------------------------------------------------

    def path(self, key: str) -> str:
        """The filesystem path of a key; keys can never climb out of the root."""
        parts = [p for p in key.replace("\\", "/").split("/") if p not in ("", ".")]
        if any(p == ".." for p in parts):
            raise StoreError(f"key {key!r} escapes the store root")
        return "/".join([self.root, *parts]) if self.root else "/".join(parts)

    def url(self, key: str) -> str:
        return self.path(key) if self.is_local else self.fs.unstrip_protocol(self.path(key))

    def local_path(self, key: str) -> Path | None:
        """The key as a local file path, when the store is a local folder."""
        return Path(self.path(key)) if self.is_local else None

    # --- reads ---------------------------------------------------------------------------------

    def exists(self, key: str) -> bool:
        return bool(self.fs.exists(self.path(key)))

    def size(self, key: str) -> int:
        return int(self.fs.size(self.path(key)))

    def open(self, key: str, mode: str = "rb") -> IO[Any]:
        if any(c in mode for c in "wax+"):
            raise ValueError("Store.open is for reading; write with put, write_bytes or writer")
        return self.fs.open(self.path(key), mode)

    def read_bytes(self, key: str) -> bytes:
        return bytes(self.fs.cat_file(self.path(key)))

    def read_text(self, key: str) -> str:
        return self.read_bytes(key).decode("utf-8")

    def get(self, key: str, local: str | os.PathLike[str]) -> Path:
        """Copy a key to a local file (atomically) and return its path."""
        local = Path(local)
        local.parent.mkdir(parents=True, exist_ok=True)
        tmp = local.with_name(f"{TEMP_MARK}{uuid.uuid4().hex}-{local.name}")
        try:
            self.fs.get_file(self.path(key), str(tmp))
            os.replace(tmp, local)
        finally:
            tmp.unlink(missing_ok=True)
        return local

    @contextlib.contextmanager
    def local_copy(self, key: str) -> Iterator[Path]:
        """A local file holding the key's bytes: the file itself on a local store, a temp copy otherwise."""
        direct = self.local_path(key)
        if direct is not None:
            yield direct
            return
        with tempfile.TemporaryDirectory(prefix="zray-") as tmp:
            yield self.get(key, Path(tmp) / Path(key).name)

    def list(self, prefix: str = "") -> list[str]:
        """Keys under a prefix (recursively), relative to the root, temp files excluded."""
        base = self.path(prefix)
        if not self.fs.exists(base):
            return []
        found = self.fs.find(base)
        start = len(self.root) + 1 if self.root else 0
        keys = [p[start:] if self.is_local else self._strip(p)[start:] for p in found]
        return sorted(k for k in keys if TEMP_MARK not in k)

    def checksum(self, key: str) -> str:
        digest = hashlib.sha256()
        with self.open(key) as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()

    # --- writes --------------------------------------------------------------------------------

    def put(self, local: str | os.PathLike[str], key: str) -> None:
        """Store a finished local file under key, atomically."""
        target = self.path(key)
        if self.is_local:
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            tmp = self._temp_beside(target)
            try:
                shutil.copyfile(local, tmp)
                os.replace(tmp, target)
            finally:
                Path(tmp).unlink(missing_ok=True)
        else:
            self.fs.put_file(os.fspath(local), target)

    def write_bytes(self, key: str, data: bytes) -> None:
        with self.writer(key) as tmp:
            tmp.write_bytes(data)

    def write_text(self, key: str, text: str) -> None:
        self.write_bytes(key, text.encode("utf-8"))

    @contextlib.contextmanager
    def writer(self, key: str, *, suffix: str | None = None) -> Iterator[Path]:
        """Yield a local temp path to write; it becomes `key` only if the block finishes.

        On a local store the temp file sits beside the target so the final rename is atomic;
        `suffix` keeps the extension for writers (PyAV, soundfile) that pick a format from it.
        """
        ext = suffix if suffix is not None else Path(key).suffix
        target = self.path(key)
        if self.is_local:
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(self._temp_beside(target) + ext)
            try:
                yield tmp
                os.chmod(tmp, FILE_MODE)
                os.replace(tmp, target)
            finally:
                tmp.unlink(missing_ok=True)
        else:
            with tempfile.TemporaryDirectory(prefix="zray-") as tmpdir:
                tmp = Path(tmpdir) / f"out{ext}"
                yield tmp
                self.fs.put_file(str(tmp), target)

    def move(self, src: str, dst: str) -> None:
        """Rename a key (atomic on local disks; copy then delete on object stores)."""
        source, target = self.path(src), self.path(dst)
        if self.is_local:
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, target)
        else:
            self.fs.copy(source, target)
            self.fs.rm(source)

    def remove(self, key: str) -> None:
        path = self.path(key)
        if self.fs.exists(path):
            self.fs.rm(path, recursive=True)

    def sweep_temps(self, prefix: str = "") -> int:
        """Delete temp files left by killed writers under prefix; returns how many."""
        if not self.is_local:
            return 0
        base = Path(self.path(prefix))
        removed = 0
        if base.exists():
            for tmp in base.rglob(f"{TEMP_MARK}*"):
                tmp.unlink(missing_ok=True)
                removed += 1
        return removed

    def check_writable(self, prefix: str = "") -> None:
        """Fail fast (before any work) when the store cannot take a write; leaves nothing behind."""
        probe = f"{prefix.rstrip('/')}/{TEMP_MARK}probe-{uuid.uuid4().hex}" if prefix else f"{TEMP_MARK}probe"
        created = self._first_missing_dir(probe)
        try:
            self.write_bytes(probe, b"ok")
            self.remove(probe)
        except Exception as exc:  # any backend error means the same thing to the user
            raise StoreError(f"cannot write to {self.url(prefix)}: {exc}") from None
        finally:
            if created is not None:
                shutil.rmtree(created, ignore_errors=True)

    def _first_missing_dir(self, key: str) -> Path | None:
        """The outermost folder a local write of key would create (None on object stores)."""
        if not self.is_local:
            return None
        missing = None
        for parent in Path(self.path(key)).parents:
            if parent.exists():
                break
            missing = parent
        return missing

    # --- internals -----------------------------------------------------------------------------

    def _temp_beside(self, target: str) -> str:
        head, _, name = target.rpartition("/")
        return (
            f"{head}/{TEMP_MARK}{uuid.uuid4().hex}-{name}"
            if head
            else f"{TEMP_MARK}{uuid.uuid4().hex}-{name}"
        )

    def _strip(self, path: str) -> str:
        return self.fs._strip_protocol(path)
