"""YouTube's resumable upload protocol: open a session, send chunks, ask a session where it stands.

A session exists from the moment YouTube opens it; the video exists from the moment YouTube holds
its last byte, whether or not its answer reached us. So the session is reported (`save`) before
the first byte leaves and after every acknowledged chunk, and a saved session is asked for its
state (`bytes */N`) before anything new starts: a session YouTube finished answers with the video.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from googleapiclient.errors import HttpError
from googleapiclient.http import MediaIoBaseUpload

from zray.publish.youtube.client import TRANSPORT_ERRORS, Api, Backoff, UploadFailed, describe, retriable

VIDEO_PARTS = "snippet,status"
# (session URI, or None when the session is gone; bytes YouTube acknowledged)
SessionSaver = Callable[[str | None, int], None]
ChunkProgress = Callable[[int, int], None]  # (acknowledged bytes, total bytes)


class _ChunkedFile(MediaIoBaseUpload):
    """Chunks read into memory rather than sent as stream slices: httplib2 silently resends a
    request once when the connection drops, and only a bytes body can be sent a second time."""

    def has_stream(self) -> bool:
        return False


class _OpeningTransport:
    """The transport for one upload's requests. googleapiclient opens the session and sends the
    first chunk in one `next_chunk` call; this reports the session the moment YouTube opens it, so
    it is saved before a byte is sent (a file of one chunk is finished by that first request)."""

    def __init__(self, http: Any, opened: Callable[[str], None]):
        self._http = http
        self._opened = opened

    def request(self, uri: str, method: str = "GET", *args: Any, **kwargs: Any) -> tuple[Any, bytes]:
        resp, content = self._http.request(uri, method, *args, **kwargs)
        if method == "POST" and resp.status == 200 and "location" in resp:
            self._opened(resp["location"])
        return resp, content


def query_session(
    api: Api, session_uri: str, size: int, backoff: Backoff | None = None
) -> dict[str, Any] | int | None:
    """Ask YouTube how much of a resumable upload it holds (an empty PUT, `bytes */TOTAL`).

    Returns the finished video resource, the number of bytes acknowledged, or None when the
    session has expired (they last about a week).
    """
    backoff = backoff or api.backoff()
    headers = {"Content-Range": f"bytes */{size}", "Content-Length": "0"}
    while True:
        try:
            resp, content = api.http.request(session_uri, "PUT", body=b"", headers=headers)
        except TRANSPORT_ERRORS as exc:
            backoff.wait(exc, "resumable session query")
            continue
        if resp.status in (200, 201):
            return json.loads(content)
        if resp.status == 308:
            answered = resp.get("range")
            return int(answered.rsplit("-", 1)[1]) + 1 if answered else 0
        if resp.status in (404, 410):
            return None
        if resp.status >= 500 or resp.status == 429:
            backoff.wait(HttpError(resp, content, uri=session_uri), "resumable session query")
            continue
        raise UploadFailed(f"resumable session query answered HTTP {resp.status}")


def send_video(
    api: Api,
    *,
    path: Path,
    body: dict[str, Any],
    resume: tuple[str, int] | None,
    save: SessionSaver,
    progress: ChunkProgress | None = None,
) -> dict[str, Any]:
    """Upload a file as a new video, or go on with a session at the offset YouTube acknowledged;
    returns YouTube's video resource."""
    size = path.stat().st_size
    backoff = api.backoff()
    with open(path, "rb") as fh:
        media = _ChunkedFile(fh, mimetype="video/mp4", chunksize=api.config.chunk_size, resumable=True)
        request = api.youtube.videos().insert(
            part=VIDEO_PARTS, body=body, media_body=media, notifySubscribers=api.config.notify_subscribers
        )
        if resume is not None:
            request.resumable_uri, request.resumable_progress = resume

        def opened(uri: str) -> None:
            api.record("videos.insert")  # the session's first request is the insert call
            save(uri, 0)

        transport = _OpeningTransport(request.http, opened)
        while True:
            starting = request.resumable_uri is None
            error: BaseException | None = None
            status = response = None
            try:
                status, response = request.next_chunk(http=transport)
            except (HttpError, *TRANSPORT_ERRORS) as exc:
                error = exc
            if error is None:
                if response is not None:
                    return response
                backoff.reset()
                save(request.resumable_uri, request.resumable_progress)
                if progress is not None and status is not None:
                    progress(request.resumable_progress, size)
                continue
            if not isinstance(error, HttpError):
                # next_chunk marks itself in error: its next call asks the server for the offset.
                backoff.wait(error, "resumable upload")
                continue
            if starting and request.resumable_uri is None and not retriable(error):
                api.record("videos.insert")
                raise UploadFailed(f"YouTube refused the upload: {describe(error)}")
            if not starting and error.status_code in (404, 410):
                # The session expired before its last byte, so it never became a video: start anew.
                request.resumable_uri, request.resumable_progress = None, 0
                save(None, 0)
                backoff.wait(error, "resumable upload")
                continue
            if not retriable(error):
                raise UploadFailed(f"YouTube refused a chunk: {describe(error)}")
            backoff.wait(error, "resumable upload")
            if request.resumable_uri is not None:
                # A 5xx may have kept part of the chunk: ask where to go on from.
                found = query_session(api, request.resumable_uri, size, backoff)
                if isinstance(found, dict):
                    return found
                if found is None:
                    request.resumable_uri, request.resumable_progress = None, 0
                    save(None, 0)
                else:
                    request.resumable_progress = found
