"""Publish a finished episode to a website: the seed's content layout, or Hugo page bundles.

Every file goes through a `Store` rooted at the site URL (a local checkout, a bucket) under keys
made only of saga and episode numbers and language codes, so no script text ever names a file or
climbs out of the site. A file whose bytes would not change is not rewritten, and nothing written
depends on the clock: publishing twice writes nothing the second time.

Seed layout (the studio's content platform):

    saga-01/meta.es.yaml                  title, description, is_complete, cover
    saga-01/cover.es.png                  episode 1's thumbnail
    saga-01/episode-02/content.es.md      front matter, then the essay (or the narration)
    saga-01/episode-02/video.es.mp4
    saga-01/episode-02/thumbnail.es.png

Hugo layout (multilingual page bundles; the site's own config lists the languages):

    content/saga-01/_index.es.md                the saga: the fields of meta.es.yaml
    content/saga-01/cover.es.png
    content/saga-01/episode-02/index.es.md      the page: custom fields under `params`
    content/saga-01/episode-02/video.es.mp4     bundle resources; Hugo gives each language its own
    content/saga-01/episode-02/thumbnail.es.png

Hugo leaves out pages dated in the future unless built with `--buildFuture`, so a scheduled
episode appears on its `date_published`, as on YouTube.

`video`, `thumbnail` and `cover` in front matter are file names relative to the file that names
them (the bundle, in Hugo's terms). The essay is `<essays_dir>/<project>/<script stem>.<lang>.md`
with its own front matter dropped; without one the page body is the narration, a paragraph per
scene. A saga starts as "Saga 1" with an empty description: edit both on the site, later publishes
keep them and only set `is_complete` (from the tenth episode on) and `cover` (once episode 1 is out).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import yaml

from zray.episode import Episode
from zray.errors import ZrayError
from zray.keys import safe_name
from zray.publish.checked import DamagedOutput, check_file
from zray.publish.settings import WebConfig
from zray.review.record import not_approved_line, unapproved
from zray.script import Script
from zray.store import Store, StoreError

Layout = Literal["seed", "hugo"]
LAYOUTS: tuple[str, ...] = ("seed", "hugo")
DEFAULT_ESSAYS = Path("inputs/essays")

__all__ = ["PublishError", "PublishReport", "WebConfig", "publish_episode"]
COMPLETE_FROM = 10  # the seed calls a saga complete once its tenth episode is out
# Hugo's own front matter fields; everything else goes under `params`, as Hugo recommends.
_HUGO_FIELDS = ("title", "description", "date", "tags", "keywords")
_FENCES = {"---": ("---", "..."), "+++": ("+++",)}
_SUFFIX = re.compile(r"\.[A-Za-z0-9]{1,5}")


class PublishError(ZrayError, ValueError):
    """The episode cannot be published as asked (bad option, missing file, unreadable site file)."""


@dataclass
class PublishReport:
    site: str
    layout: str
    written: list[str] = field(default_factory=list)  # site keys, in the order written
    unchanged: list[str] = field(default_factory=list)
    # One line per language left out: held back by the review gate, or a file not the one zray made.
    skipped: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Page:
    """What the site says about one language of the episode."""

    lang: str
    title: str
    description: str
    tags: list[str]
    keywords: list[str]
    date: str | None
    minutes: int
    saga: int
    episode: int
    youtube_id: str | None
    body: str
    video: str  # keys in the episode folder
    thumbnail: str


def publish_episode(
    episode: Episode,
    *,
    site: str,
    layout: str = "seed",
    essays_dir: Path | None = None,
    langs: list[str] | None = None,
    require_review: bool = False,
) -> PublishReport:
    """Write the episode's pages, videos and thumbnails into the site at `site` (any fsspec URL).

    `require_review` (the `review.required` setting): a language whose current video is not
    approved in `zray review` is left out, with one line in `skipped`."""
    if layout not in LAYOUTS:
        raise PublishError(f"unknown layout {layout!r}: use one of {', '.join(LAYOUTS)}")
    # Everything is read and checked before the first write, so a bad episode leaves the site alone.
    youtube = _youtube_ids(episode)
    chosen = _languages(episode, langs)
    held = unapproved(episode, chosen) if require_review else []
    pages = [
        episode_page(episode, lang, essays_dir=essays_dir or DEFAULT_ESSAYS, youtube_id=youtube.get(lang))
        for lang in chosen
        if lang not in held
    ]
    damaged = []
    for page in list(pages):
        try:
            for key in (page.video, page.thumbnail):
                check_file(episode, key)
        except DamagedOutput as exc:  # that language is left out; the others go on
            damaged.append(str(exc))
            pages.remove(page)
    try:
        store = Store(site)
    except (ValueError, ImportError) as exc:
        raise PublishError(f"--site {site!r}: {exc}") from None
    writer = _SiteWriter(store, PublishReport(site=store.root_url, layout=layout))
    writer.report.skipped = [not_approved_line(lang, episode.url) for lang in held] + damaged
    for page in pages:
        _publish_page(writer, episode.store, page, hugo=layout == "hugo")
    return writer.report


# --- what a page says ----------------------------------------------------------------------------


def episode_page(episode: Episode, lang: str, *, essays_dir: Path, youtube_id: str | None = None) -> Page:
    script = episode.script
    if script.saga is None or script.episode is None:
        raise PublishError(f"{episode.url}: the script has no saga or episode number")
    seo = script.seo_for(lang)
    video, thumbnail = episode.video(lang), episode.thumbnail(lang)
    for key in (video, thumbnail):
        if not episode.store.exists(key):
            raise PublishError(f"{episode.store.url(key)} is missing; run `zray run` on the script again")
    return Page(
        lang=lang,
        title=script.title(lang),
        description=seo.description,
        tags=list(seo.tags),
        keywords=keywords(script, lang),
        date=_date(script.date_published),
        minutes=round_minutes(episode.duration(lang)),
        saga=script.saga,
        episode=script.episode,
        youtube_id=youtube_id,
        body=_essay(episode, lang, essays_dir) or narration_body(script, lang),
        video=video,
        thumbnail=thumbnail,
    )


def keywords(script: Script, lang: str) -> list[str]:
    """`seo.<lang>.keywords`, else the script's `keywords` (a list, a comma list, or one per language), else the tags."""
    for where, extra in (
        (f"seo.{lang}.keywords", script.seo_for(lang).model_extra),
        ("keywords", script.model_extra),
    ):
        value = (extra or {}).get("keywords")
        if isinstance(value, dict):
            value = value.get(lang)
        if value is None:
            continue
        if isinstance(value, str):
            value = value.split(",")
        if not isinstance(value, list):
            raise PublishError(f"{where} must be a list of words or a comma-separated string, not {value!r}")
        return [str(word).strip() for word in value if str(word).strip()]
    return list(script.seo_for(lang).tags)


