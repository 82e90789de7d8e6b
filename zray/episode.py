"""The episode folder's one owner: every file name of its layout, its records, its identity.

An episode folder (`<output>/<project>/<script stem>/`) holds what zray generated (videos,
subtitles, thumbnails, assets), the records that say what each file is (`run.json`), what was
published (`published.json`, `upload_state.json`) and what a person decided (`review.json`), and
anything a user put there. Every other module asks this one for names and records, so the rules
that keep the folder trustworthy live in one place:

- A record carries the episode's identity (project, saga, episode). A record of another
  episode (a copied folder) is never acted on: a run sets its run.json aside and starts fresh;
  publishing refuses another episode's upload records.
- Paths in records are relative to the folder and may never leave it, so nothing a record says
  can make zray delete, move or overwrite a file elsewhere.
- A record that cannot be read, or has the wrong shape, is an error naming the file and the fix;
  it is never read as "empty" where that could upload a video twice.

Stdlib plus the store: planning and publishing import it without media or Ray.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import posixpath
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from zray.errors import ZrayError
from zray.keys import KEY_FORMAT, content_tag, safe_name
from zray.store import FileRecord, Store, StoreError

if TYPE_CHECKING:
    from zray.nodes import Kind, Result, ShortFile

# --- file names ------------------------------------------------------------------------------------

RUN_FILE = "run.json"
PUBLISHED_FILE = "published.json"
UPLOAD_STATE_FILE = "upload_state.json"
REVIEW_FILE = "review.json"
SCRIPT_FILE = "script.json"
REPORT_FILE = "report.html"
# The lock lives beside the folder, not in it: taking it never changes the folder, and a copied
# folder does not carry another episode's lock.
LOCK_SUFFIX = ".zray-lock"
LOGS_DIR = "logs"
ASSETS_DIR = "assets"
SEGMENTS_DIR = "assets/tmp/segments"
AUDIO_CACHE_DIR = "assets/tmp/audio"
SHORTS_DIR = "shorts"
SHORTS_WORK_DIR = "assets/tmp/shorts"
SEGMENT_EXT = ".h264"

# Records a person or a channel depends on: `--clean` never touches them.
KEPT_RECORDS = frozenset({PUBLISHED_FILE, UPLOAD_STATE_FILE, REVIEW_FILE})


def lock_name(folder: str) -> str:
    """The lock of episode folder `folder` (its last path component), in the folder's parent."""
    return f".{folder}{LOCK_SUFFIX}"


class EpisodeError(ZrayError):
    """An episode folder that cannot be used as asked; the message names the file and the fix."""


class RecordError(EpisodeError):
    """A record that is unreadable, of the wrong shape, or another episode's."""


def scene_image(label: str) -> str:
    return f"{ASSETS_DIR}/common/img_{label}.png"


def music_bed(key: str, seconds: float) -> str:
    return f"{ASSETS_DIR}/common/bg_music_common_{key[:8]}_{seconds:g}s.wav"


def intro_copy(digest: str, suffix: str) -> str:
    """Where the intro clip is kept beside the episode (workers on other machines read it there)."""
    return f"{ASSETS_DIR}/common/intro_{digest[:16]}{suffix.lower() or '.mp4'}"


def studio_file(digest: str, suffix: str) -> str:
    """Where a studio's own file (image_file, clip_file, thumbnail_file) is kept beside the episode,
    named by its content, so workers on other machines read it there."""
    return f"{ASSETS_DIR}/sources/{digest[:16]}{suffix.lower()}"


def raw_speech(lang: str, label: str, key: str) -> str:
    return f"{ASSETS_DIR}/{lang}/raw/audio_{lang}_{label}_{key}_raw.wav"


def padded_speech(lang: str, label: str, key: str) -> str:
    return f"{ASSETS_DIR}/{lang}/padding/audio_{lang}_{label}_{key}.wav"


def thumbnail_base(lang: str) -> str:
    return f"{ASSETS_DIR}/thumbnails/thumbnail_raw_{lang}.png"


def thumbnail_variant(lang: str, number: int) -> str:
    return f"{ASSETS_DIR}/thumbnails/thumbnail_{lang}_v{number}.png"


def thumbnail(lang: str) -> str:
    return f"thumbnail_{lang}.png"


