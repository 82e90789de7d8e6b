"""Why a node is stale, in words a person can act on: the script's JSON path or the setting that
changed, the input node, the engine, or the missing file.

run.json keeps, per node, what its key was made from (`records.made_from`: a digest of each key field
and of each of its parts, where each field came from, its inputs' keys and node ids, its engine's
identity, the key format and step version). A stale node's reason compares that with the node the
plan asks for now: `tts:es:0: scenes.0.script_es changed`, `pad:es:0: audio.scene_gap changed`,
`video:es: input pad:es:0 changed`, `image:3: engine storyboard 1 -> 2`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from zray.episode import NodeEntry
from zray.nodes import Node

MAX_NAMED = 3  # changes named in one reason; the rest are counted


def changed_reason(node: Node, entry: NodeEntry, now: Mapping[str, Any]) -> str:
    """What changed between the record's `entry` and the node the plan asks for (`now`: its
    `made_from`), e.g. "scenes.0.script_es changed"; a generic reason for a record that kept nothing."""
    before = entry.made_from
    if not before:
        return "what it is made from changed (recorded before zray kept why)"
    changes: list[str] = []
    if (before.get("key_format"), before.get("step_version")) != (now["key_format"], now["step_version"]):
        if before.get("key_format") != now["key_format"]:
            changes.append(f"key format {before.get('key_format')} -> {now['key_format']}")
        else:
            changes.append(f"step {node.kind.value} {before.get('step_version')} -> {now['step_version']}")
    engine = _engine_change(before.get("engine"), now.get("engine"))
    if engine:
        changes.append(engine)
    changes += [
        f"{name} changed" for name in _changed_fields(before.get("fields") or {}, now["fields"], node)
    ]
    changes += _changed_inputs(before, now)
    if not changes:
        return "what it is made from changed"
    extra = len(changes) - MAX_NAMED
    return ", ".join(changes[:MAX_NAMED]) + (f" and {extra} more" if extra > 0 else "")


def _engine_change(before: Any, now: Any) -> str | None:
    if before == now:
        return None
    if not isinstance(before, dict) or not isinstance(now, dict):
        return "engine changed"
    name, old_name = now.get("engine", "?"), before.get("engine", "?")
    if name != old_name:
        return f"engine {old_name} -> {name}"
    if before.get("version") != now.get("version"):
        return f"engine {name} {before.get('version')} -> {now.get('version')}"
    setting = next(k for k in sorted({*before, *now}) if before.get(k) != now.get(k))
    return f"engine {name} {setting} changed"


def _changed_fields(before: Mapping[str, str], now: Mapping[str, str], node: Node) -> list[str]:
    """The deepest parts that differ, each named by where it comes from (`node.sources`)."""
    differ = {path for path in {*before, *now} if before.get(path) != now.get(path)}
    deepest = sorted(
        (p for p in differ if not any(q.startswith(p + ".") for q in differ)),
        key=lambda p: [int(x) if x.isdigit() else x for x in p.split(".")],
    )
    named = [_source(path, node.sources) for path in deepest]
    return list(dict.fromkeys(named))


def _source(path: str, sources: Mapping[str, str]) -> str:
    """A request field's path as the user knows it: the longest prefix with a source, then the rest."""
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        prefix = ".".join(parts[:cut])
        if prefix in sources:
            return ".".join([sources[prefix], *parts[cut:]])
    return path


def _changed_inputs(before: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    changes = []
    old_keys, new_keys = before.get("inputs") or {}, now["inputs"]
    new_ids = now["input_nodes"]
    for name in sorted({*old_keys, *new_keys}):
        old, new = old_keys.get(name), new_keys.get(name)
        if old == new:
            continue
        ids = new_ids.get(name)
        if isinstance(new, list) and isinstance(old, list) and len(old) == len(new):
            changes += [f"input {ids[i]} changed" for i in range(len(new)) if old[i] != new[i] and ids[i]]
        elif isinstance(new, str) and isinstance(old, str):
            changes.append(f"input {ids} changed")
        else:
            changes.append(f"input {name} changed")
    return changes