def round_minutes(seconds: float) -> int:
    """To the nearest minute, halves up; a video is never "0 minutes" long."""
    return max(1, math.floor(seconds / 60 + 0.5))


def narration_body(script: Script, lang: str) -> str:
    return "\n\n".join(" ".join(scene.narration(lang).split()) for scene in script.scenes) + "\n"


def strip_front_matter(text: str) -> str:
    """The markdown after a leading YAML (`---`) or TOML (`+++`) front matter block."""
    return split_front_matter(text)[1]


def _essay(episode: Episode, lang: str, essays_dir: Path) -> str | None:
    folder = PurePosixPath(episode.store.root)
    project = safe_name(folder.parent.name, fallback="default")
    # The stem is one file name component (separators split off), so it cannot leave the project folder.
    stem = re.split(r"[\\/]", str(episode.record.get("script") or folder.name))[-1].removesuffix(".json")
    path = Path(essays_dir) / project / f"{stem}.{lang}.md"
    if not path.is_file():
        return None
    try:
        body = strip_front_matter(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError) as exc:
        raise PublishError(f"{path}: cannot read the essay ({exc})") from None
    return body if body.strip() else None


def split_front_matter(text: str) -> tuple[str | None, str]:
    """(the front matter between its fences, or None; the markdown after it)."""
    # Split on newlines only: YAML may hold other Unicode line breaks inside a value.
    lines = text.replace("\r\n", "\n").split("\n")
    closers = _FENCES.get(lines[0].rstrip())
    if closers:
        for i, line in enumerate(lines[1:], start=1):
            if line.rstrip() in closers:
                return "\n".join(lines[1:i]) + "\n", _tidy("\n".join(lines[i + 1 :]))
    # No closing fence: a leading `---` is then just a markdown rule.
    return None, _tidy(text.replace("\r\n", "\n"))