def subtitles(lang: str, fmt: str) -> str:
    """`srt`, `vtt`, or `words.json` (word timings in seconds of the final video)."""
    return f"subtitles_{lang}.{fmt}"


def chapters(lang: str) -> str:
    return f"chapters_{lang}.txt"


def segment(name: str, key: str) -> str:
    return f"{SEGMENTS_DIR}/{name}_{key}{SEGMENT_EXT}"


def audio_chunk(lang: str, key: str) -> str:
    return f"{AUDIO_CACHE_DIR}/{lang}/chunk_{key}.aac"


def scene_clip(label: str, key: str) -> str:
    """A scene's generated clip (motion "generate"), at the size and rate the video engine made it."""
    return f"{ASSETS_DIR}/common/clip_{label}_{key[:12]}.mp4"


def vertical_image(label: str) -> str:
    """A scene's vertical picture for the Shorts (`shorts.images = "generate"`)."""
    return f"{ASSETS_DIR}/common/img_v_{label}.png"


def vertical_clip(label: str, key: str) -> str:
    """A scene's vertical clip for the Shorts (`shorts.images = "generate"`, motion "generate")."""
    return f"{ASSETS_DIR}/common/clip_v_{label}_{key[:12]}.mp4"


def shorts_work(lang: str) -> str:
    """The Shorts step's own records for a language: its index of rendered Shorts, their AAC chunks."""
    return f"{SHORTS_WORK_DIR}/{lang}"


def video(code: str, lang: str, title: str) -> str:
    return f"{code}-{lang.upper()}-{safe_name(title)}.mp4"


def short(code: str, lang: str, number: int, title: str, ext: str = "mp4") -> str:
    return f"{SHORTS_DIR}/{lang}/{code}-{lang.upper()}-{number:02d}-{safe_name(title)}.{ext}"


def log_file(title: str, stamp: str) -> str:
    return f"{LOGS_DIR}/{safe_name(title)}_{stamp}.log"


def inside(path: str) -> bool:
    """True for a path that names a file inside the folder (relative, no `..`, not a record)."""
    if not isinstance(path, str) or not path or path.startswith(("/", "\\")) or "\\" in path:
        return False
    if "://" in path or ":" in path.split("/", 1)[0]:
        return False
    parts = path.split("/")
    return all(part not in ("", ".", "..") for part in parts) and posixpath.normpath(path) == path


# --- identity --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Identity:
    """Which episode a folder and its records belong to. It never changes with a rebuild, a title
    edit or an upgrade of zray, so it can name the episode on YouTube too (`slot`)."""

    project: str
    saga: int
    episode: int

    @property
    def code(self) -> str:
        return f"S{self.saga:02d}E{self.episode:02d}"

    def to_json(self) -> dict[str, Any]:
        return {"project": self.project, "saga": self.saga, "episode": self.episode}

    @classmethod
    def from_json(cls, data: Any) -> Identity | None:
        if not isinstance(data, Mapping):
            return None
        project, saga, episode = data.get("project"), data.get("saga"), data.get("episode")
        if not isinstance(project, str) or not _whole(saga) or not _whole(episode):
            return None
        return cls(project, int(saga), int(episode))

    def slot(self, lang: str, part: str = "") -> str:
        """A stable tag naming one video of this episode (a language's long video, or one of its
        Shorts): the same for every rebuild, so YouTube itself can say whether it was uploaded."""
        payload = json.dumps([self.project, self.saga, self.episode, lang, part], ensure_ascii=False)
        return "zray-" + hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]

    def __str__(self) -> str:
        return f"{self.project}/{self.code}"


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


# --- records ---------------------------------------------------------------------------------------


def read_json(store: Store, key: str, *, what: str) -> Any:
    """A record's parsed JSON, None when absent; RecordError naming the file when unreadable."""
    try:
        if not store.exists(key):
            return None
        text = store.read_text(key)
    except UnicodeDecodeError:
        raise RecordError(f"{store.url(key)}: {what} is not UTF-8 text; {_move_away(key)}") from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise RecordError(f"{store.url(key)}: {what} is not valid JSON ({exc}); {_move_away(key)}") from None
    except RecursionError:
        raise RecordError(f"{store.url(key)}: {what} is nested too deep; {_move_away(key)}") from None


