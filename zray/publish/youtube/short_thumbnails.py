"""A custom thumbnail for each Short, set once YouTube has processed it.

`thumbnails.set` accepts a Short only after its processing has succeeded, which takes a while after
the upload ends. So the thumbnail is a step of its own: a `videos.list` look at the Short's
`processingDetails`, then `thumbnails.set` when it says `succeeded`. A Short still processing is
recorded as such (`"thumbnail": "processing"` in published.json) and finished by the next
`zray upload`; both calls are counted in the quota plan before anything is sent, each time they may
be made. The thumbnail itself is 9:16, made from the Short's first scene's picture and its chapter
(`zray.media.thumbnail.short_thumbnail`), the same bytes every time.
"""

from __future__ import annotations

import io
from typing import Any

from PIL import Image

from zray.publish.youtube.attachments import set_thumbnail
from zray.publish.youtube.client import Api
from zray.publish.youtube.slots import ShortThumbnail
from zray.store import Store

# The calls one attempt makes: the processing look-up, then the thumbnail.
CALLS = {"videos.list": 1, "thumbnails.set": 1}
# Record values of a Short's "thumbnail": set, refused (a channel without custom thumbnails), or
# waiting for YouTube's processing. "failed": YouTube could not process the video at all.
PROCESSING = "processing"
FINISHED = {"succeeded"}
HOPELESS = {"failed", "rejected", "terminated"}


def due(entry: dict[str, Any] | None) -> bool:
    """Whether the Short's thumbnail still has to be set (never tried, or waiting for processing)."""
    return (entry or {}).get("thumbnail") in (None, PROCESSING)


def thumbnail_png(store: Store, thumbnail: ShortThumbnail) -> bytes:
    from zray.media.thumbnail import short_thumbnail

    with Image.open(io.BytesIO(store.read_bytes(thumbnail.picture))) as picture:
        return short_thumbnail(picture, thumbnail.text)


def processing_status(api: Api, video_id: str) -> str:
    """YouTube's `processingDetails.processingStatus` of a video ("" when it does not say)."""
    request = api.youtube.videos().list(part="processingDetails", id=video_id)
    items = api.execute(request, "videos.list").get("items") or []
    details = (items[0].get("processingDetails") or {}) if items else {}
    return str(details.get("processingStatus") or "")


def finish(api: Api, video_id: str, store: Store, thumbnail: ShortThumbnail) -> tuple[str, str | None]:
    """Set the Short's thumbnail if YouTube has processed it: (its record value, a line to report)."""
    status = processing_status(api, video_id)
    if status in FINISHED:
        refused = set_thumbnail(api, video_id, thumbnail_png(store, thumbnail))
        return ("refused", refused) if refused else ("set", None)
    if status in HOPELESS:
        return "failed", f"YouTube's processing of the Short {status}; no thumbnail set"
    return PROCESSING, "its thumbnail waits for YouTube's processing; the next `zray upload --shorts` sets it"
