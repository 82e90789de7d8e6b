"""run.json: what each artifact of the episode was made from, its files, and what the runs did.

A node counts as current only when the record holds it under the content key the plan expects,
and each of its files is still the one written: the stat fingerprint (size and mtime, or the ETag)
is compared first, which costs no read, so an unchanged rerun stays fast; a changed fingerprint
means the file is hashed, and a hash that differs from the recorded one makes the node stale (it
is rebuilt, with one warning naming the file). A fingerprint only says "look again": it never
decides on its own that content is current.

Entries are written only after their files are complete, and an entry is dropped before its
files are rebuilt, so a crash at any point leaves nothing that a later run trusts. Paths are
relative to the episode folder and never leave it: a record that names anything outside the
folder, or that belongs to another episode (a copied folder), is set aside and the run starts
fresh, so no record can make a run delete or move another episode's files.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zray import episode as layout
from zray.episode import Identity, RecordError
from zray.keys import KEY_FORMAT
from zray.nodes import Node, Result, read_result, to_json
from zray.store import FileRecord, Store, StoreError

FORMAT = 2
FLUSH_INTERVAL = 2.0
log = logging.getLogger("zray")

Stamps = dict[str, tuple[int, str]]


@dataclass
class Opened:
    """A run record, and what loading it had to say."""

    record: RunRecord
    warnings: list[str] = field(default_factory=list)


class RunRecord:
    def __init__(self, store: Store, identity: Identity, script: str, data: dict[str, Any] | None = None):
        self.store = store  # rooted at the episode folder
        self.identity = identity
        self.data: dict[str, Any] = dict(data or {})
        self.nodes: dict[str, dict[str, Any]] = dict(self.data.get("nodes", {}))
        # How its keys were made (zray.keys.KEY_FORMAT); a record from before keys said so has format 1.
        self.key_format: int = self.data.get("key_format", 1 if self.nodes else KEY_FORMAT)
        self.data.update(
            format=FORMAT, identity=identity.to_json(), script=script, key_format=self.key_format
        )
        self._last_flush = 0.0
        self._dirty = False

    # --- loading -------------------------------------------------------------------------------

    @classmethod
    def open(
        cls, store: Store, identity: Identity, script: str, *, force: bool = False, readonly: bool = False
    ) -> Opened:
        """The folder's record for this episode; another episode's (or a broken) one is set aside.

        Raises RunRecordConflict when the record is this episode's but was made from another script
        file that still exists (two scripts claiming one folder), unless `force`.
        """
        warnings: list[str] = []
        try:
            data = layout.read_json(store, layout.RUN_FILE, what="the run record")
        except RecordError as exc:
            warnings.append(_set_aside(store, f"is unreadable ({exc})", readonly=readonly))
            return Opened(cls(store, identity, script), warnings)
        if data is None:
            return Opened(cls(store, identity, script), warnings)
        problem = layout.check_run_record(data)
        if problem is None:
            data = _upgrade(data, store)
            theirs = Identity.from_json(data.get("identity"))
            if theirs is not None and theirs != identity:
                problem = f"belongs to episode {theirs}, not {identity} (a copied folder?)"
            elif theirs is None and not _same_script_name(data.get("script"), script):
                problem = f"was made from {data.get('script')!r}, not this episode's script"
            else:
                outside = layout.outside_paths(_all_paths(data))
                if outside:
                    problem = f"names files outside the episode folder ({outside[0]!r})"
        if problem is not None:
            warnings.append(_set_aside(store, problem, readonly=readonly))
            return Opened(cls(store, identity, script), warnings)
        previous = data.get("script")
        if isinstance(previous, str) and previous != script and not force:
            if _exists(previous):
                raise RunRecordConflict(
                    f"{store.root_url} holds episode {identity} made from {previous}, not {script}: two "
                    "scripts claim one folder; give one of them another file name or --project, or pass "
                    "--force to let this script take the folder over"
                )
            warnings.append(f"{identity}: the script moved from {previous} to {script}; same episode")
        return Opened(cls(store, identity, script, data), warnings)

    # --- what is current -----------------------------------------------------------------------

    def result(self, node: Node) -> Result:
        return read_result(node.kind, self.nodes[node.id]["result"])

    def files(self, node_id: str) -> dict[str, FileRecord]:
        entry = self.nodes.get(node_id) or {}
        records = {path: FileRecord.from_json(rec) for path, rec in (entry.get("files") or {}).items()}
        return {path: rec for path, rec in records.items() if rec is not None}

    def check(self, node: Node, stamps: Stamps) -> tuple[bool, str, str | None]:
        """(current, why not, warning): whether the node's files are the ones recorded under its key."""
        entry = self.nodes.get(node.id)
        if entry is None:
            return False, "not made yet", None
        if entry.get("key") != node.key:
            return False, "what it is made from changed", None
        try:
            # A step with dynamic outputs (the Shorts) is current with the files its result lists,
            # each one it may write (inside its folder).
            outputs = node.produced(self.result(node))
        except ValueError:
            return False, "its record is malformed", None
        if tuple(entry.get("outputs", ())) != outputs:
            return False, "its files have other names", None
        missing = [path for path in outputs if path not in stamps]
        if missing:
            return False, f"{missing[0]} is missing", None
        intact, warning = self._files_intact(node.id, outputs, stamps)
        return intact, (warning or "").split(";")[0], warning

    def _files_intact(self, node_id: str, paths: Iterable[str], stamps: Stamps) -> tuple[bool, str | None]:
        entry = self.nodes[node_id]
        files = self.files(node_id)
        for path in paths:
            size, stamp = stamps[path]
            recorded = files.get(path)
            if recorded is not None and (recorded.size, recorded.stamp) == (size, stamp):
                continue
            digest = self.store.checksum(path)
            if recorded is not None and digest != recorded.sha256:
                return False, f"{path} changed since it was made (damaged or edited); rebuilding it"
            # Same bytes under a new fingerprint (copied, touched), or a record from before zray kept
            # hashes: remember the file as it is now.
            entry.setdefault("files", {})[path] = FileRecord(digest, size, stamp).to_json()
            self._dirty = True
        return True, None

    def renamed(self, nodes: Iterable[Node], stamps: Stamps) -> list[tuple[Node, tuple[str, ...]]]:
        """Nodes whose content is current but whose files carry old names (a changed title)."""
        moves = []
        for node in nodes:
            entry = self.nodes.get(node.id)
            old = tuple(entry.get("outputs", ())) if entry else ()
            if (
                entry
                and not node.request.dynamic_outputs  # those rename their own files (zray.pipeline.shorts)
                and entry.get("key") == node.key
                and old != node.outputs
                and len(old) == len(node.outputs)
                and all(path in stamps for path in old)
                and self._files_intact(node.id, old, stamps)[0]
            ):
                moves.append((node, old))
        return moves

    def moved(self, node: Node, old: tuple[str, ...]) -> None:
        entry = self.nodes[node.id]
        files = entry.get("files") or {}
        entry["files"] = {new: files[src] for src, new in zip(old, node.outputs, strict=True) if src in files}
        entry["outputs"] = list(node.outputs)
        result = dict(entry.get("result") or {})
        if "path" in result:
            result["path"] = node.outputs[0]
        entry["result"] = result
        self._dirty = True

    def previous_outputs(self, node_id: str) -> tuple[str, ...]:
        entry = self.nodes.get(node_id)
        return tuple(entry.get("outputs", ())) if entry else ()

    # --- changes -------------------------------------------------------------------------------

    def record(
        self, node: Node, result: Result, files: dict[str, FileRecord], step: dict[str, Any] | None = None
    ) -> None:
        entry: dict[str, Any] = {
            "key": node.key,
            "outputs": list(node.produced(result)),
            "result": to_json(result),
            "files": {path: rec.to_json() for path, rec in files.items()},
        }
        if step:
            entry["step"] = step
        self.nodes[node.id] = entry
        self._dirty = True

    def keys(self) -> dict[str, str]:
        """Each recorded node's key."""
        return {
            node_id: entry["key"]
            for node_id, entry in self.nodes.items()
            if isinstance(entry.get("key"), str)
        }

    def rekey(self, node_id: str, key: str) -> None:
        """The node's content is unchanged but its key is now written another way (a new key format)."""
        self.nodes[node_id]["key"] = key
        self._dirty = True

    def upgraded_keys(self) -> None:
        """Every key is now in the current format (the ones that were not recognised are rebuilt)."""
        self.key_format = KEY_FORMAT
        self.data["key_format"] = KEY_FORMAT
        self._dirty = True

    def forget(self, node_ids: Iterable[str]) -> None:
        for node_id in node_ids:
            self.nodes.pop(node_id, None)
        self._dirty = True

    def set(self, **fields: Any) -> None:
        self.data.update(fields)
        self._dirty = True

    def add_generated(self, *paths: str) -> None:
        generated = list(self.data.get("generated") or [])
        for path in paths:
            if path not in generated and layout.inside(path):
                generated.append(path)
        self.data["generated"] = generated
        self._dirty = True

    def flush(self, *, force: bool = False) -> None:
        """Write the record atomically; throttled unless forced, since a run records many artifacts."""
        now = time.monotonic()
        if not self._dirty or (not force and now - self._last_flush < FLUSH_INTERVAL):
            return
        self.data["nodes"] = self.nodes
        try:
            layout.write_json(self.store, layout.RUN_FILE, self.data)
        except OSError as exc:  # a full disk, a store that went away
            reason = exc.strerror or str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise StoreError(
                f"cannot write the run record {self.store.url(layout.RUN_FILE)} ({reason}); "
                "what finished before is kept: fix the storage and run again"
            ) from None
        self._last_flush = now
        self._dirty = False