def write_json(store: Store, key: str, data: Any) -> None:
    store.write_text(key, json.dumps(data, indent=1, ensure_ascii=False, sort_keys=True) + "\n")


def _move_away(key: str) -> str:
    return f"fix it or move {key} out of the folder"


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class KeyedRecord:
    """A record of entries by name (a language, a Short), stamped with the episode's identity.

    `check_entry` says what is wrong with one entry (None when it is fine): a record with a bad
    entry is refused whole, since guessing could publish twice. Writes are atomic, and the whole
    record is rewritten on every change.
    """

    def __init__(
        self,
        store: Store,
        key: str,
        identity: Identity,
        *,
        what: str,
        section: str,
        check_entry: Callable[[Any], str | None],
    ):
        self.store, self.key, self.identity, self.what = store, key, identity, what
        self.section = section
        self._check_entry = check_entry
        self.entries: dict[str, dict[str, Any]] = {}
        self.extra: dict[str, Any] = {}
        self._load()

    def _load(self) -> None:
        data = read_json(self.store, self.key, what=self.what)
        if data is None:
            return
        url = self.store.url(self.key)
        if not isinstance(data, dict):
            raise RecordError(f"{url}: {self.what} must be a JSON object; {_move_away(self.key)}")
        if "identity" in data:
            theirs = Identity.from_json(data["identity"])
            if theirs is None:
                raise RecordError(f"{url}: its identity is malformed; {_move_away(self.key)}")
            if theirs != self.identity:
                raise RecordError(
                    f"{url} belongs to episode {theirs}, not {self.identity} (a copied folder?); "
                    f"move {self.key} out of this folder: what it records is that episode's"
                )
            entries = data.get(self.section, {})
            self.extra = {k: v for k, v in data.items() if k not in ("identity", self.section)}
        else:
            entries = data  # records written before they carried an identity: entries at the top
        if not isinstance(entries, dict):
            raise RecordError(f"{url}: `{self.section}` must be a JSON object; {_move_away(self.key)}")
        for name, entry in entries.items():
            problem = self._check_entry(entry)
            if problem:
                raise RecordError(f"{url}: entry {name!r} {problem}; {_move_away(self.key)}")
        self.entries = {name: dict(entry) for name, entry in entries.items()}

    def get(self, name: str) -> dict[str, Any] | None:
        entry = self.entries.get(name)
        return dict(entry) if entry is not None else None

    def put(self, name: str, entry: dict[str, Any] | None) -> None:
        """Set (or, with None, drop) one entry and write the record at once."""
        if entry is None:
            if name not in self.entries:
                return
            del self.entries[name]
        else:
            problem = self._check_entry(entry)
            if problem:
                raise ValueError(f"{self.what} entry {name!r} {problem}")
            self.entries[name] = dict(entry)
        self.save()

    def save(self) -> None:
        if not self.entries and not self.extra:
            self.store.remove(self.key)
            return
        write_json(
            self.store,
            self.key,
            {"identity": self.identity.to_json(), self.section: self.entries, **self.extra},
        )


def _published_entry_problem(entry: Any) -> str | None:
    if not isinstance(entry, dict):
        return f"must be an object with a video_id, not {type(entry).__name__}"
    video_id = entry.get("video_id")
    if not isinstance(video_id, str) or not video_id:
        return "has no video_id"
    return None


def _session_problem(entry: Any) -> str | None:
    if not isinstance(entry, dict):
        return f"must be an object, not {type(entry).__name__}"
    uri = entry.get("session_uri")
    if not isinstance(uri, str) or not uri:
        return "has no session_uri"
    # The uploader asks YouTube about the session with these: a wrong one must not pass as "none".
    for name in ("size", "progress"):
        value = entry.get(name, 0)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            return f"has a {name} that is not a byte count"
    if not isinstance(entry.get("content_key", ""), str):
        return "has a content_key that is not text"
    return None


def published_record(store: Store, identity: Identity) -> KeyedRecord:
    """`published.json`: per video slot (a language, or `<lang>/short-<nn>`), what YouTube holds."""
    return KeyedRecord(
        store,
        PUBLISHED_FILE,
        identity,
        what="the upload record",
        section="videos",
        check_entry=_published_entry_problem,
    )


