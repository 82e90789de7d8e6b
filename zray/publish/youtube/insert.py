"""Put one video slot on YouTube at most once, even when the folder's records are lost.

Before every `videos.insert`:
1. a saved resumable session is asked for its state (`bytes */N`): one that YouTube finished is
   the upload (a video that just finished may not be listed on the channel yet); one short of its
   last byte is resumed when it carries this file and metadata, else dropped (it never becomes a
   video);
2. the channel's newest uploads are searched for the slot tag: a video found is the upload, and
   its record is restored.
Only then does a new session open. The writes are ordered so that a crash at any point leaves
either a record of the upload or a saved session that step 1 asks about: the session is saved
before its first byte, published.json is written the moment YouTube answers with the video, and
the session is dropped only after that write.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from zray.episode import KeyedRecord
from zray.keys import content_tag
from zray.lock import slot_lock
from zray.publish.checked import checked_copy
from zray.publish.youtube import records
from zray.publish.youtube.channel import find_tagged
from zray.publish.youtube.client import Api
from zray.publish.youtube.decisions import Job, known_videos
from zray.publish.youtube.resumable import query_session, send_video
from zray.store import Store

# uploaded: a new video; resumed: a session of an earlier run went on; finished: a session of an
# earlier run had finished; found: the video was on the channel already.
How = Literal["uploaded", "resumed", "finished", "found"]
ProgressCallback = Callable[[str, int, int], None]  # (slot name, acknowledged bytes, total bytes)


@dataclass
class Placed:
    entry: dict[str, Any]  # as written to published.json
    how: How

    @property
    def restored(self) -> bool:
        return self.how in ("finished", "found")


def insert_once(
    api: Api,
    job: Job,
    *,
    store: Store,
    published: KeyedRecord,
    state: KeyedRecord,
    now: datetime,
    sha256: str | None,
    progress: ProgressCallback | None = None,
) -> Placed:
    """`sha256`: the video's hash in run.json; a file that differs sends nothing (DamagedOutput).

    The whole find-then-insert holds the slot's lock beside the channel's tokens, so two processes
    uploading one slot at once (two copies of a folder) make one video: the second finds it."""
    with slot_lock(api.config.token_dir, job.slot.tag, what=f"{job.slot.tag} ({job.slot.name})"):
        return _insert_once(
            api, job, store=store, published=published, state=state, now=now, sha256=sha256, progress=progress
        )


def _insert_once(
    api: Api,
    job: Job,
    *,
    store: Store,
    published: KeyedRecord,
    state: KeyedRecord,
    now: datetime,
    sha256: str | None,
    progress: ProgressCallback | None,
) -> Placed:
    slot = job.slot
    with checked_copy(store, slot.video, sha256) as path:
        size = path.stat().st_size
        resume: tuple[str, int] | None = None
        saved = state.get(slot.name)
        if saved is not None:
            asked = query_session(api, saved["session_uri"], int(saved.get("size") or size))
            if isinstance(asked, dict):
                return _commit(records.from_session(saved, asked), "finished", published, state, slot.name)
            same = (saved.get("content_key"), saved.get("size"), saved.get("body")) == (
                slot.content_key,
                size,
                records.body_digest(job.body),
            )
            if asked is not None and same:
                resume = (saved["session_uri"], asked)
            else:
                state.put(slot.name, None)  # short of its last byte, it never becomes a video

        if resume is None:
            # A replacement is only one carrying this file; the video it replaces carries the slot tag too.
            wanted = content_tag(slot.content_key) if job.entry else None
            found = find_tagged(api, slot.tag, content=wanted, known=known_videos(job.entry))
            if found is not None:
                entry = records.from_channel(job, found, now=now)
                return _commit(entry, "found", published, state, slot.name)

        session: list[str] = [resume[0]] if resume else []

        def save(uri: str | None, acknowledged: int) -> None:
            if uri is None:
                state.put(slot.name, None)
                return
            session[:] = [uri]
            state.put(slot.name, records.session_entry(job, uri, acknowledged, size=size, now=now))

        def chunk(acknowledged: int, total: int) -> None:
            if progress is not None:
                progress(slot.name, acknowledged, total)

        video = send_video(api, path=path, body=job.body, resume=resume, save=save, progress=chunk)
        chunk(size, size)  # the last chunk's answer is the video itself, not a progress status
    entry = records.uploaded_entry(
        job, str(video["id"]), session_uri=session[0] if session else None, now=now
    )
    return _commit(entry, "resumed" if resume else "uploaded", published, state, slot.name)


def _commit(entry: dict[str, Any], how: How, published: KeyedRecord, state: KeyedRecord, name: str) -> Placed:
    published.put(name, entry)  # first: from here on the record says the video is up
    state.put(name, None)  # only then: until now the saved session was the upload's record
    return Placed(entry, how)