class RunRecordConflict(RecordError):
    """Two scripts claim one episode folder."""


@dataclass
class Staleness:
    """What must run, in plan order, each with why; and a warning for each damaged file found."""

    nodes: list[Node]
    reasons: dict[str, str]
    warnings: list[str]


def stale_nodes(nodes: dict[str, Node], record: RunRecord, stamps: Stamps) -> Staleness:
    """Targets that are not current and the stale inputs they need. A current artifact stops the
    walk, so a finished video is not rebuilt just because an intermediate file was deleted."""
    reasons: dict[str, str] = {}
    seen: set[str] = set()
    warnings: list[str] = []

    def visit(node: Node, consumer: str | None) -> None:
        if node.id in seen:
            return
        seen.add(node.id)
        current, reason, warning = record.check(node, stamps)
        if warning:
            warnings.append(warning)
        if current:
            return
        reasons[node.id] = (
            reason if consumer is None or reason != "not made yet" else f"{reason} (needed by {consumer})"
        )
        for dep in node.deps:
            visit(nodes[dep], node.id)

    for target in (n for n in nodes.values() if n.final):
        visit(target, None)
    return Staleness([n for n in nodes.values() if n.id in reasons], reasons, warnings)


# --- helpers ---------------------------------------------------------------------------------------