def upload_state(store: Store, identity: Identity) -> KeyedRecord:
    """`upload_state.json`: resumable upload sessions in progress, per video slot."""
    return KeyedRecord(
        store,
        UPLOAD_STATE_FILE,
        identity,
        what="the upload session record",
        section="sessions",
        check_entry=_session_problem,
    )


def scene_labels(script: Any) -> list[str]:
    """File-name labels for a script's scenes (`zray.script.Script`), also in node ids: their ids made
    safe, disambiguated if two collapse to one."""
    labels = [safe_name(str(s.scene_id), fallback="scene") for s in script.scenes]
    if len(set(labels)) == len(labels):
        return labels
    return [f"{i:03d}_{label}" for i, label in enumerate(labels)]


# --- node ids --------------------------------------------------------------------------------------


def node_id(kind: str, *parts: str) -> str:
    """A node's id in the plan and in run.json: its kind, then what it is of (a language, a scene's
    label), e.g. `video:es`, `tts:es:3`, `image:3`. Every id is built here."""
    return ":".join((str(kind), *parts))


def video_node(lang: str) -> str:
    return node_id("video", lang)


def thumbs_node(lang: str) -> str:
    return node_id("thumbs", lang)


def subs_node(lang: str) -> str:
    return node_id("subs", lang)


def shorts_node(lang: str) -> str:
    return node_id("shorts", lang)


# --- run.json --------------------------------------------------------------------------------------

RUN_FORMAT = 2  # paths relative to the episode folder (format 1 named them from the output root)


@dataclass
class NodeEntry:
    """One node in run.json: the key it was made under, its files with their records, its result
    (as the step returned it; `typed_result` reads it back typed), how it ran, and what it was made
    from (each key field's digest, its inputs' keys, its engine: what `--explain` compares)."""

    key: str
    outputs: list[str] = field(default_factory=list)
    result: dict[str, Any] = field(default_factory=dict)
    files: dict[str, FileRecord] = field(default_factory=dict)
    step: dict[str, Any] | None = None
    made_from: dict[str, Any] | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> NodeEntry:
        """From an entry whose shape `check_run_record` passed."""
        files = {path: FileRecord.from_json(rec) for path, rec in (data.get("files") or {}).items()}
        made_from = data.get("made_from")
        return cls(
            key=str(data["key"]),
            outputs=[str(p) for p in data.get("outputs", [])],
            result=dict(data.get("result") or {}),
            files={path: rec for path, rec in files.items() if rec is not None},
            step=dict(data["step"]) if isinstance(data.get("step"), dict) else None,
            made_from=dict(made_from) if isinstance(made_from, dict) else None,
        )

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "key": self.key,
            "outputs": list(self.outputs),
            "result": self.result,
            "files": {path: rec.to_json() for path, rec in self.files.items()},
        }
        if self.step:
            data["step"] = self.step
        if self.made_from:
            data["made_from"] = self.made_from
        return data

    def typed_result(self, kind: Kind) -> Result:
        """The result as its kind's type; ValueError when the record has the wrong shape."""
        from zray.nodes import read_result

        return read_result(kind, self.result)


