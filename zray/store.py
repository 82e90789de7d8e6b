"""The one module that talks to fsspec.

A store is a root URL (a local folder, `s3://bucket/prefix`, `gs://...`, `memory://...`) and
keys relative to it (`project/episode/assets/common/img_0.png`). Every write is atomic: local
files are written to a hidden temp name beside the target and renamed; object stores get a
single put of a finished file, which their consistency model makes all-or-nothing. Either way a
reader never sees a half-written artifact.

On a local disk a store goes only through the folder's own files and folders: a link found below
its root (a file, or a folder such as `assets/common` pointing at a folder of the user's) is never
written, deleted, listed or read through. A write replaces it with zray's own file or folder, with
a warning; a read finds nothing there.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

from zray.errors import ZrayError

TEMP_MARK = ".zray-tmp-"
log = logging.getLogger("zray")
_BLOCK = 1 << 20


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Writers that use mkstemp leave 0600 files; finished artifacts get the usual permissions.
FILE_MODE = 0o666 & ~_umask()


class StoreError(ZrayError, OSError):
    """The store cannot be used (unreachable, unwritable, or a key that escapes the root)."""


class DamagedFile(StoreError):
    """A file whose bytes are not the ones zray recorded when it wrote them."""

    def __init__(self, key: str, url: str):
        self.key = key
        super().__init__(f"{url} changed since zray wrote it (damaged or edited): it is not used")


class DiskFull(StoreError):
    """The disk under the store is full: one line naming the folder and the file being written."""

    def __init__(self, folder: str, url: str):
        super().__init__(
            f"no space left on device: {folder} is full, so {url} was not written (nothing half-written "
            "is kept); free some space and run again"
        )


# A write that fails with less than this free on its disk failed for want of space, whatever the
# library that wrote it says (libsndfile and others report a full disk in their own words).
_NEARLY_FULL_BYTES = 1 << 20


def disk_full(exc: BaseException, folder: str | os.PathLike[str]) -> bool:
    """Whether a failed local write failed because the disk under `folder` is full."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        seen = seen.__cause__ or seen.__context__
    try:
        info = os.statvfs(folder)
    except OSError:
        return False
    return info.f_bavail * info.f_frsize < _NEARLY_FULL_BYTES


@dataclass(frozen=True)
class FileRecord:
    """What a file was when zray wrote it: its content hash, and a stat fingerprint that costs no
    read to compare (size and modification time locally; the ETag or generation on object stores).
    A changed fingerprint only says "look again": the hash decides."""

    sha256: str
    size: int
    stamp: str

    def to_json(self) -> dict[str, Any]:
        return {"sha256": self.sha256, "size": self.size, "stamp": self.stamp}

    @classmethod
    def from_json(cls, data: Any) -> FileRecord | None:
        if not isinstance(data, dict):
            return None
        sha, size, stamp = data.get("sha256"), data.get("size"), data.get("stamp")
        if not isinstance(sha, str) or not isinstance(size, int) or not isinstance(stamp, str):
            return None
        return cls(sha, size, stamp)


# Errors callers act on (a key that is not there, or already is): everything else a backend
# raises (no credentials, an endpoint that went away, a full disk) becomes one StoreError line.
_PASS = (FileNotFoundError, FileExistsError, StoreError)


