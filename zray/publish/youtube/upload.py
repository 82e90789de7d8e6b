"""Upload a finished episode's videos, one channel per language, safe to rerun.

Every video slot goes through the same steps: its metadata is built and checked against
YouTube's limits, and its job decided from its record, before anything is sent; the quota the
whole plan needs is checked next; then each video goes up at most once (`insert.insert_once`),
followed by its thumbnail and captions, each recorded in published.json as soon as YouTube
answers. One slot's failure is reported and the others go on.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any

import httplib2
from google.auth.exceptions import RefreshError
from google.oauth2.credentials import Credentials

from zray.episode import Episode, EpisodeError, KeyedRecord, published_record, upload_state
from zray.publish import auth
from zray.publish.checked import DamagedOutput, read_checked, recorded_sha256
from zray.publish.errors import AuthError, UnknownLanguage
from zray.publish.quota import QuotaLedger, plan_units
from zray.publish.settings import Privacy, YouTubeConfig
from zray.publish.youtube import short_thumbnails
from zray.publish.youtube.attachments import CaptionMode, set_thumbnail, upload_captions
from zray.publish.youtube.channel import update_video
from zray.publish.youtube.client import Api, authorized_http, build_client, client_id, describe_failure
from zray.publish.youtube.decisions import Job, dry_run_message, plan_slot, total_calls
from zray.publish.youtube.insert import ProgressCallback, insert_once
from zray.publish.youtube.metadata import MetadataError, aware, iso
from zray.publish.youtube.records import UNKNOWN
from zray.publish.youtube.report import UploadReport, VideoResult
from zray.publish.youtube.slots import VideoSlot, episode_shorts, long_video, short_name
from zray.review.record import not_approved_line, unapproved, unapproved_shorts


@dataclass(frozen=True, kw_only=True)
class UploadOptions:
    """How one command uploads: the same for every video it sends (long videos and Shorts).

    `http_factory` makes the plain httplib2.Http under each channel's authorized one (tests trust a
    fake's certificate with it); `progress(slot, acknowledged, total)` is called after every chunk
    YouTube acknowledged; `project` only names the project in the `zray auth` hint.
    """

    config: YouTubeConfig
    credentials_for: Callable[[str], Credentials]
    privacy: Privacy | None = None
    dry_run: bool = False
    force: bool = False
    replace: bool = False
    now: datetime | None = None
    http_factory: Callable[[], httplib2.Http] | None = None
    progress: ProgressCallback | None = None
    sleep: Callable[[float], None] = time.sleep
    project: str | None = None


def project_of(episode: Episode, override: str | None = None) -> str:
    """The project a token belongs to: the episode folder's parent folder, unless given."""
    return override or PurePosixPath(episode.store.root.rstrip("/")).parent.name or "default"


def choose_languages(episode: Episode, langs: Iterable[str] | None) -> list[str]:
    """The languages asked for (any case: `EN` is `en`), refused in one line when the episode lacks one."""
    available = episode.languages
    if langs is None:
        return list(available)
    by_case = {lang.casefold(): lang for lang in available}
    asked = list(dict.fromkeys(langs))
    missing = [lang for lang in asked if lang.casefold() not in by_case]
    if missing:
        raise UnknownLanguage(
            f"--lang {', '.join(missing)}: {episode.url} has no finished video in that language "
            f"(it has {', '.join(available) or 'none'})"
        )
    return list(dict.fromkeys(by_case[lang.casefold()] for lang in asked))