@dataclass
class RunFile:
    """run.json, typed: read and written only through this (the pipeline's `RunRecord` and the
    finished-episode reader `Episode` both). `extra` keeps what the last run said about itself
    (last_run, engines, outputs, ...) as written."""

    nodes: dict[str, NodeEntry] = field(default_factory=dict)
    identity: Identity | None = None
    script: str | None = None
    key_format: int = 1  # zray.keys.KEY_FORMAT of its keys; 1 for records from before keys said
    generated: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def read(cls, store: Store) -> RunFile | None:
        """The folder's run.json (None when there is none), upgraded to the current format.
        RecordError when it cannot be read or has the wrong shape."""
        data = read_json(store, RUN_FILE, what="the run record")
        if data is None:
            return None
        problem = check_run_record(data)
        if problem:
            raise RecordError(problem)
        return cls.from_json(upgrade_run_record(data, store))

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunFile:
        nodes = {node_id: NodeEntry.from_json(entry) for node_id, entry in (data.get("nodes") or {}).items()}
        generated = data.get("generated")
        key_format = data.get("key_format")
        return cls(
            nodes=nodes,
            identity=Identity.from_json(data.get("identity")),
            script=data["script"] if isinstance(data.get("script"), str) else None,
            key_format=key_format if isinstance(key_format, int) else (1 if nodes else KEY_FORMAT),
            generated=[p for p in generated if isinstance(p, str)] if isinstance(generated, list) else [],
            extra={
                k: v
                for k, v in data.items()
                if k not in ("nodes", "identity", "script", "key_format", "generated", "format")
            },
        )

    @classmethod
    def finished(cls, store: Store) -> RunFile:
        """The run.json of a folder `zray run` made: EpisodeError when there is none, RecordError
        (naming the file and the fix) when it cannot be read."""
        try:
            run = cls.read(store)
        except RecordError as exc:
            raise RecordError(
                f"{store.url(RUN_FILE)}: {exc}; run `zray run` on the script again to rebuild it"
            ) from None
        if run is None:
            raise EpisodeError(
                f"{store.root_url}: no {RUN_FILE} here; is this an episode folder made by `zray run`?"
            )
        return run

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {**self.extra, "format": RUN_FORMAT}
        if self.identity is not None:
            data["identity"] = self.identity.to_json()
        if self.script is not None:
            data["script"] = self.script
        data["key_format"] = self.key_format
        data["generated"] = list(self.generated)
        data["nodes"] = {node_id: entry.to_json() for node_id, entry in self.nodes.items()}
        return data

    def write(self, store: Store) -> None:
        write_json(store, RUN_FILE, self.to_json())

    def all_paths(self) -> list[str]:
        """Every path it names: what must stay inside the folder."""
        paths = [*self.generated]
        for entry in self.nodes.values():
            paths += [*entry.outputs, *entry.files]
        return paths


def upgrade_run_record(data: Mapping[str, Any], store: Store) -> dict[str, Any]:
    """The one migration of run.json's shape: records before format 2 named files from the output
    root (`<project>/<episode>/x`) and word timings as `text`."""
    if data.get("format", 1) >= RUN_FORMAT:
        return dict(data)
    prefix = "/".join(store.root.rstrip("/").split("/")[-2:]) + "/"

    def relative(path: Any) -> Any:
        return path[len(prefix) :] if isinstance(path, str) and path.startswith(prefix) else path

    upgraded = dict(data)
    nodes = {}
    for node_id, entry in (data.get("nodes") or {}).items():
        entry = dict(entry)
        entry["outputs"] = [relative(p) for p in entry.get("outputs", [])]
        entry["files"] = {relative(p): rec for p, rec in (entry.get("files") or {}).items()}
        result = dict(entry.get("result") or {})
        result["path"] = relative(result.get("path"))
        if "path" in result and result["path"] is None:
            del result["path"]
        if isinstance(result.get("variants"), list):
            result["variants"] = [relative(v) for v in result["variants"]]
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
    upgraded["format"] = RUN_FORMAT
    return upgraded


def check_run_record(data: Any) -> str | None:
    """What is wrong with run.json's shape, or None. Only the parts zray acts on are checked."""
    if not isinstance(data, dict):
        return "it is not a JSON object"
    nodes = data.get("nodes", {})
    if not isinstance(nodes, dict):
        return "`nodes` is not an object"
    for node_id, entry in nodes.items():
        if not isinstance(entry, dict):
            return f"node {node_id!r} is not an object"
        if not isinstance(entry.get("key"), str):
            return f"node {node_id!r} has no key"
        outputs = entry.get("outputs", [])
        if not isinstance(outputs, list) or not all(isinstance(p, str) for p in outputs):
            return f"node {node_id!r}: outputs is not a list of paths"
        if not isinstance(entry.get("result", {}), dict):
            return f"node {node_id!r}: result is not an object"
        files = entry.get("files", {})
        if not isinstance(files, dict) or not all(isinstance(v, dict) for v in files.values()):
            return f"node {node_id!r}: files is not an object of file records"
    for name in ("outputs", "generated"):
        if name in data and not isinstance(data[name], dict | list):
            return f"`{name}` has the wrong shape"
    return None


