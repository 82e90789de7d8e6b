"""Upload finished episodes to YouTube: one channel per language, never the same video twice.

The package, one idea per module:

- `slots`: a video slot, the unit uploaded exactly once (a language's long video, or one of its Shorts)
- `metadata`: title, description, tags (zray's slot and content tags included), privacy, schedule
- `client`: the googleapiclient resource, backoff, and quota counting per call
- `resumable`: the resumable upload protocol (sessions saved before their first byte)
- `channel`: videos already on the channel: the look-up by slot tag, metadata updates
- `attachments`: thumbnail and caption track
- `short_thumbnails`: a Short's 9:16 thumbnail, set once YouTube has processed the Short
- `decisions`: each slot's job from its record, and the calls (quota) it needs
- `records`: what an entry of published.json / upload_state.json holds
- `insert`: the never-twice insert (ask the saved session, search the channel, then upload)
- `upload`: the orchestration (`upload_episode`, `upload_videos`)
- `report`: what an upload did, per slot

It needs the `publish` extra (google-api-python-client, google-auth-httplib2); without it,
importing this package raises `MissingExtra`, a one-line user error.
"""

from __future__ import annotations

from zray.publish.errors import PUBLISH_EXTRA_HINT, MissingExtra

try:
    import google_auth_httplib2  # noqa: F401
    import googleapiclient  # noqa: F401
    import httplib2  # noqa: F401
except ImportError as exc:
    raise MissingExtra(
        f"YouTube upload needs {exc.name or 'the Google client libraries'}: {PUBLISH_EXTRA_HINT}"
    ) from None

from zray.episode import PUBLISHED_FILE, UPLOAD_STATE_FILE
from zray.publish.youtube.attachments import set_thumbnail, thumbnail_bytes, upload_captions
from zray.publish.youtube.channel import SEARCH_CALLS, SEARCH_DEPTH, FoundVideo, find_tagged, update_video
from zray.publish.youtube.client import (
    Api,
    Backoff,
    UploadFailed,
    authorized_http,
    build_client,
    describe,
    describe_failure,
)
from zray.publish.youtube.decisions import Action, Job, plan_slot
from zray.publish.youtube.metadata import (
    MetadataError,
    build_description,
    build_metadata,
    content_tag,
    hashtags,
    metadata_problems,
    schedule_time,
    slot_metadata,
    youtube_language,
)
from zray.publish.youtube.report import LanguageResult, UploadReport, VideoResult
from zray.publish.youtube.resumable import query_session, send_video
from zray.publish.youtube.slots import (
    VideoSlot,
    episode_shorts,
    long_video,
    short_description,
    short_name,
    short_title,
    short_video,
)
from zray.publish.youtube.upload import (
    UploadOptions,
    choose_languages,
    planned_calls,
    project_of,
    short_slots,
    upload_episode,
    upload_shorts,
    upload_videos,
)

__all__ = [
    "PUBLISHED_FILE",
    "SEARCH_CALLS",
    "SEARCH_DEPTH",
    "UPLOAD_STATE_FILE",
    "Action",
    "Api",
    "Backoff",
    "FoundVideo",
    "Job",
    "LanguageResult",
    "MetadataError",
    "UploadFailed",
    "UploadOptions",
    "UploadReport",
    "VideoResult",
    "VideoSlot",
    "authorized_http",
    "build_client",
    "build_description",
    "build_metadata",
    "choose_languages",
    "content_tag",
    "describe",
    "describe_failure",
    "episode_shorts",
    "find_tagged",
    "hashtags",
    "long_video",
    "metadata_problems",
    "plan_slot",
    "planned_calls",
    "project_of",
    "query_session",
    "schedule_time",
    "send_video",
    "set_thumbnail",
    "short_description",
    "short_name",
    "short_slots",
    "short_title",
    "short_video",
    "slot_metadata",
    "thumbnail_bytes",
    "update_video",
    "upload_captions",
    "upload_episode",
    "upload_shorts",
    "upload_videos",
    "youtube_language",
]