def _set_aside(store: Store, problem: str, *, readonly: bool) -> str:
    if readonly:
        return f"{store.url(layout.RUN_FILE)} {problem}; a run would set it aside and start fresh"
    return layout.set_aside(store, layout.RUN_FILE, problem)


def _all_paths(data: dict[str, Any]) -> list[str]:
    paths = []
    for entry in data.get("nodes", {}).values():
        paths += list(entry.get("outputs", []))
        paths += list((entry.get("files") or {}).keys())
    generated = data.get("generated") or []
    paths += [p for p in generated if isinstance(p, str)]
    return paths


def _upgrade(data: dict[str, Any], store: Store) -> dict[str, Any]:
    """Records before format 2 named files from the output root (`<project>/<episode>/x`)."""
    if data.get("format", 1) >= FORMAT:
        return data
    prefix = "/".join(store.root.rstrip("/").split("/")[-2:]) + "/"
    upgraded = dict(data)
    nodes = {}
    for node_id, entry in data.get("nodes", {}).items():
        entry = dict(entry)
        entry["outputs"] = [p[len(prefix) :] if p.startswith(prefix) else p for p in entry.get("outputs", [])]
        result = dict(entry.get("result") or {})
        if isinstance(result.get("path"), str) and result["path"].startswith(prefix):
            result["path"] = result["path"][len(prefix) :]
        if isinstance(result.get("variants"), list):
            result["variants"] = [
                v[len(prefix) :] if isinstance(v, str) and v.startswith(prefix) else v
                for v in result["variants"]
            ]
        if isinstance(result.get("words"), list):
            result["words"] = [
                {"word": w.get("word", w.get("text")), "start": w.get("start"), "end": w.get("end")}
                for w in result["words"]
                if isinstance(w, dict)
            ]
        entry["result"] = result
        nodes[node_id] = entry
    upgraded["nodes"] = nodes
    upgraded.pop("outputs", None)  # keyed by name relative to the folder already, rebuilt at the end
    return upgraded


def _same_script_name(recorded: Any, script: str) -> bool:
    if not isinstance(recorded, str):
        return True  # nothing to compare with
    return recorded.rsplit("/", 1)[-1] == script.rsplit("/", 1)[-1]


def _exists(source: str) -> bool:
    if "://" in source:
        return False  # a URL cannot be checked cheaply; scripts from buckets carry their URL anyway
    try:
        return Path(source).exists()
    except OSError:
        return False


__all__ = [
    "FLUSH_INTERVAL",
    "Opened",
    "RunRecord",
    "RunRecordConflict",
    "Staleness",
    "StoreError",
    "stale_nodes",
]


@dataclass(frozen=True)
class Finding:
    path: str
    problem: str  # "missing", "damaged", or what is wrong with a record


def verify(store: Store) -> tuple[int, list[Finding]]:
    """Hash every file the folder's run record lists and compare with what was recorded when it was
    written: catches what a rerun's fingerprint check cannot (same size, same mtime). Returns the
    number of files checked and what is wrong."""
    data = layout.read_json(store, layout.RUN_FILE, what="the run record")
    if data is None:
        raise RecordError(
            f"{store.root_url}: no {layout.RUN_FILE} here; is this an episode folder made by `zray run`?"
        )
    problem = layout.check_run_record(data)
    if problem:
        raise RecordError(f"{store.url(layout.RUN_FILE)}: {problem}; run `zray run` again to rebuild it")
    data = _upgrade(data, store)
    findings: list[Finding] = []
    checked = 0
    existing = store.stamps()
    for entry in data.get("nodes", {}).values():
        for path in entry.get("outputs", []):
            recorded = FileRecord.from_json((entry.get("files") or {}).get(path))
            checked += 1
            if path not in existing:
                findings.append(Finding(path, "missing"))
            elif recorded is None:
                findings.append(Finding(path, "no hash recorded (made by an older zray); a rerun records it"))
            elif store.checksum(path) != recorded.sha256:
                findings.append(Finding(path, "damaged: its bytes differ from the ones zray wrote"))
    return checked, findings