def generated_paths(record: Mapping[str, Any]) -> list[str]:
    """Every file a run record says zray made in the folder (node outputs, logs, the report, the
    script copy), inside the folder only: what `--clean` deletes."""
    paths: list[str] = []
    for entry in (record.get("nodes") or {}).values():
        if isinstance(entry, dict):
            paths += [p for p in entry.get("outputs", []) if isinstance(p, str)]
            result = entry.get("result")
            cached = result.get("cache_files") if isinstance(result, dict) else None
            paths += [p for p in cached or [] if isinstance(p, str)]
    generated = record.get("generated") or []
    if isinstance(generated, list):
        paths += [p for p in generated if isinstance(p, str)]
    return [p for p in dict.fromkeys(paths) if inside(p) and p not in KEPT_RECORDS]


def set_aside(store: Store, key: str, reason: str) -> str:
    """Rename a record that must not be acted on, keeping it for a person to look at."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    target = f"{key}.set-aside-{stamp}"
    try:
        store.move(key, target)
    except (OSError, StoreError):
        store.remove(key)
        return f"{store.url(key)} {reason}; it could not be renamed and was removed"
    return f"{store.url(key)} {reason}; set aside as {target.rsplit('/', 1)[-1]}, starting fresh"


def outside_paths(paths: Iterable[str]) -> list[str]:
    return [p for p in paths if not inside(p)]


def follow_content_keys(store: Store, moved: Mapping[str, str]) -> list[str]:
    """Point the upload and review records at the new content keys of videos whose bytes did not
    change (`moved`: old content key -> new; a key format upgrade, or a rebuild that made the same
    file): what is on YouTube, and what was approved, is still the file in the folder. Returns the
    records it rewrote. Only a string equal to an old key is changed, in the fields that name a
    video's content key; a published entry keeps the content tag its YouTube copy carries."""
    if not moved:
        return []
    changed = []
    for name, section in ((PUBLISHED_FILE, "videos"), (UPLOAD_STATE_FILE, "sessions")):
        data = read_json(store, name, what=name)
        entries = data.get(section, data) if isinstance(data, dict) else None
        if not isinstance(entries, dict):
            continue
        touched = False
        for entry in entries.values():
            if not isinstance(entry, dict):
                continue
            old = entry.get("content_key")
            if isinstance(old, str) and old in moved:
                if section == "videos":
                    entry.setdefault("content_tag", content_tag(old))
                entry["content_key"] = moved[old]
                touched = True
            if isinstance(entry.get("metadata_for"), str) and entry["metadata_for"] in moved:
                entry["metadata_for"] = moved[entry["metadata_for"]]
                touched = True
        if touched:
            write_json(store, name, data)
            changed.append(name)
    review = read_json(store, REVIEW_FILE, what="the review record")
    approvals = review.get("approvals") if isinstance(review, dict) else None
    if isinstance(approvals, dict):
        touched = False
        for entry in approvals.values():
            keys = entry.get("keys") if isinstance(entry, dict) else None
            if isinstance(keys, dict):
                for name, key in list(keys.items()):
                    if isinstance(key, str) and key in moved:
                        keys[name] = moved[key]
                        touched = True
        if touched:
            write_json(store, REVIEW_FILE, review)
            changed.append(REVIEW_FILE)
    return changed


# --- a finished episode, read back -----------------------------------------------------------------


