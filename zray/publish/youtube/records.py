"""The entries zray writes about a video slot: in published.json (what YouTube holds) and in
upload_state.json (a resumable session under way). The records themselves, their identity
check and their file names belong to `zray.episode`; this module only says what an entry holds.

A session entry holds everything its published entry will need, so a session found finished by
a later run (whose process died while YouTube answered the last chunk) restores the record
exactly as the run that opened it would have written it.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from zray.keys import content_tag
from zray.publish.youtube.channel import FoundVideo
from zray.publish.youtube.decisions import Job
from zray.publish.youtube.metadata import iso, same_text

UNKNOWN = "unknown"  # the metadata fingerprint of a video whose text differs from the script's


def body_digest(body: dict[str, Any]) -> str:
    """A session carries the metadata it was opened with: resume it only for the same body."""
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def _common(job: Job) -> dict[str, Any]:
    status = job.body["status"]
    entry: dict[str, Any] = {
        "content_key": job.slot.content_key,
        "content_tag": content_tag(job.slot.content_key),
        "slot_tag": job.slot.tag,
        "title": job.body["snippet"]["title"],
        "privacy": status["privacyStatus"],
        "publish_at": status.get("publishAt"),
        "metadata": job.fingerprint,
    }
    replaced = _replaced(job)
    if replaced:
        entry["replaces"] = replaced
    return entry


def _replaced(job: Job) -> list[str]:
    if job.action != "replace" or not job.entry:
        return []
    earlier = job.entry.get("replaces")
    return [*(earlier if isinstance(earlier, list) else []), job.entry["video_id"]]


def session_entry(job: Job, uri: str, progress: int, *, size: int, now: datetime) -> dict[str, Any]:
    return {
        **_common(job),
        "session_uri": uri,
        "progress": progress,
        "size": size,
        "body": body_digest(job.body),
        "saved_at": iso(now),
    }


def uploaded_entry(job: Job, video_id: str, *, session_uri: str | None, now: datetime) -> dict[str, Any]:
    entry = {**_common(job), "video_id": video_id, "uploaded_at": iso(now)}
    if session_uri:
        entry["session_uri"] = session_uri  # a session left in upload_state.json by a crash is this one
    return entry


def from_session(saved: dict[str, Any], video: dict[str, Any]) -> dict[str, Any]:
    """The entry for a session YouTube says it finished: what its run would have written."""
    kept = (
        "content_key",
        "content_tag",
        "slot_tag",
        "title",
        "privacy",
        "publish_at",
        "metadata",
        "replaces",
    )
    entry = {name: saved[name] for name in kept if name in saved}
    key = entry.get("content_key")
    if "content_tag" not in entry and isinstance(key, str):
        entry["content_tag"] = content_tag(key)
    return {
        **entry,
        "video_id": str(video["id"]),
        "uploaded_at": saved.get("saved_at"),
        "session_uri": saved["session_uri"],
        "restored": "session",
    }


def from_channel(job: Job, found: FoundVideo, *, now: datetime) -> dict[str, Any]:
    """The entry for a video found on the channel by its slot tag. Its content is the folder's
    when its content tag says so; its metadata counts as pushed when its text is the script's."""
    ours = found.content_tag == content_tag(job.slot.content_key)
    entry = {
        **_common(job),
        "video_id": found.video_id,
        "content_key": job.slot.content_key if ours else None,
        "content_tag": found.content_tag,
        "title": found.snippet.get("title", ""),
        "privacy": found.status.get("privacyStatus"),
        "publish_at": found.status.get("publishAt"),
        "metadata": job.fingerprint if ours and same_text(found.snippet, job.body) else UNKNOWN,
        "uploaded_at": found.snippet.get("publishedAt") or iso(now),
        "restored": "channel",
    }
    return entry
