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
from zray.episode import Identity, NodeEntry, RecordError, RunFile
from zray.keys import KEY_FORMAT
from zray.nodes import STEP_VERSION, Node, Result, field_digests, to_json
from zray.pipeline.explain import changed_reason
from zray.store import FileRecord, Store, StoreError

FLUSH_INTERVAL = 2.0
log = logging.getLogger("zray")

Stamps = dict[str, tuple[int, str]]


@dataclass
class Opened:
    """A run record, and what loading it had to say."""

    record: RunRecord
    warnings: list[str] = field(default_factory=list)


class RunRecord:
    """The episode's run.json (`zray.episode.RunFile`) while a run plans and builds it."""

    def __init__(self, store: Store, identity: Identity, script: str, run: RunFile | None = None):
        self.store = store  # rooted at the episode folder
        self.identity = identity
        self.run = run if run is not None else RunFile(key_format=KEY_FORMAT)
        self.run.identity, self.run.script = identity, script
        self._last_flush = 0.0
        self._dirty = False

    @property
    def nodes(self) -> dict[str, NodeEntry]:
        return self.run.nodes

    @property
    def data(self) -> dict[str, Any]:
        """The run's own fields (last_run, engines, studio files, ...), as written."""
        return self.run.extra

    @property
    def key_format(self) -> int:
        return self.run.key_format

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
            run = RunFile.read(store)
        except RecordError as exc:
            warnings.append(_set_aside(store, f"is unreadable ({exc})", readonly=readonly))
            return Opened(cls(store, identity, script), warnings)
        if run is None:
            return Opened(cls(store, identity, script), warnings)
        problem = None
        if run.identity is not None and run.identity != identity:
            problem = f"belongs to episode {run.identity}, not {identity} (a copied folder?)"
        elif run.identity is None and not _same_script_name(run.script, script):
            problem = f"was made from {run.script!r}, not this episode's script"
        else:
            outside = layout.outside_paths(run.all_paths())
            if outside:
                problem = f"names files outside the episode folder ({outside[0]!r})"
        if problem is not None:
            warnings.append(_set_aside(store, problem, readonly=readonly))
            return Opened(cls(store, identity, script), warnings)
        previous = run.script
        if previous is not None and previous != script and not force:
            if _exists(previous):
                raise RunRecordConflict(
                    f"{store.root_url} holds episode {identity} made from {previous}, not {script}: two "
                    "scripts claim one folder; give one of them another file name or --project, or pass "
                    "--force to let this script take the folder over"
                )
            warnings.append(f"{identity}: the script moved from {previous} to {script}; same episode")
        return Opened(cls(store, identity, script, run), warnings)

    # --- what is current -----------------------------------------------------------------------

    def result(self, node: Node) -> Result:
        return self.nodes[node.id].typed_result(node.kind)

    def files(self, node_id: str) -> dict[str, FileRecord]:
        entry = self.nodes.get(node_id)
        return dict(entry.files) if entry is not None else {}

    def check(self, node: Node, stamps: Stamps) -> tuple[bool, str, str | None]:
        """(current, why not, warning): whether the node's files are the ones recorded under its key."""
        entry = self.nodes.get(node.id)
        if entry is None:
            return False, "not made yet", None
        if entry.key != node.key:
            return False, changed_reason(node, entry, made_from(node)), None
        try:
            # A step with dynamic outputs (the Shorts) is current with the files its result lists,
            # each one it may write (inside its folder).
            outputs = node.produced(self.result(node))
        except ValueError:
            return False, "its record is malformed", None
        if tuple(entry.outputs) != outputs:
            return False, "its files have other names", None
        missing = [path for path in outputs if path not in stamps]
        if missing:
            return False, f"{missing[0]} is missing", None
        intact, warning = self._files_intact(node.id, outputs, stamps)
        return intact, (warning or "").split(";")[0], warning

    def _files_intact(self, node_id: str, paths: Iterable[str], stamps: Stamps) -> tuple[bool, str | None]:
        entry = self.nodes[node_id]
        for path in paths:
            size, stamp = stamps[path]
            recorded = entry.files.get(path)
            if recorded is not None and (recorded.size, recorded.stamp) == (size, stamp):
                continue
            digest = self.store.checksum(path)
            if recorded is not None and digest != recorded.sha256:
                return False, f"{path} changed since it was made (damaged or edited); rebuilding it"
            # Same bytes under a new fingerprint (copied, touched), or a record from before zray kept
            # hashes: remember the file as it is now.
            entry.files[path] = FileRecord(digest, size, stamp)
            self._dirty = True
        return True, None

    def renamed(self, nodes: Iterable[Node], stamps: Stamps) -> list[tuple[Node, tuple[str, ...]]]:
        """Nodes whose content is current but whose files carry old names (a changed title)."""
        moves = []
        for node in nodes:
            entry = self.nodes.get(node.id)
            old = tuple(entry.outputs) if entry else ()
            if (
                entry
                and not node.request.dynamic_outputs  # those rename their own files (zray.pipeline.shorts)
                and entry.key == node.key
                and old != node.outputs
                and len(old) == len(node.outputs)
                and all(path in stamps for path in old)
                and self._files_intact(node.id, old, stamps)[0]
            ):
                moves.append((node, old))
        return moves

    def moved(self, node: Node, old: tuple[str, ...]) -> None:
        entry = self.nodes[node.id]
        entry.files = {
            new: entry.files[src] for src, new in zip(old, node.outputs, strict=True) if src in entry.files
        }
        entry.outputs = list(node.outputs)
        if "path" in entry.result:
            entry.result = {**entry.result, "path": node.outputs[0]}
        self._dirty = True

    def previous_outputs(self, node_id: str) -> tuple[str, ...]:
        entry = self.nodes.get(node_id)
        return tuple(entry.outputs) if entry else ()

    # --- changes -------------------------------------------------------------------------------

    def record(
        self, node: Node, result: Result, files: dict[str, FileRecord], step: dict[str, Any] | None = None
    ) -> None:
        self.nodes[node.id] = NodeEntry(
            key=node.key,
            outputs=list(node.produced(result)),
            result=to_json(result),
            files=dict(files),
            step=step or None,
            made_from=made_from(node),
        )
        self._dirty = True

    def keys(self) -> dict[str, str]:
        """Each recorded node's key."""
        return {node_id: entry.key for node_id, entry in self.nodes.items()}

    def rekey(self, node: Node) -> None:
        """The node's content is unchanged but its key is now written another way (a new key format)."""
        entry = self.nodes[node.id]
        entry.key = node.key
        entry.made_from = made_from(node)
        self._dirty = True

    def upgraded_keys(self) -> None:
        """Every key is now in the current format (the ones that were not recognised are rebuilt)."""
        self.run.key_format = KEY_FORMAT
        self._dirty = True

    def forget(self, node_ids: Iterable[str]) -> None:
        for node_id in node_ids:
            self.nodes.pop(node_id, None)
        self._dirty = True

    def set(self, **fields: Any) -> None:
        self.run.extra.update(fields)
        self._dirty = True

    def add_generated(self, *paths: str) -> None:
        for path in paths:
            if path not in self.run.generated and layout.inside(path):
                self.run.generated.append(path)
        self._dirty = True

    def clear_generated(self) -> None:
        self.run.generated = []
        self._dirty = True

    def generated_paths(self) -> list[str]:
        """Every file the record says zray made here (what `--clean` deletes)."""
        return layout.generated_paths(self.run.to_json())

    def flush(self, *, force: bool = False) -> None:
        """Write the record atomically; throttled unless forced, since a run records many artifacts."""
        now = time.monotonic()
        if not self._dirty or (not force and now - self._last_flush < FLUSH_INTERVAL):
            return
        try:
            self.run.write(self.store)
        except OSError as exc:  # a full disk, a store that went away
            reason = exc.strerror or str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise StoreError(
                f"cannot write the run record {self.store.url(layout.RUN_FILE)} ({reason}); "
                "what finished before is kept: fix the storage and run again"
            ) from None
        self._last_flush = now
        self._dirty = False