def _tidy(body: str) -> str:
    body = body.lstrip("\n").rstrip()
    return body + "\n" if body else ""


def _date(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        return value.isoformat(timespec="seconds")
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _languages(episode: Episode, langs: list[str] | None) -> list[str]:
    ready = episode.languages
    by_case = {lang.casefold(): lang for lang in ready}  # `--lang EN` is `--lang en`
    unknown = [lang for lang in langs or [] if lang.casefold() not in by_case]
    if unknown:
        raise PublishError(
            f"--lang {', '.join(unknown)}: the episode has no finished video in that language "
            f"(it has {', '.join(ready) or 'none'})"
        )
    chosen = [by_case[lang.casefold()] for lang in langs] if langs else ready
    if not chosen:
        raise PublishError(f"{episode.url}: no language has a finished video; run `zray run` first")
    return list(dict.fromkeys(chosen))


def _youtube_ids(episode: Episode) -> dict[str, str]:
    """Each language's long video on YouTube, from the episode's own upload record: a record that
    cannot be read, or another episode's (a copied folder), is refused in one line (RecordError)."""
    record = episode.published()
    # Entries of a language's Shorts are named `<lang>/short-<nn>`; the page links the long video.
    return {name: str(entry["video_id"]) for name, entry in record.entries.items() if "/" not in name}


# --- the files ---------------------------------------------------------------------------------


def _publish_page(writer: _SiteWriter, source: Store, page: Page, *, hugo: bool) -> None:
    lang = safe_name(page.lang)
    saga_dir = f"{'content/' if hugo else ''}saga-{page.saga:02d}"
    episode_dir = f"{saga_dir}/episode-{page.episode:02d}"
    video = f"video.{lang}{_suffix(page.video, '.mp4')}"
    thumbnail = f"thumbnail.{lang}{_suffix(page.thumbnail, '.png')}"
    # Media before the pages that name them: a reader never finds a page without its video.
    writer.copy(source, page.video, f"{episode_dir}/{video}")
    writer.copy(source, page.thumbnail, f"{episode_dir}/{thumbnail}")
    cover = f"cover.{lang}{_suffix(page.thumbnail, '.png')}"
    if page.episode == 1:
        writer.copy(source, page.thumbnail, f"{saga_dir}/{cover}")

    fields: dict[str, Any] = {
        "title": page.title,
        "description": page.description,
        "tags": page.tags,
        "keywords": page.keywords,
        **({"date": page.date} if page.date else {}),
        "duration": page.minutes,
        "saga": page.saga,
        "episode": page.episode,
        "video": video,
        "thumbnail": thumbnail,
        **({"youtube_id": page.youtube_id} if page.youtube_id else {}),
    }
    if hugo:
        writer.text(
            f"{episode_dir}/index.{lang}.md",
            with_front_matter(_hugo_fields(fields, page.episode), page.body),
        )
    else:
        writer.text(f"{episode_dir}/content.{lang}.md", with_front_matter(fields, page.body))

    has_cover = writer.store.exists(f"{saga_dir}/{cover}")
    if hugo:
        _update_hugo_saga(writer, f"{saga_dir}/_index.{lang}.md", page, cover if has_cover else None)
    else:
        _update_seed_saga(writer, f"{saga_dir}/meta.{lang}.yaml", page, cover if has_cover else None)


def _hugo_fields(fields: dict[str, Any], weight: int) -> dict[str, Any]:
    ours = {key: fields[key] for key in _HUGO_FIELDS if key in fields}
    return {**ours, "weight": weight, "params": {k: v for k, v in fields.items() if k not in ours}}


def _saga_params(params: dict[str, Any], page: Page, cover: str | None) -> dict[str, Any]:
    """What a publish changes about a saga; the rest is the site's (edited by hand, perhaps)."""
    params = dict(params)
    params["is_complete"] = bool(params.get("is_complete")) or page.episode >= COMPLETE_FROM
    if cover:
        params["cover"] = cover
    return params


def _update_seed_saga(writer: _SiteWriter, key: str, page: Page, cover: str | None) -> None:
    old = _load_yaml(writer.store, key, writer.read(key)) if writer.store.exists(key) else None
    meta = _saga_params({"title": f"Saga {page.saga}", "description": "", **(old or {})}, page, cover)
    # An equal meta is left as it is, keeping any comments and formatting a person gave it.
    if meta == old:
        writer.report.unchanged.append(key)
    else:
        writer.text(key, _yaml(meta))


def _update_hugo_saga(writer: _SiteWriter, key: str, page: Page, cover: str | None) -> None:
    old, body = {}, ""
    if writer.store.exists(key):
        front, body = split_front_matter(writer.read(key))
        old = _load_yaml(writer.store, key, front or "") or {}
    fields = {"title": f"Saga {page.saga}", "description": "", "weight": page.saga, **old}
    fields["params"] = _saga_params(fields.get("params") or {}, page, cover)
    if old and fields == old:
        writer.report.unchanged.append(key)
    else:
        writer.text(key, with_front_matter(fields, body))


def _load_yaml(store: Store, key: str, text: str) -> dict[str, Any] | None:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PublishError(f"{store.url(key)}: not valid YAML ({exc}); fix or delete it") from None
    if data is not None and not isinstance(data, dict):
        raise PublishError(f"{store.url(key)}: expected a YAML mapping; fix or delete it")
    return data


def _yaml(data: dict[str, Any]) -> str:
    # A wide line keeps each value on one line: readable diffs of the site's repository.
    options: dict[str, Any] = {"sort_keys": False, "default_flow_style": False, "width": 1 << 16}
    text = yaml.safe_dump(data, allow_unicode=True, **options)
    # PyYAML writes Unicode line breaks (U+0085, U+2028) raw, and reads them back as spaces;
    # escaping every non-ASCII character is the only way it keeps them.
    return text if yaml.safe_load(text) == data else yaml.safe_dump(data, allow_unicode=False, **options)


def with_front_matter(fields: dict[str, Any], body: str) -> str:
    """A markdown file: YAML front matter, then the body."""
    return f"---\n{_yaml(fields)}---\n" + (f"\n{body}" if body else "")


def _suffix(key: str, default: str) -> str:
    suffix = PurePosixPath(key).suffix
    return suffix.lower() if _SUFFIX.fullmatch(suffix) else default


class _SiteWriter:
    """Writes only what differs from the site, and records what it wrote and what it left."""

    def __init__(self, store: Store, report: PublishReport):
        self.store = store
        self.report = report
        self._checked = False

    def read(self, key: str) -> str:
        try:
            return self.store.read_text(key)
        except UnicodeDecodeError:
            raise PublishError(f"{self.store.url(key)}: not UTF-8 text; fix or delete it") from None

    def text(self, key: str, text: str) -> None:
        data = text.encode("utf-8")
        if self.store.exists(key) and self.store.read_bytes(key) == data:
            self.report.unchanged.append(key)
            return
        self._before_write()
        self.store.write_bytes(key, data)
        self.report.written.append(key)

    def copy(self, source: Store, source_key: str, key: str) -> None:
        if (
            self.store.exists(key)
            and self.store.size(key) == source.size(source_key)
            and self.store.checksum(key) == source.checksum(source_key)
        ):
            self.report.unchanged.append(key)
            return
        self._before_write()
        with source.local_copy(source_key) as local:
            self.store.put(local, key)
        self.report.written.append(key)

    def _before_write(self) -> None:
        # Refuse an unwritable site once, in one line, before the first file rather than midway.
        if not self._checked:
            try:
                self.store.check_writable()
            except StoreError as exc:
                raise PublishError(str(exc)) from None
            self._checked = True
