"""review.json: what a person decided about an episode, with who decided and when.

Three kinds of decision, each an input of something else:

- approvals, read by the upload gate: an approval names the content keys of what was looked at
  (a language's long video, or all of its Shorts), so a rebuild that changes a key (a new picture,
  an edited line, an upgrade of zray that changes video keys) withdraws it by itself;
- a new seed for one scene's picture (and so its generated clip), a new seed for its generated
  clip alone (the picture kept), and the official thumbnail variant of a language: inputs of the
  plan (`ReviewOverrides`), so they change exactly the keys they affect and the next run rebuilds
  only those.

The record lives in the episode folder (`zray.episode` names the file, `ReviewRecord.of` reads it
for an episode); it carries the episode's identity like every record there. Its writes go
through `update_review`, which holds the episode lock and reads the record afresh before
changing it. Stdlib only: the plan imports it.
"""

from __future__ import annotations

import getpass
import logging
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from zray.episode import (
    REVIEW_FILE,
    Episode,
    Identity,
    RecordError,
    now_iso,
    read_json,
    video_node,
    write_json,
)
from zray.store import Store

log = logging.getLogger("zray")

SEED_LIMIT = 2**32  # seeds are unsigned 32-bit, as `seed_from` makes them
HISTORY_LIMIT = 500  # the audit trail keeps the newest decisions
SHORTS_SUFFIX = "/shorts"


class ForeignReview(RecordError):
    """review.json of another episode (a copied folder): its decisions are not this episode's."""


def who() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def shorts_name(lang: str) -> str:
    """The approval of a language's Shorts, kept apart from its long video's."""
    return f"{lang}{SHORTS_SUFFIX}"


def random_seed() -> int:
    return secrets.randbelow(SEED_LIMIT)


# --- what the plan reads ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SceneSeed:
    scene_id: str  # the id the scene had when its seed was chosen
    seed: int


@dataclass(frozen=True)
class ReviewOverrides:
    """The plan's inputs from review.json.

    A seed is chosen for the scene at a 0-based position of the script, and applies only while
    the scene there keeps the id it had: inserting a scene before it does not hand its seed to a
    neighbour. A thumbnail variant is numbered from 1, as its files are; one the script no longer
    has falls back to variant 1.
    """

    seeds: Mapping[int, SceneSeed] = field(default_factory=dict)
    thumbnails: Mapping[str, int] = field(default_factory=dict)
    clip_seeds: Mapping[int, SceneSeed] = field(default_factory=dict)  # a new clip, the picture kept

    def seed_for(self, index: int, scene_id: str) -> int | None:
        return _chosen(self.seeds, index, scene_id)

    def clip_seed_for(self, index: int, scene_id: str) -> int | None:
        return _chosen(self.clip_seeds, index, scene_id)

    def thumbnail_for(self, lang: str, variants: int) -> int:
        variant = self.thumbnails.get(lang, 1)
        return variant if 1 <= variant <= variants else 1


def _chosen(seeds: Mapping[int, SceneSeed], index: int, scene_id: str) -> int | None:
    chosen = seeds.get(index)
    return chosen.seed if chosen is not None and chosen.scene_id == scene_id else None


# --- the record ------------------------------------------------------------------------------------


def _stamp_problem(entry: Mapping[str, Any]) -> str | None:
    if not isinstance(entry.get("by", ""), str) or not isinstance(entry.get("at", ""), str):
        return "has a `by` or `at` that is not text"
    return None


def _approval_problem(entry: Any) -> str | None:
    if not isinstance(entry, dict):
        return "must be an object"
    keys = entry.get("keys")
    if (
        not isinstance(keys, dict)
        or not keys
        or not all(isinstance(k, str) and isinstance(v, str) for k, v in keys.items())
    ):
        return "has no `keys` (node id -> content key)"
    return _stamp_problem(entry)


def _seed_problem(entry: Any) -> str | None:
    if not isinstance(entry, dict):
        return "must be an object"
    seed = entry.get("seed")
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < SEED_LIMIT:
        return f"has a seed that is not a whole number from 0 to {SEED_LIMIT - 1}"
    if not isinstance(entry.get("scene_id"), str):
        return "has no scene_id"
    return _stamp_problem(entry)


def _variant_problem(entry: Any) -> str | None:
    if not isinstance(entry, dict):
        return "must be an object"
    variant = entry.get("variant")
    if not isinstance(variant, int) or isinstance(variant, bool) or variant < 1:
        return "has a variant that is not a number from 1"
    return _stamp_problem(entry)