def made_from(node: Node) -> dict[str, Any]:
    """What a node's key was made from, kept in run.json so a later run can say what changed:
    each key field's digest and where it came from, its inputs' keys, its engine's identity."""
    return {
        "key_format": KEY_FORMAT,
        "step_version": STEP_VERSION[node.kind],
        "fields": field_digests(node.request),
        "sources": dict(node.sources),
        "inputs": {name: list(k) if isinstance(k, tuple) else k for name, k in node.input_keys.items()},
        "input_nodes": {name: list(r) if isinstance(r, tuple) else r for name, r in node.inputs.items()},
        "engine": dict(node.engine) if node.engine is not None else None,
    }


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


def _same_script_name(recorded: str | None, script: str) -> bool:
    if recorded is None:
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
    run = RunFile.finished(store)
    findings: list[Finding] = []
    checked = 0
    existing = store.stamps()
    for entry in run.nodes.values():
        for path in entry.outputs:
            recorded = entry.files.get(path)
            checked += 1
            if path not in existing:
                findings.append(Finding(path, "missing"))
            elif recorded is None:
                findings.append(Finding(path, "no hash recorded (made by an older zray); a rerun records it"))
            elif store.checksum(path) != recorded.sha256:
                findings.append(Finding(path, "damaged: its bytes differ from the ones zray wrote"))
    return checked, findings