def upload_episode(
    episode: Episode,
    options: UploadOptions,
    *,
    langs: Iterable[str] | None = None,
    require_review: bool = False,
    shorts: bool = False,
) -> UploadReport:
    """Upload every (or the chosen) language's long video of a finished episode to its channel,
    and with `shorts` then its Shorts (see `upload_shorts`).

    Raises UnknownLanguage for a language the episode does not have, RecordError when
    published.json or upload_state.json cannot be trusted, and QuotaError, before any request,
    when the planned calls would exceed today's quota. How it uploads is `options`.
    `require_review` (the `review.required` setting): a language whose current video is not approved in `zray review`
    is not uploaded, and counts as a failure.
    """
    slots: list[VideoSlot | VideoResult] = []
    chosen = choose_languages(episode, langs)
    held = unapproved(episode, chosen) if require_review else []
    for lang in chosen:
        if lang in held:
            slots.append(VideoResult(lang, "unapproved", message=not_approved_line(lang, episode.url)))
            continue
        try:
            slots.append(long_video(episode, lang))
        except EpisodeError as exc:
            slots.append(VideoResult(lang, "failed", message=str(exc)))
    if not shorts:
        return upload_videos(episode, slots, options)
    # Both buckets must hold the Shorts too before anything starts: they are counted now, and
    # their descriptions are made again once the long videos are up (to name them).
    ahead = planned_calls(episode, short_slots(episode, chosen, require_review=require_review), options)
    first = upload_videos(episode, slots, options, reserve=ahead)
    second = upload_shorts(episode, chosen, options, require_review=require_review)
    units = {k: first.units.get(k, 0) + second.units.get(k, 0) for k in {*first.units, *second.units}}
    return UploadReport(first.results + second.results, units=units, dry_run=options.dry_run)


def short_slots(
    episode: Episode, langs: Iterable[str], *, require_review: bool = False
) -> list[VideoSlot | VideoResult]:
    """Every Short of the languages, each a slot whose description names the language's long video
    when published.json says it is on YouTube; Shorts not approved in review are held back."""
    published = published_record(episode.store, episode.identity)
    slots: list[VideoSlot | VideoResult] = []
    langs = list(langs)
    held = unapproved_shorts(episode, langs) if require_review else []
    for lang in langs:
        made = episode.shorts(lang)
        if lang in held:
            slots += [
                VideoResult(
                    lang,
                    "unapproved",
                    message=f"{short_name(lang, s.number)}: {not_approved_line(lang, episode.url)} (Shorts)",
                    slot=short_name(lang, s.number),
                )
                for s in made
            ]
            continue
        long_id = (published.get(lang) or {}).get("video_id")
        slots += episode_shorts(episode, lang, long_video_id=long_id)
    return slots


def upload_shorts(
    episode: Episode, langs: Iterable[str], options: UploadOptions, *, require_review: bool = False
) -> UploadReport:
    """Upload the languages' Shorts to their channels through the never-twice path of long videos
    (one slot per Short, `<lang>/short-<nn>`): no chapter list and no captions calls (the captions
    are burned in); a 9:16 thumbnail once YouTube has processed the Short (`short_thumbnails`)."""
    return upload_videos(episode, short_slots(episode, langs, require_review=require_review), options)


def planned_calls(
    episode: Episode, slots: Sequence[VideoSlot | VideoResult], options: UploadOptions
) -> dict[str, int]:
    """The API calls uploading these slots would make (the worst case), as their records stand."""
    now = aware(options.now or datetime.now(UTC))
    published = published_record(episode.store, episode.identity)
    jobs, _, _ = _plan_jobs(episode, slots, published, dataclasses.replace(options, now=now))
    return total_calls(jobs)