def _describe_backend(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {text}".rstrip(": ")


def _translated(method: Any) -> Any:
    @functools.wraps(method)
    def wrapper(self: Store, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except _PASS:
            raise
        except Exception as exc:
            key = args[0] if args and isinstance(args[0], str) else ""
            raise StoreError(f"{self.url(key) if key else self.root_url}: {_describe_backend(exc)}") from exc

    return wrapper


def file_digest(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def _stamp_of(info: dict[str, Any]) -> str:
    """The part of an fsspec info dict that changes whenever the object's bytes do."""
    for name in ("ETag", "etag", "generation", "md5Hash", "crc32c"):
        if info.get(name):
            return f"{name}:{str(info[name]).strip(chr(34))}"
    for name in ("mtime", "LastModified", "created", "updated"):
        if info.get(name) is not None:
            value = info[name]
            return f"{name}:{value.timestamp() if hasattr(value, 'timestamp') else value}"
    return "none"


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
        if self.is_local and path:
            path = os.path.normpath(path)  # `EP/.` and `EP/` are `EP`: one folder, one name
        self.root = path.rstrip("/") if path not in ("/", "") else path
        self.url_root = root
        # What this process wrote, so a step can report its files' records without reading them back.
        self._written: dict[str, FileRecord] = {}
        # Hashes the bytes of some keys must have (a step's inputs, as recorded): checked on read.
        self._expected: dict[str, str] = {}

    # Stores travel to Ray workers: rebuild the filesystem there instead of pickling its state.
    # Credentials are never in storage_options: backends read them from each node's environment.
    def __getstate__(self) -> dict[str, Any]:
        return {"root": self.root_url, "storage_options": self.storage_options}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["root"], storage_options=state["storage_options"])  # type: ignore[misc]

    def fresh(self) -> Store:
        """A new handle on the same root, with no memory of writes or expectations (one per step)."""
        return Store(self.root_url, storage_options=self.storage_options)

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

    def _own(self, key: str) -> str:
        """The key's path for a read: FileNotFoundError when a link stands anywhere on its way below
        the root (what a link points at is not the folder's own)."""
        target = self.path(key)
        if self.is_local:
            for step in self._steps(key):
                if os.path.islink(step):
                    raise FileNotFoundError(errno.ENOENT, "a link, not the folder's own file", step)
                if not os.path.lexists(step):
                    break
        return target

    def _own_for_write(self, key: str) -> str:
        """The key's path for a write: a link on its way below the root is replaced (removed here;
        the writer makes its own folder or file there), with a warning; its target is left alone."""
        target = self.path(key)
        if self.is_local:
            for step in self._steps(key):
                if os.path.islink(step):
                    kind = "file" if step == target else "folder"
                    log.warning(
                        "%s is a link (to %s): replaced by zray's own %s; the link's target is left alone",
                        step,
                        os.readlink(step),
                        kind,
                    )
                    os.unlink(step)
                elif not os.path.lexists(step):
                    break
        return target

    def _steps(self, key: str) -> list[str]:
        """The paths from the root's first child down to the key's (the root itself may be a link)."""
        parts = [p for p in key.replace("\\", "/").split("/") if p not in ("", ".")]
        return [
            "/".join([self.root, *parts[:n]]) if self.root else "/".join(parts[:n])
            for n in range(1, len(parts) + 1)
        ]

    def parent(self) -> Store:
        """A store rooted at this one's parent folder."""
        root = self.root_url.rstrip("/")
        head = root.rsplit("/", 1)[0] if "/" in root.split("://", 1)[-1] else root
        return Store(head, storage_options=self.storage_options)

    def resolved(self) -> Store:
        """This folder by its real path on a local disk (every link on the way followed): the one
        name the lock, the records and the messages know it by, however it was spelled."""
        if not self.is_local or not self.root:
            return self
        return Store(os.path.realpath(self.root), storage_options=self.storage_options)

    def child(self, prefix: str) -> Store:
        """A store rooted at a folder of this one (an episode folder)."""
        return Store(self.url(prefix), storage_options=self.storage_options)

    def url(self, key: str) -> str:
        return self.path(key) if self.is_local else self.fs.unstrip_protocol(self.path(key))

    def local_path(self, key: str) -> Path | None:
        """The key as a local file path, when the store is a local folder (FileNotFoundError when a
        link stands on its way)."""
        return Path(self._own(key)) if self.is_local else None

    # --- reads ---------------------------------------------------------------------------------

    def exists(self, key: str) -> bool:
        try:
            return bool(self.fs.exists(self._own(key)))
        except FileNotFoundError:
            return False

    def size(self, key: str) -> int:
        return int(self.fs.size(self._own(key)))

    def open(self, key: str, mode: str = "rb") -> IO[Any]:
        if any(c in mode for c in "wax+"):
            raise ValueError("Store.open is for reading; write with put, write_bytes or writer")
        return self.fs.open(self._own(key), mode)

    def read_bytes(self, key: str) -> bytes:
        return bytes(self.fs.cat_file(self._own(key)))

    def read_text(self, key: str) -> str:
        return self.read_bytes(key).decode("utf-8")

    def get(self, key: str, local: str | os.PathLike[str]) -> Path:
        """Copy a key to a local file (atomically) and return its path."""
        local = Path(local)
        local.parent.mkdir(parents=True, exist_ok=True)
        tmp = local.with_name(f"{TEMP_MARK}{uuid.uuid4().hex}-{local.name}")
        try:
            self.fs.get_file(self._own(key), str(tmp))
            os.replace(tmp, local)
        finally:
            tmp.unlink(missing_ok=True)
        return local

    def expect(self, digests: dict[str, str]) -> None:
        """From now on, reading one of these keys checks its bytes against the given sha256 first."""
        self._expected.update(digests)

    @contextlib.contextmanager
    def local_copy(self, key: str) -> Iterator[Path]:
        """A local file holding the key's bytes: the file itself on a local store, a temp copy otherwise.

        A key with an expected hash (see `expect`) is checked first: DamagedFile if it differs.
        """
        direct = self.local_path(key)
        if direct is not None:
            self._check_expected(key, direct)
            yield direct
            return
        with tempfile.TemporaryDirectory(prefix="zray-") as tmp:
            copy = self.get(key, Path(tmp) / Path(key).name)
            self._check_expected(key, copy)
            yield copy

    def _check_expected(self, key: str, local: Path) -> None:
        wanted = self._expected.get(key)
        if wanted is not None and file_digest(local) != wanted:
            raise DamagedFile(key, self.url(key))

    @contextlib.contextmanager
    def verified_copy(self, key: str, sha256: str | None) -> Iterator[Path]:
        """`local_copy`, after checking the bytes are the ones recorded when the key was written."""
        with self.local_copy(key) as local:
            if sha256 is not None and file_digest(local) != sha256:
                raise DamagedFile(key, self.url(key))
            yield local

    def _walk_local(self, prefix: str) -> dict[str, os.stat_result]:
        """The folder's own files under prefix, by key: links are neither listed nor followed."""
        try:
            base = self._own(prefix)
        except FileNotFoundError:
            return {}
        if os.path.islink(base) or not os.path.isdir(base):
            return {}
        start = len(self.root) + 1 if self.root else 0
        found: dict[str, os.stat_result] = {}
        for folder, _dirs, names in os.walk(base):  # does not descend into linked folders
            for name in names:
                path = os.path.join(folder, name)
                info = os.lstat(path)
                if not os.path.islink(path):
                    found[path[start:]] = info
        return found

    def list(self, prefix: str = "") -> list[str]:
        """Keys under a prefix (recursively), relative to the root, temp files excluded."""
        if self.is_local:
            return sorted(k for k in self._walk_local(prefix) if TEMP_MARK not in k)
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
            for block in iter(lambda: fh.read(_BLOCK), b""):
                digest.update(block)
        return digest.hexdigest()

    def stamp(self, key: str) -> tuple[int, str]:
        """(size, fingerprint) of a key, from one metadata call; no read of its bytes."""
        info = self.fs.info(self._own(key))
        return int(info.get("size") or 0), _stamp_of(info)

    def stamps(self, prefix: str = "") -> dict[str, tuple[int, str]]:
        """(size, fingerprint) of every key under prefix, from one listing: what a rerun compares."""
        if self.is_local:
            return {
                key: (info.st_size, _stamp_of({"mtime": info.st_mtime}))
                for key, info in self._walk_local(prefix).items()
                if TEMP_MARK not in key
            }
        base = self.path(prefix)
        if not self.fs.exists(base):
            return {}
        found = self.fs.find(base, detail=True)
        start = len(self.root) + 1 if self.root else 0
        out: dict[str, tuple[int, str]] = {}
        for name, info in found.items():
            key = (name if self.is_local else self._strip(name))[start:]
            if TEMP_MARK not in key:
                out[key] = (int(info.get("size") or 0), _stamp_of(info))
        return out

    def file_record(self, key: str) -> FileRecord:
        """The record of a key this process just wrote (free), or of any key (one read to hash it)."""
        written = self._written.get(key)
        if written is not None:
            return written
        size, stamp = self.stamp(key)
        return FileRecord(self.checksum(key), size, stamp)

    def _committed(self, key: str, digest: str) -> None:
        size, stamp = self.stamp(key)
        self._written[key] = FileRecord(digest, size, stamp)

    # --- writes --------------------------------------------------------------------------------

    def put(self, local: str | os.PathLike[str], key: str) -> None:
        """Store a finished local file under key, atomically."""
        target = self._own_for_write(key)
        digest = file_digest(local)
        if self.is_local:
            tmp = self._temp_beside(target)
            try:
                with self._space(key):
                    Path(target).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(local, tmp)
                    os.replace(tmp, target)
            finally:
                Path(tmp).unlink(missing_ok=True)
        else:
            self.fs.put_file(os.fspath(local), target)
        self._committed(key, digest)

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
        target = self._own_for_write(key)
        if self.is_local:
            with self._space(key):
                Path(target).parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(self._temp_beside(target) + ext)
            try:
                with self._space(key):
                    yield tmp
                with self._space(key), self._commit(key):
                    digest = file_digest(tmp)
                    os.chmod(tmp, FILE_MODE)
                    os.replace(tmp, target)
            finally:
                tmp.unlink(missing_ok=True)
        else:
            with tempfile.TemporaryDirectory(prefix="zray-") as tmpdir:
                tmp = Path(tmpdir) / f"out{ext}"
                yield tmp
                with self._commit(key):
                    digest = file_digest(tmp)
                    self.fs.put_file(str(tmp), target)
        with self._commit(key):
            self._committed(key, digest)

    @contextlib.contextmanager
    def _space(self, key: str) -> Iterator[None]:
        """A local write that fails on a full disk is DiskFull, naming the folder and the file."""
        try:
            yield
        except DiskFull:
            raise
        except Exception as exc:
            if self.is_local and disk_full(exc, os.path.dirname(self.path(key)) or "."):
                raise DiskFull(self.root_url, self.url(key)) from None
            raise

    @contextlib.contextmanager
    def _commit(self, key: str) -> Iterator[None]:
        """Errors while storing a finished file are the store's (a full disk, an endpoint gone)."""
        try:
            yield
        except _PASS:
            raise
        except Exception as exc:
            raise StoreError(f"cannot store {self.url(key)}: {_describe_backend(exc)}") from exc

    def move(self, src: str, dst: str) -> None:
        """Rename a key (atomic on local disks; copy then delete on object stores)."""
        source, target = self._own(src), self._own_for_write(dst)
        if self.is_local:
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, target)
        else:
            self.fs.copy(source, target)
            self.fs.rm(source)
        self._written.pop(src, None)

    def remove(self, key: str) -> None:
        """Delete a key (a folder: all under it); a link there is removed, never what it points at."""
        path = self.path(key)
        if self.is_local and os.path.islink(path):
            os.unlink(path)
            self._written.pop(key, None)
            return
        try:
            path = self._own(key)
        except FileNotFoundError:  # under a link: nothing of the folder's own is there
            return
        if self.is_local and os.path.isdir(path):
            self._remove_tree(path)
        elif self.fs.exists(path):
            self.fs.rm(path, recursive=True)
        self._written.pop(key, None)

    @staticmethod
    def _remove_tree(path: str) -> None:
        """A local folder and all under it; a link inside is removed itself, never followed."""
        for folder, dirs, names in os.walk(path, topdown=False):
            for name in names:
                os.unlink(os.path.join(folder, name))
            for name in dirs:
                inner = os.path.join(folder, name)
                if os.path.islink(inner):
                    os.unlink(inner)
                else:
                    os.rmdir(inner)
        os.rmdir(path)

    # --- conditional writes (leases) -------------------------------------------------------------

    @property
    def atomic_create(self) -> bool:
        """Whether `create_new` and `replace_if` are atomic here (a local disk, or S3, whose
        conditional writes moto's server honours too); elsewhere they are check-then-write."""
        return self.is_local or self.fs.protocol in ("s3", "s3a") or "s3" in tuple(self.fs.protocol)

    def create_new(self, key: str, data: bytes) -> bool:
        """Write key only if it does not exist yet; False when it does."""
        target = self._own_for_write(key)
        if self.is_local:
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
            except FileExistsError:
                return False
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            return True
        if self.atomic_create:
            try:
                self.fs.pipe_file(target, data, mode="create")
            except FileExistsError:
                return False
            return True
        if self.fs.exists(target):
            return False
        self.fs.pipe_file(target, data)
        return True

    def replace_if(self, key: str, data: bytes, *, stamp: str) -> bool:
        """Overwrite key only if its fingerprint is still `stamp` (nobody else wrote it since)."""
        target = self.path(key)
        if not self.is_local and self.atomic_create and stamp.startswith("ETag:"):
            bucket, name = self.fs.split_path(target)[:2]
            try:
                self.fs.call_s3("put_object", Bucket=bucket, Key=name, Body=data, IfMatch=f'"{stamp[5:]}"')
            except (OSError, ValueError) as exc:  # s3fs maps PreconditionFailed to an OSError
                if "precondition" in str(exc).lower() or isinstance(exc, FileNotFoundError):
                    return False
                raise
            self.fs.invalidate_cache(target)
            return True
        try:
            if self.stamp(key)[1] != stamp:
                return False
        except FileNotFoundError:
            return False
        self.write_bytes(key, data)
        return True

    def sweep_temps(self, prefix: str = "") -> int:
        """Delete temp files left by killed writers under prefix; returns how many."""
        if not self.is_local:
            return 0
        removed = 0
        for key in self._walk_local(prefix):  # the folder's own files only: no link is followed
            if key.rsplit("/", 1)[-1].startswith(TEMP_MARK):
                Path(self.path(key)).unlink(missing_ok=True)
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


for _name in (
    "exists",
    "size",
    "open",
    "read_bytes",
    "get",
    "list",
    "checksum",
    "stamp",
    "stamps",
    "put",
    "move",
    "remove",
    "create_new",
    "replace_if",
    "sweep_temps",
):
    setattr(Store, _name, _translated(getattr(Store, _name)))
