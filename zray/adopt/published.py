"""Videos the seed already put on a channel: checked, tagged with zray's slot tag, and recorded.

`--published es=VIDEO_ID` asks YouTube (videos.list) that the video exists on the channel the
language's token speaks for (channels.list), adds the language's slot tag to its tags
(videos.update, only when it lacks it) and records it in published.json. From then on the
uploader treats that language as uploaded: the record names the video, and the tag lets the
channel itself say so if the record is ever lost. The entry carries no content key (the seed
made that file, not zray), so an upload reports the language as changed and sends nothing;
`zray upload --force` pushes the script's metadata to that video, `--replace` uploads zray's.
The three calls are checked against the day's quota before any is sent, and counted.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from zray import limits
from zray.episode import Identity, published_record
from zray.errors import InvalidInput
from zray.store import Store

# What adopting one published video may cost (the update only when the tag is missing).
CALLS = {"channels.list": 1, "videos.list": 1, "videos.update": 1}
# The fields of a snippet videos.update takes back; the others are YouTube's own.
_SNIPPET_FIELDS = ("title", "description", "categoryId", "tags", "defaultLanguage", "defaultAudioLanguage")


def parse_published(values: list[str], languages: list[str]) -> dict[str, str]:
    """`LANG=VIDEO_ID` flags by language; InvalidInput naming the bad one."""
    found: dict[str, str] = {}
    for value in values:
        lang, sep, video_id = value.partition("=")
        lang, video_id = lang.strip().lower(), video_id.strip()
        if not sep or not lang or not video_id or any(c.isspace() for c in video_id):
            raise InvalidInput(f"--published {value!r}: expected LANG=VIDEO_ID, e.g. es=dQw4w9WgXcQ")
        if lang not in languages:
            raise InvalidInput(
                f"--published {value!r}: the script has no {lang} narration (it has {', '.join(languages)})"
            )
        if lang in found and found[lang] != video_id:
            raise InvalidInput(f"--published {lang}: given twice ({found[lang]} and {video_id})")
        found[lang] = video_id
    return found


@dataclass
class Outcome:
    lines: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)


def adopt_published(
    videos: dict[str, str],
    *,
    store: Store,
    identity: Identity,
    config: Any,  # zray.publish.settings.YouTubeConfig
    credentials_for: Callable[[str], Any],
    dry_run: bool,
    http_factory: Callable[[], Any] | None = None,
    now: datetime | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Outcome:
    """Check, tag and record each language's published video (see the module's docstring)."""
    out = Outcome()
    record = published_record(store, identity)  # a record that cannot be trusted stops here, in one line
    for lang, video_id in videos.items():
        tag = identity.slot(lang)
        entry = record.get(lang)
        if entry and entry.get("video_id") == video_id and entry.get("slot_tag") == tag:
            out.lines.append(f"{lang}: {video_id} is already recorded in published.json")
            continue
        if entry:
            out.refused.append(
                f"--published {lang}={video_id}: published.json already records {lang} as "
                f"{entry.get('video_id')}; move that entry out first if the channel's video is another"
            )
            continue
        if dry_run:
            units = sum(config.cost(method) * count for method, count in CALLS.items())
            out.lines.append(
                f"{lang}: would check {video_id} is on the {lang} channel, add the tag {tag} to it and "
                f"record it in published.json (at most {units} quota units)"
            )
            continue
        try:
            found = _check_and_tag(
                lang,
                video_id,
                tag,
                config=config,
                credentials_for=credentials_for,
                http_factory=http_factory,
                now=now,
                sleep=sleep,
            )
        except _Refused as exc:
            out.refused.append(f"--published {lang}={video_id}: {exc}")
            continue
        record.put(lang, _entry(video_id, tag, found, now=now))
        out.lines.append(
            f"{lang}: {video_id} recorded in published.json and tagged {tag}; never uploaded again"
        )
    return out


class _Refused(Exception):
    pass


def _check_and_tag(
    lang: str,
    video_id: str,
    tag: str,
    *,
    config: Any,
    credentials_for: Callable[[str], Any],
    http_factory: Callable[[], Any] | None,
    now: datetime | None,
    sleep: Callable[[float], None],
) -> dict[str, Any]:
    """The video as YouTube lists it (snippet and status), once it carries the slot tag."""
    from googleapiclient.errors import HttpError

    from zray.publish.errors import AuthError, QuotaError
    from zray.publish.quota import QuotaLedger
    from zray.publish.youtube.client import (
        Api,
        UploadFailed,
        authorized_http,
        build_client,
        client_id,
        describe,
    )

    try:
        credentials = credentials_for(lang)
    except AuthError as exc:
        raise _Refused(str(exc)) from None
    ledger = QuotaLedger(client_id=client_id(credentials, config), config=config, now=now)
    try:
        ledger.check(CALLS)
    except QuotaError as exc:
        raise _Refused(str(exc)) from None
    http = authorized_http(credentials, config=config, http_factory=http_factory)
    api = Api(build_client(http, config=config), http, config, ledger, sleep)
    try:
        channels = api.execute(api.youtube.channels().list(part="id", mine=True), "channels.list")
        mine = [item.get("id") for item in channels.get("items") or []]
        listed = api.execute(api.youtube.videos().list(part="snippet,status", id=video_id), "videos.list")
        items = listed.get("items") or []
        if not items:
            raise _Refused("YouTube has no such video (videos.list found nothing); check the id")
        video = items[0]
        snippet = video.get("snippet") or {}
        if snippet.get("channelId") not in mine:
            raise _Refused(
                f"it is on channel {snippet.get('channelId')}, not the {lang} channel "
                f"({', '.join(str(m) for m in mine) or 'none'}) the {lang} token speaks for"
            )
        tags = list(snippet.get("tags") or [])
        if tag not in tags:
            tags.append(tag)
            if limits.tags_length(tags) > limits.TAGS_MAX_CHARS:
                raise _Refused(
                    f"its tags would pass YouTube's {limits.TAGS_MAX_CHARS} characters with zray's tag {tag}; "
                    "remove a tag of it on YouTube first"
                )
            body = {name: snippet[name] for name in _SNIPPET_FIELDS if name in snippet}
            body["tags"] = tags
            api.execute(
                api.youtube.videos().update(part="snippet", body={"id": video_id, "snippet": body}),
                "videos.update",
            )
            snippet = {**snippet, "tags": tags}
    except HttpError as exc:
        raise _Refused(f"YouTube refused it ({describe(exc)})") from None
    except UploadFailed as exc:
        raise _Refused(str(exc)) from None
    return {"snippet": snippet, "status": video.get("status") or {}}


def _entry(video_id: str, tag: str, video: dict[str, Any], *, now: datetime | None) -> dict[str, Any]:
    """published.json's entry for a video zray did not make: no content key, metadata unknown."""
    from zray.publish.youtube.records import UNKNOWN

    snippet, status = video["snippet"], video["status"]
    return {
        "video_id": video_id,
        "slot_tag": tag,
        "content_key": None,
        "content_tag": None,
        "title": snippet.get("title", ""),
        "privacy": status.get("privacyStatus"),
        "publish_at": status.get("publishAt"),
        "metadata": UNKNOWN,
        "uploaded_at": snippet.get("publishedAt"),
        "restored": "adopted",
        "adopted_at": (now or datetime.now(UTC)).isoformat(timespec="seconds"),
    }