def upload_videos(
    episode: Episode,
    slots: Sequence[VideoSlot | VideoResult],
    options: UploadOptions,
    *,
    reserve: Mapping[str, int] | None = None,
) -> UploadReport:
    """Upload any video slots of an episode (long videos, Shorts): the engine of `upload_episode`.

    A slot that could not even be described is passed as its failed result, keeping the report in
    order. Credentials are asked per slot language (one channel per language). `reserve`: calls
    that will follow these (a language's Shorts after its long video), counted in the quota check
    before anything is sent.
    """
    now = aware(options.now or datetime.now(UTC))
    options = dataclasses.replace(options, now=now)
    config = options.config
    # Read before anything else: a record that cannot be trusted stops the upload in one line.
    published = published_record(episode.store, episode.identity)
    state = upload_state(episode.store, episode.identity)
    jobs, results, order = _plan_jobs(episode, slots, published, options)
    units = plan_units(total_calls(jobs), config)
    ahead = dict(reserve or {})
    if options.dry_run:
        with contextlib.suppress(AuthError):  # without client_secret.json there is no ledger to ask
            QuotaLedger(client_id=auth.client_id(config), config=config, now=now).check(
                _add_calls(total_calls(jobs), ahead)
            )
        for job in jobs:
            results[job.name] = _dry_result(job)
        return UploadReport([results[name] for name in order], units=units, dry_run=True)

    _forget_recorded_sessions(jobs, published, state)
    active = [job for job in jobs if job.calls()]
    for job in jobs:
        if job not in active:
            action = "skipped" if job.action == "skip" else "changed"
            results[job.name] = _result(job.slot, action, (job.entry or {}).get("video_id"), job.message)

    # Credentials first (a missing token fails its slot), then the quota check, then requests.
    apis: dict[str, Api] = {}
    ledgers: dict[str, QuotaLedger] = {}
    for job in active:
        try:
            credentials = options.credentials_for(job.slot.lang)
        except (AuthError, RefreshError) as exc:
            results[job.name] = _result(job.slot, "failed", message=str(exc))
            continue
        client = client_id(credentials, config)
        ledger = ledgers.setdefault(client, QuotaLedger(client_id=client, config=config, now=now))
        http = authorized_http(credentials, config=config, http_factory=options.http_factory)
        apis[job.name] = Api(build_client(http, config=config), http, config, ledger, options.sleep)
    if ahead and not ledgers:  # nothing to send now, but what follows must fit
        with contextlib.suppress(AuthError):
            QuotaLedger(client_id=auth.client_id(config), config=config, now=now).check(ahead)
    for ledger in ledgers.values():
        mine = total_calls(job for job in active if (api := apis.get(job.name)) and api.ledger is ledger)
        ledger.check(_add_calls(mine, ahead))

    for job in active:
        api = apis.get(job.name)
        if api is None:
            continue
        try:
            results[job.name] = _run(
                job,
                api,
                episode,
                published,
                state,
                progress=options.progress,
                now=now,
                privacy_given=options.privacy is not None,
            )
        except DamagedOutput as exc:  # nothing of that file was sent
            video_id = (published.get(job.name) or {}).get("video_id")
            results[job.name] = _result(job.slot, "failed", video_id, str(exc))
        except (AuthError, RefreshError):
            hint = auth.auth_hint(project_of(episode, options.project), job.slot.lang)
            results[job.name] = _result(job.slot, "failed", message=f"the YouTube token was refused; {hint}")
        except Exception as exc:  # one video's failure must not stop the others
            video_id = (published.get(job.name) or {}).get("video_id")
            results[job.name] = _result(job.slot, "failed", video_id, describe_failure(exc))
    return UploadReport([results[name] for name in order], units=units)


def _plan_jobs(
    episode: Episode,
    slots: Sequence[VideoSlot | VideoResult],
    published: KeyedRecord,
    options: UploadOptions,
) -> tuple[list[Job], dict[str, VideoResult], list[str]]:
    """Each slot's job, decided from its record before any request; the slots that cannot go up
    (metadata over YouTube's limits, a missing file) as their failed results; the report's order.
    `options.now` is set (time zone aware)."""
    assert options.now is not None
    date_published = episode.script.date_published

    def checksum(key: str) -> str:
        try:
            return episode.store.checksum(key)
        except FileNotFoundError:
            raise EpisodeError(
                f"{episode.store.url(key)} is missing; run `zray run` on the script again"
            ) from None

    results: dict[str, VideoResult] = {}
    order: list[str] = []
    jobs: list[Job] = []
    for item in slots:
        order.append(item.name)
        if isinstance(item, VideoResult):
            results[item.name] = item
            continue
        try:
            jobs.append(
                plan_slot(
                    item,
                    published.get(item.name),
                    config=options.config,
                    privacy=options.privacy,
                    date_published=date_published,
                    now=options.now,
                    force=options.force,
                    replace=options.replace,
                    checksum=checksum,
                )
            )
        except (MetadataError, EpisodeError) as exc:
            results[item.name] = _result(item, "failed", message=str(exc))
    return jobs, results, order


def _add_calls(a: Mapping[str, int], b: Mapping[str, int]) -> dict[str, int]:
    return {method: a.get(method, 0) + b.get(method, 0) for method in {*a, *b}}


