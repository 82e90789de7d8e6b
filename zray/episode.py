"""A finished episode folder, read back: what `zray upload` and `zray publish` work from.

The folder alone is enough (it may live in a bucket, far from the machine that made it): `run.json`
says which file is which and from what content it was made, and `script.json` is the script as run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from zray.pipeline.manifest import RUN_FILE
from zray.script import Script, check_data
from zray.store import Store

SCRIPT_FILE = "script.json"


class EpisodeError(ValueError):
    """An episode folder that zray did not finish (or that is not an episode folder at all)."""


@dataclass
class Episode:
    store: Store  # rooted at the episode folder: keys are relative to it
    script: Script
    record: dict[str, Any]

    @property
    def url(self) -> str:
        return self.store.root_url

    @property
    def languages(self) -> list[str]:
        return [lang for lang in self.script.languages if f"video:{lang}" in self.record.get("nodes", {})]

    def _node(self, node_id: str) -> dict[str, Any]:
        node = self.record.get("nodes", {}).get(node_id)
        if node is None:
            raise EpisodeError(
                f"{self.url}: {node_id} was never finished; run `zray run` on the script first"
            )
        return node

    def _relative(self, key: str) -> str:
        return key.split("/", 2)[2] if key.count("/") >= 2 else key

    def video(self, lang: str) -> str:
        """Key (relative to the episode folder) of the language's finished video."""
        return self._relative(self._node(f"video:{lang}")["outputs"][0])

    def content_key(self, lang: str) -> str:
        """What the video was made from: changes whenever its picture or sound would."""
        return str(self._node(f"video:{lang}")["key"])

    def duration(self, lang: str) -> float:
        return float(self._node(f"video:{lang}")["result"]["duration"])

    def thumbnail(self, lang: str) -> str:
        return self._relative(self._node(f"thumbs:{lang}")["outputs"][0])

    def subtitles(self, lang: str, *, fmt: str = "srt") -> str:
        srt, vtt, _ = self._node(f"subs:{lang}")["outputs"]
        return self._relative(srt if fmt == "srt" else vtt)

    def chapters(self, lang: str) -> str:
        """The YouTube chapter list ("0:00 Title" lines), empty when YouTube would ignore it."""
        key = self._relative(self._node(f"subs:{lang}")["outputs"][2])
        return self.store.read_text(key) if self.store.exists(key) else ""


def open_episode(url: str) -> Episode:
    """Read an episode folder (a local path or any fsspec URL) that `zray run` finished."""
    store = Store(url)
    if not store.exists(RUN_FILE):
        raise EpisodeError(f"{url}: no {RUN_FILE} here; is this an episode folder made by `zray run`?")
    if not store.exists(SCRIPT_FILE):
        raise EpisodeError(f"{url}: no {SCRIPT_FILE} here; run `zray run` on the script again to write it")
    try:
        record = json.loads(store.read_text(RUN_FILE))
        data = json.loads(store.read_text(SCRIPT_FILE))
    except ValueError as exc:
        raise EpisodeError(f"{url}: unreadable {RUN_FILE} or {SCRIPT_FILE} ({exc})") from None
    checked = check_data(data, filename=str(record.get("script", "")))
    if not checked.ok or checked.script is None:
        first = checked.errors[0].render(SCRIPT_FILE) if checked.errors else SCRIPT_FILE
        raise EpisodeError(f"{url}: {first}")
    return Episode(store=store, script=checked.script, record=record)