_SECTIONS: dict[str, Callable[[Any], str | None]] = {
    "approvals": _approval_problem,
    "scenes": _seed_problem,
    "clips": _seed_problem,
    "thumbnails": _variant_problem,
}


class ReviewRecord:
    """review.json, read whole and checked; change it through `update_review` (under the lock)."""

    def __init__(self, store: Store, identity: Identity):
        self.store, self.identity = store, identity
        self.approvals: dict[str, dict[str, Any]] = {}
        self.scenes: dict[str, dict[str, Any]] = {}  # str(index) -> {scene_id, seed, by, at}
        self.clips: dict[str, dict[str, Any]] = {}  # the same, for a scene's generated clip
        self.thumbnails: dict[str, dict[str, Any]] = {}  # lang -> {variant, by, at}
        self.history: list[dict[str, Any]] = []
        self._load()

    @classmethod
    def of(cls, episode: Episode) -> ReviewRecord:
        """The episode's review.json: approvals, scene seeds and thumbnail choices."""
        return cls(episode.store, episode.identity)

    @property
    def url(self) -> str:
        return self.store.url(REVIEW_FILE)

    def _load(self) -> None:
        data = read_json(self.store, REVIEW_FILE, what="the review record")
        if data is None:
            return
        fix = f"fix it or move {REVIEW_FILE} out of the folder"
        if not isinstance(data, dict):
            raise RecordError(f"{self.url}: the review record must be a JSON object; {fix}")
        # Like the other records, one written by hand without an identity is taken as this episode's.
        theirs = Identity.from_json(data["identity"]) if "identity" in data else self.identity
        if theirs is None:
            raise RecordError(f"{self.url}: its identity is malformed; {fix}")
        if theirs != self.identity:
            raise ForeignReview(
                f"{self.url} belongs to episode {theirs}, not {self.identity} (a copied folder?); "
                f"move {REVIEW_FILE} out of this folder: its decisions are that episode's"
            )
        for section, problem_of in _SECTIONS.items():
            entries = data.get(section, {})
            if not isinstance(entries, dict):
                raise RecordError(f"{self.url}: `{section}` must be a JSON object; {fix}")
            for name, entry in entries.items():
                problem = problem_of(entry)
                if section in ("scenes", "clips") and not name.isdigit():
                    problem = "is not a scene's position (0, 1, ...)"
                if problem:
                    raise RecordError(f"{self.url}: {section} entry {name!r} {problem}; {fix}")
            setattr(self, section, {name: dict(entry) for name, entry in entries.items()})
        history = data.get("history", [])
        self.history = [h for h in history if isinstance(h, dict)] if isinstance(history, list) else []

    # --- reading -----------------------------------------------------------------------------------

    def approval(self, name: str) -> dict[str, Any] | None:
        entry = self.approvals.get(name)
        return dict(entry) if entry is not None else None

    def approved(self, name: str, keys: Mapping[str, str]) -> bool:
        """True when `name` was approved for exactly these content keys."""
        entry = self.approvals.get(name)
        return entry is not None and bool(keys) and entry["keys"] == dict(keys)

    def state(self, name: str, keys: Mapping[str, str]) -> str:
        """`approved`, `outdated` (approved, but what it names was rebuilt since) or `none`."""
        if name not in self.approvals:
            return "none"
        return "approved" if self.approved(name, keys) else "outdated"

    def overrides(self) -> ReviewOverrides:
        return ReviewOverrides(
            seeds={int(i): SceneSeed(e["scene_id"], e["seed"]) for i, e in self.scenes.items()},
            thumbnails={lang: e["variant"] for lang, e in self.thumbnails.items()},
            clip_seeds={int(i): SceneSeed(e["scene_id"], e["seed"]) for i, e in self.clips.items()},
        )

    # --- changing (under the lock, see update_review) ----------------------------------------------

    def _stamp(self, action: str, target: str, **detail: Any) -> dict[str, Any]:
        stamp = {"by": who(), "at": now_iso()}
        self.history = [*self.history, {"action": action, "target": target, **detail, **stamp}][
            -HISTORY_LIMIT:
        ]
        return stamp

    def approve(self, name: str, keys: Mapping[str, str]) -> None:
        if not keys:
            raise ValueError(f"nothing to approve for {name}")
        self.approvals[name] = {"keys": dict(keys), **self._stamp("approve", name, keys=dict(keys))}

    def withdraw(self, name: str) -> None:
        if self.approvals.pop(name, None) is not None:
            self._stamp("withdraw", name)

    def set_seed(self, index: int, scene_id: str, seed: int | None) -> None:
        """A new seed for the picture of the scene at `index` (its generated clip follows it); None
        goes back to the one the plan derives."""
        self._set_seed(self.scenes, "seed", index, scene_id, seed)

    def set_clip_seed(self, index: int, scene_id: str, seed: int | None) -> None:
        """A new seed for the generated clip of the scene at `index`, its picture kept; None goes
        back to the one derived from the picture's seed."""
        self._set_seed(self.clips, "clip seed", index, scene_id, seed)

    def _set_seed(
        self, section: dict[str, dict[str, Any]], action: str, index: int, scene_id: str, seed: int | None
    ) -> None:
        if seed is None:
            if section.pop(str(index), None) is not None:
                self._stamp(action, f"scene {index}", seed=None)
            return
        if not 0 <= seed < SEED_LIMIT:
            raise ValueError(f"seed {seed}: use a whole number from 0 to {SEED_LIMIT - 1}")
        section[str(index)] = {
            "scene_id": scene_id,
            "seed": seed,
            **self._stamp(action, f"scene {index}", seed=seed),
        }

    def set_thumbnail(self, lang: str, variant: int) -> None:
        if variant < 1:
            raise ValueError(f"variant {variant}: variants are numbered from 1")
        if variant == 1:  # the default: no entry, so the thumbnail key stays what it always was
            if self.thumbnails.pop(lang, None) is not None:
                self._stamp("thumbnail", lang, variant=1)
            return
        self.thumbnails[lang] = {"variant": variant, **self._stamp("thumbnail", lang, variant=variant)}

    def save(self) -> None:
        if not (self.approvals or self.scenes or self.clips or self.thumbnails or self.history):
            self.store.remove(REVIEW_FILE)
            return
        write_json(
            self.store,
            REVIEW_FILE,
            {
                "identity": self.identity.to_json(),
                "approvals": self.approvals,
                "scenes": self.scenes,
                **({"clips": self.clips} if self.clips else {}),
                "thumbnails": self.thumbnails,
                "history": self.history,
            },
        )


