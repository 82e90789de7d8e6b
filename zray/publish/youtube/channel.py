"""The videos already on a channel: finding one by its slot tag, and updating one's metadata.

The look-up is what keeps a lost record from uploading a video twice: before every insert the
channel's newest uploads are searched for the slot tag (channels.list -> the uploads playlist ->
playlistItems.list -> videos.list for the tags). It reads at most the newest `SEARCH_DEPTH`
uploads, and its calls are counted in the quota plan before anything starts (`SEARCH_CALLS`).
A video is listed a little after it finishes, which is why a saved session is asked first.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from googleapiclient.errors import HttpError

from zray.publish.youtube.client import Api, UploadFailed
from zray.publish.youtube.metadata import tag_of
from zray.publish.youtube.resumable import VIDEO_PARTS

SEARCH_DEPTH = 200
PAGE_SIZE = 50  # the most playlistItems.list returns, and videos.list accepts, per call
_PAGES = math.ceil(SEARCH_DEPTH / PAGE_SIZE)
SEARCH_CALLS: dict[str, int] = {"channels.list": 1, "playlistItems.list": _PAGES, "videos.list": _PAGES}
# Status fields videos.update may set; the rest (uploadStatus, madeForKids, ...) are YouTube's.
MUTABLE_STATUS = (
    "privacyStatus",
    "publishAt",
    "embeddable",
    "license",
    "publicStatsViewable",
    "selfDeclaredMadeForKids",
    "containsSyntheticMedia",
)


@dataclass(frozen=True)
class FoundVideo:
    video_id: str
    snippet: dict[str, Any]
    status: dict[str, Any]

    @property
    def content_tag(self) -> str | None:
        return tag_of(self.snippet.get("tags") or [], content=True)


def find_tagged(
    api: Api, tag: str, *, content: str | None = None, known: Collection[str] = ()
) -> FoundVideo | None:
    """The newest of the channel's newest uploads that carries `tag` (and the content tag
    `content`, when given), leaving out the videos in `known`."""
    channels = api.execute(api.youtube.channels().list(part="contentDetails", mine=True), "channels.list")
    items = channels.get("items") or []
    uploads = (items[0].get("contentDetails", {}).get("relatedPlaylists", {}) if items else {}).get("uploads")
    if not uploads:
        return None  # a channel with no uploads playlist has no videos
    page_token: str | None = None
    seen = 0
    while seen < SEARCH_DEPTH:
        request = api.youtube.playlistItems().list(
            part="contentDetails",
            playlistId=uploads,
            maxResults=min(PAGE_SIZE, SEARCH_DEPTH - seen),
            **({"pageToken": page_token} if page_token else {}),
        )
        try:
            page = api.execute(request, "playlistItems.list")
        except HttpError as exc:
            if exc.status_code == 404:
                return None  # YouTube makes the uploads playlist with the first upload
            raise
        ids = [
            item["contentDetails"]["videoId"]
            for item in page.get("items") or []
            if item.get("contentDetails", {}).get("videoId")
        ]
        seen += len(ids)
        found = _tagged(api, ids, tag, content=content, known=known)
        if found is not None:
            return found
        page_token = page.get("nextPageToken")
        if not page_token or not ids:
            return None
    return None


def _tagged(
    api: Api, ids: list[str], tag: str, *, content: str | None, known: Collection[str]
) -> FoundVideo | None:
    wanted = [video_id for video_id in ids if video_id not in known]
    if not wanted:
        return None
    listed = api.execute(api.youtube.videos().list(part=VIDEO_PARTS, id=",".join(wanted)), "videos.list")
    by_id = {item.get("id"): item for item in listed.get("items") or []}
    for video_id in wanted:  # the playlist's order: newest first
        item = by_id.get(video_id)
        if item is None:
            continue
        snippet = item.get("snippet") or {}
        tags = snippet.get("tags") or []
        if tag in tags and (content is None or content in tags):
            return FoundVideo(video_id, snippet, item.get("status") or {})
    return None


def update_video(api: Api, video_id: str, body: dict[str, Any], *, privacy_given: bool) -> None:
    """Push title, description, tags (zray's two included) and disclosures to an uploaded video.

    Its privacy is left as it is (a video YouTube already published stays public) unless a new
    date is scheduled or a privacy was asked for explicitly.
    """
    listed = api.execute(api.youtube.videos().list(part="status", id=video_id), "videos.list")
    items = listed.get("items", [])
    if not items:
        raise UploadFailed(f"video {video_id} is gone from YouTube; rerun with --replace to upload it again")
    current = items[0].get("status", {})
    status = {k: current[k] for k in MUTABLE_STATUS if k in current}
    wanted = body["status"]
    status["selfDeclaredMadeForKids"] = wanted["selfDeclaredMadeForKids"]
    status["containsSyntheticMedia"] = wanted["containsSyntheticMedia"]
    if "publishAt" in wanted or privacy_given:
        status["privacyStatus"] = wanted["privacyStatus"]
        status.pop("publishAt", None)
        if "publishAt" in wanted:
            status["publishAt"] = wanted["publishAt"]
    request = api.youtube.videos().update(
        part=VIDEO_PARTS, body={"id": video_id, "snippet": body["snippet"], "status": status}
    )
    api.execute(request, "videos.update")