@dataclass
class Episode:
    """A finished episode folder, as `zray upload`, `publish` and `review` read it.

    The folder alone is enough (it may live in a bucket, far from the machine that made it):
    run.json says which file is which and from what content it was made, and script.json is the
    script as run.
    """

    store: Store  # rooted at the episode folder
    script: Any  # zray.script.Script
    record: dict[str, Any]  # run.json as JSON (for pages that show it whole); `run` is it typed
    identity: Identity
    run: RunFile = field(default_factory=RunFile)

    @property
    def url(self) -> str:
        return self.store.root_url

    @property
    def nodes(self) -> dict[str, Any]:
        return self.record.get("nodes", {})

    @property
    def languages(self) -> list[str]:
        return [lang for lang in self.script.languages if video_node(lang) in self.run.nodes]

    def node(self, node_id: str) -> NodeEntry:
        entry = self.run.nodes.get(node_id)
        if entry is None:
            raise EpisodeError(
                f"{self.url}: {node_id} was never finished; run `zray run` on the script first"
            )
        return entry

    def output(self, node_id: str, index: int = 0) -> str:
        outputs = self.node(node_id).outputs
        if len(outputs) <= index:
            raise RecordError(
                f"{self.url}/{RUN_FILE}: {node_id} lists no output {index}; run `zray run` again"
            )
        return str(outputs[index])

    def video(self, lang: str) -> str:
        """The language's finished video, relative to the folder."""
        return self.output(video_node(lang))

    def content_key(self, lang: str) -> str:
        """What the video was made from: changes whenever its picture or sound would."""
        return self.node(video_node(lang)).key

    def duration(self, lang: str) -> float:
        from zray.nodes import Kind, VideoResult

        try:
            result = self.node(video_node(lang)).typed_result(Kind.VIDEO)
        except ValueError:
            result = None
        if not isinstance(result, VideoResult) or not result.duration:
            raise RecordError(
                f"{self.url}/{RUN_FILE}: {video_node(lang)} has no duration; run `zray run` again"
            )
        return result.duration

    def thumbnail(self, lang: str) -> str:
        return self.output(thumbs_node(lang))

    def shorts(self, lang: str) -> list[ShortFile]:
        """The language's Shorts as the last run made them (`zray.nodes.ShortFile`, in order); empty
        when none were made (`shorts.enabled` off). RecordError for a record of the wrong shape."""
        from zray.nodes import Kind, ShortsResult

        entry = self.run.nodes.get(shorts_node(lang))
        if entry is None:
            return []
        try:
            result = entry.typed_result(Kind.SHORTS)
        except ValueError as exc:
            raise RecordError(
                f"{self.url}/{RUN_FILE}: shorts:{lang} is malformed ({exc}); run `zray run` again"
            ) from None
        assert isinstance(result, ShortsResult)
        stray = [
            s.path for s in result.shorts if not inside(s.path) or not s.path.startswith(f"{SHORTS_DIR}/")
        ]
        if stray:
            raise RecordError(f"{self.url}/{RUN_FILE}: shorts:{lang} names {stray[0]!r}, outside its folder")
        return list(result.shorts)

    def subtitles(self, lang: str, *, fmt: str = "srt") -> str:
        return self.output(subs_node(lang), {"srt": 0, "vtt": 1}[fmt])

    def chapters(self, lang: str) -> str:
        """The YouTube chapter list ("0:00 Title" lines), empty when YouTube would ignore it."""
        key = chapters(lang)
        return self.store.read_text(key) if self.store.exists(key) else ""

    def published(self) -> KeyedRecord:
        return published_record(self.store, self.identity)

    def upload_state(self) -> KeyedRecord:
        return upload_state(self.store, self.identity)


def project_of_folder(store: Store) -> str:
    """The project a folder belongs to by its place: `<output>/<project>/<episode>`."""
    return posixpath.basename(posixpath.dirname(store.root.rstrip("/"))) or "default"


def open_episode(url: str | Store) -> Episode:
    """Read an episode folder (a local path or any fsspec URL) that `zray run` finished."""
    from zray.script import check_data

    store = url if isinstance(url, Store) else Store(url)
    where = store.root_url
    run = RunFile.finished(store)
    record = run.to_json()
    data = read_json(store, SCRIPT_FILE, what="the script copy")
    if data is None:
        raise EpisodeError(f"{where}: no {SCRIPT_FILE} here; run `zray run` on the script again to write it")
    checked = check_data(data, filename=run.script or "")
    if not checked.ok or checked.script is None:
        first = checked.errors[0].render(SCRIPT_FILE) if checked.errors else SCRIPT_FILE
        raise EpisodeError(f"{where}: {first}")
    script = checked.script
    identity = run.identity or Identity(project_of_folder(store), script.saga or 0, script.episode or 0)
    if (identity.saga, identity.episode) != (script.saga, script.episode):
        raise RecordError(
            f"{where}: {RUN_FILE} is for {identity} but {SCRIPT_FILE} is S{script.saga:02d}E{script.episode:02d}; "
            "run `zray run` on the script again"
        )
    return Episode(store=store, script=script, record=record, identity=identity, run=run)
