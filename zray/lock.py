"""One writer per episode folder: `run`, `upload`, `publish` and `review` take the folder's lock.

On a local disk the lock is an exclusive `flock` on the folder's lock file: the kernel releases it
when its process dies, however it dies, so it can never go stale. On an object store it is a
lease object created only if absent (S3's conditional write; moto's server honours it too),
renewed every 20 s, that another writer may take over once 60 s pass without a renewal; where the
store has no conditional writes (gs://, memory://) the lease is advisory: two writers that start
within the same moment can both get it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import getpass
import json
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from zray.episode import RUN_FILE, Identity, lock_name, read_json
from zray.errors import ZrayError
from zray.store import Store, StoreError

LEASE_SECONDS = 60.0
RENEW_SECONDS = 20.0
log = logging.getLogger("zray")


class LockedError(ZrayError):
    """Another zray process is writing the episode folder."""


@dataclass(frozen=True)
class Holder:
    command: str
    pid: int
    host: str
    user: str
    since: str
    expires: float = 0.0  # leases only: epoch seconds

    @classmethod
    def me(cls, command: str) -> Holder:
        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = "unknown"
        now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        return cls(command, os.getpid(), socket.gethostname(), user, now)

    def to_bytes(self, *, expires: float = 0.0) -> bytes:
        data = {**self.__dict__, "expires": expires}
        return json.dumps(data, sort_keys=True).encode()

    @classmethod
    def parse(cls, data: bytes) -> Holder | None:
        try:
            raw: Any = json.loads(data.decode("utf-8"))
            return cls(
                str(raw["command"]),
                int(raw["pid"]),
                str(raw["host"]),
                str(raw["user"]),
                str(raw["since"]),
                float(raw.get("expires", 0.0)),
            )
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            return None

    def describe(self) -> str:
        return f"`{self.command}` (pid {self.pid} on {self.host}, user {self.user}) since {self.since}"


# Locks this process holds, by folder URL, with a count: `zray run --upload` locks the folder
# for the run and again for the upload inside it.
_held: dict[str, tuple[EpisodeLock, int]] = {}
_held_guard = threading.Lock()


class EpisodeLock:
    def __init__(self, folder: Store, *, command: str):
        """`folder`: the episode folder's store; the lock sits beside it, in its parent, named by the
        folder's real path (`EP`, `EP/.`, `./EP` and a link to `EP` take one lock)."""
        folder = folder.resolved()
        self.folder = folder
        self.store = folder.parent()
        self.key = lock_name(folder.root.rstrip("/").rsplit("/", 1)[-1])
        self.command = command
        self.url = self.store.url(self.key)
        self._fd: int | None = None
        self._stamp: str | None = None
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self.lost = False

    # --- local: flock --------------------------------------------------------------------------

    def _acquire_local(self) -> None:
        import fcntl

        path = self.store.path(self.key)
        try:
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StoreError(f"cannot write to {self.store.root_url}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            with contextlib.suppress(OSError):
                holder = Holder.parse(os.pread(fd, 4096, 0))
            os.close(fd)
            who = holder.describe() if holder else "another process"
            raise LockedError(
                f"{self.folder.root_url} is being written by {who}; wait for it to finish "
                f"(the lock {self.url} is released by the system when that process ends)"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, Holder.me(self.command).to_bytes(), 0)
        self._fd = fd

    # --- object stores: a lease ----------------------------------------------------------------

    def _acquire_lease(self) -> None:
        me = Holder.me(self.command)
        if self.store.create_new(self.key, me.to_bytes(expires=time.time() + LEASE_SECONDS)):
            self._stamp = self.store.stamp(self.key)[1]
        else:
            try:
                stamp = self.store.stamp(self.key)[1]
                holder = Holder.parse(self.store.read_bytes(self.key))
            except FileNotFoundError:  # released between our two calls: try once more
                return self._acquire_lease_once_more(me)
            if holder is not None and holder.expires > time.time():
                raise LockedError(
                    f"{self.folder.root_url} is being written by {holder.describe()}; wait for it to finish "
                    f"(its lease expires {LEASE_SECONDS:.0f} s after that process stops; to release a "
                    f"stale one at once, delete {self.url})"
                )
            if not self.store.replace_if(
                self.key, me.to_bytes(expires=time.time() + LEASE_SECONDS), stamp=stamp
            ):
                raise LockedError(
                    f"{self.folder.root_url}: another writer took the expired lock at the same moment"
                )
            log.warning(
                "took over an expired lock on %s (%s)",
                self.store.root_url,
                holder.describe() if holder else "",
            )
            self._stamp = self.store.stamp(self.key)[1]
        if not self.store.atomic_create:
            log.warning(
                "%s has no conditional writes: the episode lock there is advisory", self.store.root_url
            )
        self._renewer = threading.Thread(target=self._renew, args=(me,), daemon=True, name="zray-lease")
        self._renewer.start()
        return None

    def _acquire_lease_once_more(self, me: Holder) -> None:
        if not self.store.create_new(self.key, me.to_bytes(expires=time.time() + LEASE_SECONDS)):
            raise LockedError(f"{self.folder.root_url}: another writer took the lock at the same moment")
        self._stamp = self.store.stamp(self.key)[1]
        self._renewer = threading.Thread(target=self._renew, args=(me,), daemon=True, name="zray-lease")
        self._renewer.start()

    def _renew(self, me: Holder) -> None:
        while not self._stop.wait(RENEW_SECONDS):
            try:
                if self._stamp is None or not self.store.replace_if(
                    self.key, me.to_bytes(expires=time.time() + LEASE_SECONDS), stamp=self._stamp
                ):
                    self.lost = True
                    log.error("lost the lock on %s: another writer took it", self.store.root_url)
                    return
                self._stamp = self.store.stamp(self.key)[1]
            except OSError as exc:  # a store that went away: the lease lapses, the run reports the store
                log.warning("could not renew the lock on %s: %s", self.store.root_url, exc)

    # --- both ----------------------------------------------------------------------------------

    def acquire(self) -> EpisodeLock:
        with _held_guard:
            held = _held.get(self.url)
            if held is not None:
                _held[self.url] = (held[0], held[1] + 1)
                return held[0]
            if self.store.is_local:
                self._acquire_local()
            else:
                self._acquire_lease()
            _held[self.url] = (self, 1)
            return self

    def release(self) -> None:
        with _held_guard:
            held = _held.get(self.url)
            if held is None:
                return
            lock, count = held
            if count > 1:
                _held[self.url] = (lock, count - 1)
                return
            del _held[self.url]
        lock._let_go()

    def _let_go(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None
            return
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=5)
        with contextlib.suppress(OSError):
            if self._stamp is not None and self.store.stamp(self.key)[1] == self._stamp:
                self.store.remove(self.key)


def check_not_linked_elsewhere(folder: Store, identity: Identity) -> None:
    """An episode folder that is a link to another episode's folder is that episode's folder: a
    run of this episode there would set its record aside and overwrite it, so it is refused."""
    if not folder.is_local or not os.path.islink(folder.root):
        return
    real = folder.resolved()
    try:
        record = read_json(real, RUN_FILE, what="the run record")
    except ZrayError:
        return  # a record that cannot be read is the run's to report
    owner = Identity.from_json(record.get("identity")) if isinstance(record, dict) else None
    if owner is not None and owner != identity:
        raise LockedError(
            f"{folder.root} is a link to {real.root}, the folder of {owner} (its {RUN_FILE} says so), "
            f"not of {identity}; remove the link, or give {identity} a folder of its own"
        )


@contextlib.contextmanager
def episode_lock(store: Store, *, command: str | None = None) -> Iterator[EpisodeLock]:
    """Hold the folder's lock for the block; LockedError (one line) when another process holds it."""
    lock = EpisodeLock(store, command=command or " ".join(["zray", *sys.argv[1:2]]))
    held = lock.acquire()
    try:
        yield held
    finally:
        lock.release()


@contextlib.contextmanager
def slot_lock(folder: str | os.PathLike[str], name: str, *, what: str) -> Iterator[None]:
    """Hold an exclusive `flock` on `<folder>/locks/<name>.lock` for the block, waiting for it.

    For a YouTube video slot, whose whole find-then-insert must be one at a time on this machine
    whatever folder (a copy, another spelling) it is uploaded from: the second waits, then finds the
    first's video by its tag. `what` names the slot in the message said while waiting.
    """
    import fcntl

    path = os.path.join(os.path.expanduser(os.fspath(folder)), "locks", f"{name}.lock")
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise StoreError(f"cannot write the lock {path}: {exc.strerror or exc}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.warning("%s is being uploaded by another zray process; waiting for it to finish", what)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor drops the flock