def _result(
    slot: VideoSlot,
    action: str,
    video_id: str | None = None,
    message: str = "",
    warnings: list[str] | None = None,
) -> VideoResult:
    return VideoResult(
        slot.lang,
        action,
        video_id,
        message,
        warnings or [],
        slot=slot.name if slot.name != slot.lang else "",
    )


def _forget_recorded_sessions(jobs: list[Job], published: KeyedRecord, state: KeyedRecord) -> None:
    """A session whose video the record already names (a crash came between the two writes)."""
    for job in jobs:
        saved, entry = state.get(job.name), published.get(job.name)
        if saved and entry and saved.get("session_uri") == entry.get("session_uri"):
            state.put(job.name, None)


def _dry_result(job: Job) -> VideoResult:
    video_id = (job.entry or {}).get("video_id")
    if not job.calls():
        return _result(job.slot, "skipped" if job.action == "skip" else "changed", video_id, job.message)
    return _result(job.slot, "planned", video_id, dry_run_message(job))


def _run(
    job: Job,
    api: Api,
    episode: Episode,
    published: KeyedRecord,
    state: KeyedRecord,
    *,
    progress: ProgressCallback | None,
    now: datetime,
    privacy_given: bool,
) -> VideoResult:
    slot, body = job.slot, job.body
    # The slot's small files are read and checked first: a damaged one stops it before its video leaves.
    thumbnail = read_checked(episode, slot.thumbnail) if slot.thumbnail else None
    srt = read_checked(episode, slot.subtitles) if slot.subtitles else None
    status = body["status"]
    entry = dict(job.entry or {})
    captions: CaptionMode = "adopt"  # an entry without captions may hide a track a crash left unrecorded
    message = job.message
    if job.action in ("upload", "replace"):
        placed = insert_once(
            api,
            job,
            store=episode.store,
            published=published,
            state=state,
            now=now,
            sha256=recorded_sha256(episode, slot.video),
            progress=progress,
        )
        entry = placed.entry
        if placed.restored:
            action = "restored"
            message = _restored_message(placed.how, entry, job)
            if entry.get("content_key") != slot.content_key:
                return _result(slot, action, entry["video_id"], message)
        else:
            action = "replaced" if job.action == "replace" else placed.how
            captions = "insert"
    elif job.action == "update":
        update_video(api, entry["video_id"], body, privacy_given=privacy_given)
        entry.update(
            title=body["snippet"]["title"],
            metadata=job.fingerprint,
            metadata_for=slot.content_key,
            updated_at=iso(now),
        )
        entry.pop("thumbnail", None)
        published.put(slot.name, entry)
        action, captions = "updated", "update"
    else:
        action = "completed"

    video_id = entry["video_id"]
    warnings: list[str] = []
    if thumbnail is not None and "thumbnail" not in entry:
        warning = set_thumbnail(api, video_id, thumbnail)
        entry["thumbnail"] = "refused" if warning else "set"
        warnings += [warning] if warning else []
        published.put(slot.name, entry)
    if slot.short_thumbnail and short_thumbnails.due(entry):
        entry["thumbnail"], line = short_thumbnails.finish(api, video_id, episode.store, slot.short_thumbnail)
        warnings += [line] if line else []
        published.put(slot.name, entry)
    if srt is not None and ("captions" not in entry or job.action == "update"):
        entry["captions"] = upload_captions(api, video_id, slot.lang, srt, mode=captions)
        published.put(slot.name, entry)
    if not message and action != "completed" and "publishAt" in status:
        message = f"scheduled for {status['publishAt']}"
    return _result(slot, action, video_id, message, warnings)


def _restored_message(how: str, entry: dict[str, Any], job: Job) -> str:
    where = (
        "an earlier run's upload had finished (its saved session said so)"
        if how == "finished"
        else f"found on the channel by its tag {job.slot.tag}"
    )
    if entry.get("content_key") != job.slot.content_key:
        return (
            f"{where}; its record is restored, but the video changed since it was uploaded: nothing more "
            "done; --force updates that video's title, description, thumbnail and captions, --replace "
            "uploads the new video"
        )
    if entry.get("metadata") in (UNKNOWN, None) or entry.get("metadata") != job.fingerprint:
        return f"{where}; its record is restored; its metadata differs from the script's: --force updates it"
    return f"{where}; its record is restored, nothing uploaded twice"
