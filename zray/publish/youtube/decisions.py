"""What to do for each video slot, decided from its record before any request, and what that
will cost: the quota check refuses a plan that cannot finish today before anything is sent."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from zray.keys import content_tag
from zray.publish.settings import Privacy, YouTubeConfig
from zray.publish.youtube import short_thumbnails
from zray.publish.youtube.channel import SEARCH_CALLS
from zray.publish.youtube.metadata import (
    MetadataError,
    metadata_problems,
    slot_metadata,
    user_tags,
)
from zray.publish.youtube.slots import VideoSlot

Action = Literal["upload", "replace", "update", "complete", "skip", "changed"]


@dataclass
class Job:
    slot: VideoSlot
    action: Action
    body: dict[str, Any]
    fingerprint: str
    entry: dict[str, Any] | None  # the slot's published.json entry, as planned from
    message: str = ""

    @property
    def name(self) -> str:
        return self.slot.name

    def calls(self) -> dict[str, int]:
        """The API calls this job will make, by method (the worst case, for the quota check)."""
        slot, entry = self.slot, self.entry or {}
        thumbnail = {"thumbnails.set": 1} if slot.thumbnail else {}
        if slot.short_thumbnail:  # a look at the Short's processing first
            thumbnail = dict(short_thumbnails.CALLS)
        if self.action in ("upload", "replace"):
            # The look-up comes first; a video found by it has its captions listed before any insert.
            captions = {"captions.list": 1, "captions.insert": 1} if slot.subtitles else {}
            return _add(SEARCH_CALLS, {"videos.insert": 1, **thumbnail, **captions})
        if self.action == "update":
            captions = {"captions.list": 1, "captions.update": 1} if slot.subtitles else {}
            return {"videos.list": 1, "videos.update": 1, **thumbnail, **captions}
        if self.action == "complete":
            calls = dict(thumbnail) if _thumbnail_due(slot, entry) else {}
            if slot.subtitles and "captions" not in entry:
                # A crash may have come between captions.insert and the record: look first.
                calls.update({"captions.list": 1, "captions.insert": 1})
            return calls
        return {}


def _thumbnail_due(slot: VideoSlot, entry: dict[str, Any]) -> bool:
    """A thumbnail never set, or a Short's that waited for YouTube's processing."""
    if slot.short_thumbnail:
        return short_thumbnails.due(entry)
    return bool(slot.thumbnail) and "thumbnail" not in entry


def total_calls(jobs: Iterable[Job]) -> dict[str, int]:
    total: dict[str, int] = {}
    for job in jobs:
        total = _add(total, job.calls())
    return total


def _add(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    return {method: a.get(method, 0) + b.get(method, 0) for method in {**a, **b}}


def entry_content_tag(entry: dict[str, Any]) -> str | None:
    """The content tag of the file a published.json entry says is on YouTube."""
    tag = entry.get("content_tag")
    if isinstance(tag, str) and tag:
        return tag
    key = entry.get("content_key")
    return content_tag(key) if isinstance(key, str) and key else None


def known_videos(entry: dict[str, Any] | None) -> set[str]:
    """The videos a record already accounts for (the current one and those it replaced)."""
    if not entry:
        return set()
    replaced = entry.get("replaces")
    return {entry["video_id"], *(replaced if isinstance(replaced, list) else [])}


def fingerprint(body: dict[str, Any], privacy: str, date: str | None, checksums: Iterable[str]) -> str:
    """What the published metadata was made from. The inputs, not the derived status, so the
    passing of a scheduled date does not look like a change; zray's own tags are left out, so a
    new build of the file (a new content tag) is not a metadata change."""
    snippet = {**body["snippet"], "tags": user_tags(body["snippet"]["tags"])}
    status = {k: v for k, v in body["status"].items() if k not in ("privacyStatus", "publishAt")}
    digest = hashlib.sha256()
    digest.update(json.dumps([snippet, status, privacy, date], sort_keys=True).encode())
    for checksum in checksums:
        digest.update(checksum.encode())
    return digest.hexdigest()


def plan_slot(
    slot: VideoSlot,
    entry: dict[str, Any] | None,
    *,
    config: YouTubeConfig,
    privacy: Privacy | None,
    date_published: datetime | None,
    now: datetime,
    force: bool,
    replace: bool,
    checksum: Callable[[str], str],
) -> Job:
    """The slot's job. `entry` is its published.json entry; `checksum(key)` hashes a folder file."""
    body = slot_metadata(slot, config=config, privacy=privacy, date_published=date_published, now=now)
    problems = metadata_problems(body)
    if problems:
        raise MetadataError("; ".join(problems) + " (nothing was sent)")
    short_picture = slot.short_thumbnail.picture if slot.short_thumbnail else None
    files = [key for key in (slot.thumbnail, slot.subtitles, short_picture) if key]
    date = date_published.isoformat() if date_published else None
    mark = fingerprint(body, privacy or config.privacy, date, [checksum(key) for key in files])
    key = slot.content_key

    def job(action: Action, message: str = "") -> Job:
        return Job(slot, action, body, mark, entry, message)

    if entry is None:
        return job("upload")
    video_id = entry.get("video_id")
    # What was last pushed to the video: its metadata's inputs, and for which version of the video.
    pushed_for = entry.get("metadata_for", entry.get("content_key"))
    stale = entry.get("metadata") != mark or entry.get("thumbnail") == "refused" or pushed_for != key
    if entry.get("content_key") != key:
        if replace:
            return job("replace")
        if force and stale:
            # The update names the file that is on YouTube, not the one in the folder.
            uploaded = slot_metadata(
                slot,
                config=config,
                privacy=privacy,
                date_published=date_published,
                now=now,
                uploaded_tag=entry_content_tag(entry),
            )
            return Job(
                slot,
                "update",
                uploaded,
                mark,
                entry,
                "the video itself changed since upload: only its metadata, thumbnail and captions were updated",
            )
        return job(
            "changed",
            f"the video changed since it was uploaded as {video_id}; nothing done: --force updates that "
            "video's title, description, thumbnail and captions, --replace uploads the new video",
        )
    if _thumbnail_due(slot, entry) or ("captions" not in entry and slot.subtitles):
        return job("complete")
    if stale:
        if force:
            return job("update")
        return job("skip", "metadata or thumbnail changed since upload; --force updates the video")
    return job("skip", "already uploaded")


def dry_run_message(job: Job) -> str:
    status = job.body["status"]
    when = f", scheduled for {status['publishAt']}" if "publishAt" in status else ""
    what = {
        "upload": "would upload",
        "replace": "would upload a replacement",
        "update": "would update",
        "complete": "would finish",
    }
    return f"{what[job.action]} {job.body['snippet']['title']!r} as {status['privacyStatus']}{when}"
