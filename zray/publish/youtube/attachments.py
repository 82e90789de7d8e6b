"""What goes up beside a video: its custom thumbnail and its caption track."""

from __future__ import annotations

import io
from typing import Literal

from googleapiclient.errors import HttpError
from googleapiclient.http import MediaIoBaseUpload
from PIL import Image

from zray.publish.youtube.client import Api, describe
from zray.publish.youtube.metadata import youtube_language

# insert: a new video, which has no track yet; adopt: keep zray's track if the video has one (a
# video found again after its record was lost); update: replace zray's track (or add one).
CaptionMode = Literal["insert", "adopt", "update"]


def thumbnail_bytes(data: bytes, *, max_bytes: int) -> tuple[bytes, str]:
    """The thumbnail as sent: the PNG when small enough, else a JPEG under the limit."""
    if len(data) <= max_bytes:
        return data, "image/png" if data.startswith(b"\x89PNG") else "image/jpeg"
    image = Image.open(io.BytesIO(data)).convert("RGB")
    while True:
        for quality in (92, 85, 75, 65):
            out = io.BytesIO()
            image.save(out, format="JPEG", quality=quality, optimize=True)
            if out.tell() <= max_bytes:
                return out.getvalue(), "image/jpeg"
        image = image.resize((max(1, image.width * 3 // 4), max(1, image.height * 3 // 4)), Image.LANCZOS)


def set_thumbnail(api: Api, video_id: str, data: bytes) -> str | None:
    """Set the video's thumbnail; returns a warning when the channel may not have custom thumbnails."""
    payload, mimetype = thumbnail_bytes(data, max_bytes=api.config.thumbnail_max_bytes)
    request = api.youtube.thumbnails().set(
        videoId=video_id, media_body=MediaIoBaseUpload(io.BytesIO(payload), mimetype=mimetype)
    )
    try:
        api.execute(request, "thumbnails.set")
    except HttpError as exc:
        if exc.status_code == 403:
            return (
                f"thumbnail not set ({describe(exc)}): custom thumbnails need a verified channel, "
                "see https://www.youtube.com/verify; rerun with --force after verifying"
            )
        raise
    return None


def upload_captions(api: Api, video_id: str, lang: str, srt: bytes, *, mode: CaptionMode) -> str:
    """Add the language's caption track, or keep or replace the one zray added; returns its id."""
    language = youtube_language(lang)
    snippet = {"videoId": video_id, "language": language, "name": "", "isDraft": False}

    def media() -> MediaIoBaseUpload:
        return MediaIoBaseUpload(io.BytesIO(srt), mimetype="application/octet-stream")

    if mode != "insert":
        listed = api.execute(api.youtube.captions().list(part="snippet", videoId=video_id), "captions.list")
        for item in listed.get("items", []):
            theirs = item.get("snippet", {})
            if theirs.get("language") == language and theirs.get("name", "") == "":
                if mode == "adopt":
                    return str(item["id"])
                request = api.youtube.captions().update(
                    part="snippet", body={"id": item["id"], "snippet": {"isDraft": False}}, media_body=media()
                )
                return str(api.execute(request, "captions.update")["id"])
    request = api.youtube.captions().insert(part="snippet", body={"snippet": snippet}, media_body=media())
    return str(api.execute(request, "captions.insert")["id"])