def update_review(
    store: Store, identity: Identity, change: Callable[[ReviewRecord], None], *, command: str
) -> ReviewRecord:
    """Read the record afresh under the episode lock, apply `change`, write it atomically."""
    from zray.lock import episode_lock

    with episode_lock(store, command=command):
        record = ReviewRecord(store, identity)
        change(record)
        record.save()
    return record


def plan_overrides(store: Store, identity: Identity) -> ReviewOverrides:
    """What the plan takes from the folder's review.json. Another episode's record (a copied
    folder) is ignored with a warning; an unreadable one stops the run (RecordError)."""
    try:
        return ReviewRecord(store, identity).overrides()
    except ForeignReview as exc:
        log.warning("%s; its seeds and thumbnail choices are ignored", exc)
        return ReviewOverrides()


# --- the gate --------------------------------------------------------------------------------------


def video_keys(episode: Episode, lang: str) -> dict[str, str]:
    """What approving a language's long video binds to: its content key."""
    return {video_node(lang): episode.content_key(lang)}


def short_keys(episode: Episode, lang: str) -> dict[str, str]:
    """What approving a language's Shorts binds to: the content key of each of them (`short:es:01`),
    as the language's Shorts step recorded them (`Episode.shorts`)."""
    return {f"short:{lang}:{short.number:02d}": short.key for short in episode.shorts(lang)}


def not_approved_line(lang: str, folder: str) -> str:
    return f"{lang}: not approved in review (zray review {folder})"


def unapproved(episode: Episode, langs: Iterable[str]) -> list[str]:
    """The languages whose current long video is not approved (RecordError for a bad record)."""
    record = ReviewRecord.of(episode)
    return [lang for lang in langs if not record.approved(lang, video_keys(episode, lang))]


def unapproved_shorts(episode: Episode, langs: Iterable[str]) -> list[str]:
    """The languages with Shorts whose current Shorts are not approved."""
    record = ReviewRecord.of(episode)
    return [
        lang
        for lang in langs
        if (keys := short_keys(episode, lang)) and not record.approved(shorts_name(lang), keys)
    ]
