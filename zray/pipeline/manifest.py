"""`run.json`: what each artifact of the episode was made from, and what the last run did.

A file counts as current only when the manifest records it under the content key the plan
expects. Entries are written only after their files are complete, and an entry is dropped
before its files are rebuilt, so a crash at any point leaves nothing that a later run trusts.
"""

from __future__ import annotations

import json
import time
from typing import Any

from zray.pipeline.plan import Node, Plan
from zray.store import Store

RUN_FILE = "run.json"
FLUSH_INTERVAL = 2.0


class Manifest:
    def __init__(self, store: Store, episode: str, data: dict[str, Any] | None = None):
        self.store = store
        self.key = f"{episode}/{RUN_FILE}"
        self.data: dict[str, Any] = data or {}
        self.nodes: dict[str, dict[str, Any]] = dict(self.data.get("nodes", {}))
        self._last_flush = 0.0
        self._dirty = False

    @classmethod
    def load(cls, store: Store, episode: str) -> Manifest:
        key = f"{episode}/{RUN_FILE}"
        try:
            data = json.loads(store.read_text(key)) if store.exists(key) else {}
        except (ValueError, OSError):
            data = {}  # an unreadable record trusts nothing: everything is rebuilt
        return cls(store, episode, data if isinstance(data, dict) else {})

    # --- what is current ------------------------------------------------------------------------

    def is_current(self, node: Node, existing: set[str]) -> bool:
        entry = self.nodes.get(node.id)
        return (
            entry is not None
            and entry.get("key") == node.key
            and tuple(entry.get("outputs", ())) == node.outputs
            and all(path in existing for path in node.outputs)
        )

    def result(self, node_id: str) -> dict[str, Any]:
        return self.nodes[node_id]["result"]

    def renamed(self, plan: Plan, existing: set[str]) -> list[tuple[Node, tuple[str, ...]]]:
        """Nodes whose content is current but whose files carry old names (a changed title)."""
        moves = []
        for node in plan.nodes.values():
            entry = self.nodes.get(node.id)
            old = tuple(entry.get("outputs", ())) if entry else ()
            if (
                entry
                and entry.get("key") == node.key
                and old != node.outputs
                and len(old) == len(node.outputs)
            ) and all(path in existing for path in old):
                moves.append((node, old))
        return moves

    # --- changes ----------------------------------------------------------------------------------

    def record(self, node: Node, result: dict[str, Any]) -> None:
        self.nodes[node.id] = {"key": node.key, "outputs": list(node.outputs), "result": result}
        self._dirty = True

    def forget(self, node_ids: list[str]) -> None:
        for node_id in node_ids:
            self.nodes.pop(node_id, None)
        self._dirty = True

    def previous_outputs(self, node_id: str) -> tuple[str, ...]:
        entry = self.nodes.get(node_id)
        return tuple(entry.get("outputs", ())) if entry else ()

    def flush(self, *, force: bool = False, **fields: Any) -> None:
        """Write the record atomically; throttled unless forced, since a run records many artifacts."""
        if fields:
            self.data.update(fields)
            self._dirty = True
        now = time.monotonic()
        if not self._dirty or (not force and now - self._last_flush < FLUSH_INTERVAL):
            return
        self.data["nodes"] = self.nodes
        self.store.write_text(self.key, json.dumps(self.data, indent=1, ensure_ascii=False, sort_keys=True))
        self._last_flush = now
        self._dirty = False


def stale_nodes(plan: Plan, manifest: Manifest, existing: set[str]) -> list[Node]:
    """Nodes to run, in plan order: targets that are not current and the stale inputs they need.

    A current artifact stops the walk, so a finished video is not rebuilt just because an
    intermediate file was deleted.
    """
    needed: set[str] = set()
    seen: set[str] = set()

    def visit(node: Node) -> None:
        if node.id in seen:
            return
        seen.add(node.id)
        if manifest.is_current(node, existing):
            return
        needed.add(node.id)
        for dep in node.deps:
            visit(plan.nodes[dep])

    for target in plan.targets():
        visit(target)
    return [n for n in plan.nodes.values() if n.id in needed]
