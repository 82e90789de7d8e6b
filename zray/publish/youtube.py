"""Upload a finished episode to YouTube: one channel per language, safe to rerun.

Every language goes through the same steps: metadata is built and checked against YouTube's
limits before anything is sent; the video goes up as a resumable upload whose session and
acknowledged offset are saved in the episode folder after every chunk, so a crashed run resumes
where YouTube says it stopped; then the thumbnail and the captions. `published.json` records
each upload (written the moment YouTube returns the video id), so no rerun uploads twice.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import io
import json
import random
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import httplib2
from google.auth.exceptions import RefreshError
from google.oauth2.credentials import Credentials
from google_auth_httplib2 import AuthorizedHttp
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError
from googleapiclient.http import HttpRequest, MediaIoBaseUpload
from PIL import Image

from zray import limits
from zray.episode import Episode, EpisodeError
from zray.publish import auth
from zray.publish.auth import AuthError
from zray.publish.quota import QuotaLedger, plan_units
from zray.publish.settings import Privacy, YouTubeConfig

PUBLISHED_FILE = "published.json"
UPLOAD_STATE_FILE = "upload_state.json"
VIDEO_PARTS = "snippet,status"
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
TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    httplib2.HttpLib2Error,
    http.client.HTTPException,
)
MAX_BACKOFF_SECONDS = 64.0

Action = Literal["upload", "replace", "update", "complete", "skip", "changed"]
ProgressCallback = Callable[[str, int, int], None]  # (lang, acknowledged bytes, total bytes)


class MetadataError(ValueError):
    """Metadata over one of YouTube's limits; refused before anything is sent."""


class UploadFailed(RuntimeError):
    """A step that YouTube refused or that kept failing after every retry."""


# --- metadata --------------------------------------------------------------------------------------


def youtube_language(code: str) -> str:
    """A script language code as YouTube's BCP-47 spelling: es, pt-BR, zh-Hant, es-419."""
    first, *rest = code.split("-")
    subtags = [first.lower()]
    for part in rest:
        if len(part) == 2 and part.isalpha():
            subtags.append(part.upper())  # region
        elif len(part) == 4 and part.isalpha():
            subtags.append(part.title())  # script
        else:
            subtags.append(part.lower())
    return "-".join(subtags)


def hashtags(tags: Iterable[str], count: int) -> list[str]:
    """The first `count` tags as hashtags (`deep sea` -> `#DeepSea`); a hashtag has no spaces."""
    found: list[str] = []
    for tag in tags if count > 0 else ():
        words = re.findall(r"\w+", tag)
        if not words:
            continue
        text = words[0] if len(words) == 1 else "".join(w[:1].upper() + w[1:] for w in words)
        candidate = f"#{text}"
        if candidate.lower() not in (f.lower() for f in found):
            found.append(candidate)
        if len(found) == count:
            break
    return found


def build_description(description: str, chapters: str, tags: Iterable[str], *, count: int) -> str:
    """SEO description, then the chapter list, then a few hashtags, separated by blank lines."""
    parts = [description.strip(), chapters.strip(), " ".join(hashtags(tags, count))]
    return "\n\n".join(part for part in parts if part)


def schedule_time(date_published: datetime | None, now: datetime) -> str | None:
    """`publishAt` (UTC, ISO 8601) for a date still to come; None when it has passed or is unset."""
    if date_published is None:
        return None
    moment = date_published if date_published.tzinfo else date_published.replace(tzinfo=UTC)
    if moment <= _aware(now):
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_metadata(
    episode: Episode, lang: str, *, config: YouTubeConfig, privacy: Privacy | None = None, now: datetime
) -> dict[str, Any]:
    """The videos.insert body (snippet and status) for one language."""
    script = episode.script
    seo = script.seo_for(lang)
    tags = list(dict.fromkeys(t.strip() for t in seo.tags if t.strip()))
    language = youtube_language(lang)
    snippet = {
        "title": script.title(lang).strip(),
        "description": build_description(
            seo.description, episode.chapters(lang), tags, count=config.hashtags
        ),
        "tags": tags,
        "categoryId": config.category_id,
        "defaultLanguage": language,
        "defaultAudioLanguage": language,
    }
    status: dict[str, Any] = {
        "privacyStatus": privacy or config.privacy,
        "selfDeclaredMadeForKids": config.made_for_kids,
        "containsSyntheticMedia": config.synthetic_media,
    }
    publish_at = schedule_time(script.date_published, now)
    if publish_at:
        # YouTube publishes a scheduled video itself; until then it must be private.
        status.update(privacyStatus="private", publishAt=publish_at)
    return {"snippet": snippet, "status": status}


def metadata_problems(body: Mapping[str, Any]) -> list[str]:
    """Everything over YouTube's limits, each naming the field and the numbers."""
    snippet = body["snippet"]
    problems = [f"snippet.title: {m}" for m in limits.title_problems(snippet["title"])]
    if not snippet["title"]:
        problems.append("snippet.title: empty")
    problems += [f"snippet.description: {m}" for m in limits.description_problems(snippet["description"])]
    problems += [f"snippet.tags: {m}" for m in limits.tags_problems(snippet["tags"])]
    return problems


# --- the client ------------------------------------------------------------------------------------


def authorized_http(
    credentials: Credentials,
    *,
    config: YouTubeConfig,
    http_factory: Callable[[], httplib2.Http] | None = None,
) -> AuthorizedHttp:
    inner = http_factory() if http_factory else httplib2.Http(timeout=config.timeout_seconds)
    # httplib2 follows 308 as a redirect; in the resumable protocol it means "chunk taken, go on".
    inner.redirect_codes = inner.redirect_codes - {308}
    return AuthorizedHttp(credentials, http=inner)


def build_client(http: AuthorizedHttp, *, config: YouTubeConfig) -> Any:
    """The real googleapiclient resource, from the discovery document shipped with the client."""
    options = {"api_endpoint": config.api_endpoint} if config.api_endpoint else None
    return build(
        "youtube", "v3", http=http, static_discovery=True, cache_discovery=False, client_options=options
    )


def describe(exc: BaseException) -> str:
    if isinstance(exc, HttpError):
        return f"HTTP {exc.status_code}: {exc.reason or 'no reason given'}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _retriable(exc: BaseException) -> bool:
    if isinstance(exc, HttpError):
        return exc.status_code >= 500 or exc.status_code == 429
    return isinstance(exc, TRANSPORT_ERRORS)


class Backoff:
    """Exponential backoff with jitter across consecutive failures of one step."""

    def __init__(self, config: YouTubeConfig, sleep: Callable[[float], None]):
        self.config = config
        self.sleep = sleep
        self.failures = 0

    def wait(self, exc: BaseException, what: str) -> None:
        self.failures += 1
        if self.failures > self.config.retries:
            raise UploadFailed(
                f"{what} failed {self.failures} times in a row; last: {describe(exc)}"
            ) from None
        delay = min(self.config.backoff_seconds * 2 ** (self.failures - 1), MAX_BACKOFF_SECONDS)
        self.sleep(delay * random.uniform(0.5, 1.0))

    def reset(self) -> None:
        self.failures = 0


@dataclass
class Api:
    """One channel's client with what every call needs: retries and the quota ledger."""

    youtube: Any
    http: AuthorizedHttp
    config: YouTubeConfig
    ledger: QuotaLedger | None
    sleep: Callable[[float], None]

    def backoff(self) -> Backoff:
        return Backoff(self.config, self.sleep)

    def record(self, method: str) -> None:
        if self.ledger is not None:
            self.ledger.record(method)

    def execute(self, request: HttpRequest, method: str) -> Any:
        backoff = self.backoff()
        while True:
            try:
                response = request.execute()
            except HttpError as exc:
                if _retriable(exc):
                    backoff.wait(exc, method)
                    continue
                self.record(method)  # YouTube charges for requests it answered, refused ones too
                raise
            except TRANSPORT_ERRORS as exc:
                backoff.wait(exc, method)
                continue
            self.record(method)
            return response


# --- resumable video upload ------------------------------------------------------------------------


class _ChunkedFile(MediaIoBaseUpload):
    """Chunks read into memory rather than sent as stream slices: httplib2 silently resends a
    request once when the connection drops, and only a bytes body can be sent a second time."""

    def has_stream(self) -> bool:
        return False


class JsonRecord:
    """A small JSON file in the episode folder, rewritten atomically on every change."""

    def __init__(self, episode: Episode, key: str, *, strict: bool):
        self.store = episode.store
        self.key = key
        self.data: dict[str, Any] = {}
        if self.store.exists(key):
            try:
                data = json.loads(self.store.read_text(key))
                if not isinstance(data, dict):
                    raise ValueError("not a JSON object")
                self.data = data
            except ValueError as exc:
                if strict:
                    # Guessing here could upload a video twice.
                    raise UploadFailed(
                        f"{self.store.url(key)} is unreadable ({exc}); fix it or move it away"
                    ) from None

    def get(self, lang: str) -> dict[str, Any] | None:
        entry = self.data.get(lang)
        return dict(entry) if isinstance(entry, dict) else None

    def put(self, lang: str, entry: dict[str, Any] | None) -> None:
        if entry is None:
            if lang not in self.data:
                return
            del self.data[lang]
        else:
            self.data[lang] = entry
        if self.data:
            self.store.write_text(
                self.key, json.dumps(self.data, indent=1, ensure_ascii=False, sort_keys=True)
            )
        else:
            self.store.remove(self.key)


def query_session(api: Api, session_uri: str, size: int, backoff: Backoff) -> dict[str, Any] | int | None:
    """Ask YouTube how much of a resumable upload it holds (an empty PUT, `bytes */TOTAL`).

    Returns the finished video resource, the number of bytes acknowledged, or None when the
    session has expired.
    """
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


def upload_video(
    api: Api,
    *,
    lang: str,
    path: Path,
    body: dict[str, Any],
    content_key: str,
    state: JsonRecord,
    progress: ProgressCallback | None = None,
) -> tuple[dict[str, Any], bool]:
    """Upload (or resume uploading) one video; returns YouTube's video resource and whether it resumed."""
    size = path.stat().st_size
    backoff = api.backoff()
    saved = state.get(lang)
    # A session carries the metadata it was opened with: resume it only for the same file and metadata.
    metadata = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    usable = bool(
        saved
        and (saved.get("content_key"), saved.get("size"), saved.get("metadata"))
        == (content_key, size, metadata)
    )
    with open(path, "rb") as fh:
        media = _ChunkedFile(fh, mimetype="video/mp4", chunksize=api.config.chunk_size, resumable=True)
        request = api.youtube.videos().insert(
            part=VIDEO_PARTS, body=body, media_body=media, notifySubscribers=api.config.notify_subscribers
        )
        resumed = False
        if saved and usable:
            found = query_session(api, saved["session_uri"], size, backoff)
            if isinstance(found, dict):
                state.put(lang, None)
                return found, True
            if found is not None:
                request.resumable_uri = saved["session_uri"]
                request.resumable_progress = found
                resumed = True
        if saved and not resumed:
            state.put(lang, None)  # another file, or a session YouTube has forgotten

        def save() -> None:
            state.put(
                lang,
                {
                    "session_uri": request.resumable_uri,
                    "content_key": content_key,
                    "size": size,
                    "metadata": metadata,
                    "progress": request.resumable_progress,
                    "saved_at": _iso(datetime.now(UTC)),
                },
            )

        while True:
            starting = request.resumable_uri is None
            error: BaseException | None = None
            status = response = None
            try:
                status, response = request.next_chunk()
            except (HttpError, *TRANSPORT_ERRORS) as exc:
                error = exc
            if starting and request.resumable_uri is not None:
                api.record("videos.insert")  # the session's first request is the insert call
                save()
            if error is None:
                if response is not None:
                    state.put(lang, None)
                    return response, resumed
                backoff.reset()
                save()
                if progress is not None and status is not None:
                    progress(lang, request.resumable_progress, size)
                continue
            if not isinstance(error, HttpError):
                # next_chunk marks itself in error: its next call asks the server for the offset.
                backoff.wait(error, "resumable upload")
                continue
            if starting and request.resumable_uri is None and not _retriable(error):
                api.record("videos.insert")
                raise UploadFailed(f"YouTube refused the upload: {describe(error)}")
            if not starting and error.status_code in (404, 410):
                # The session expired (they last about a week): start a new one.
                request.resumable_uri, request.resumable_progress = None, 0
                state.put(lang, None)
                backoff.wait(error, "resumable upload")
                continue
            if not _retriable(error):
                raise UploadFailed(f"YouTube refused a chunk: {describe(error)}")
            backoff.wait(error, "resumable upload")
            if request.resumable_uri is not None:
                # A 5xx may have kept part of the chunk: ask where to go on from.
                found = query_session(api, request.resumable_uri, size, backoff)
                if isinstance(found, dict):
                    state.put(lang, None)
                    return found, resumed
                if found is None:
                    request.resumable_uri, request.resumable_progress = None, 0
                    state.put(lang, None)
                else:
                    request.resumable_progress = found


# --- thumbnail and captions ------------------------------------------------------------------------


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


def upload_captions(api: Api, video_id: str, lang: str, srt: bytes, *, replace_existing: bool) -> str:
    """Add the language's caption track (or replace the one zray added before); returns its id."""
    language = youtube_language(lang)
    snippet = {"videoId": video_id, "language": language, "name": "", "isDraft": False}

    def media() -> MediaIoBaseUpload:
        return MediaIoBaseUpload(io.BytesIO(srt), mimetype="application/octet-stream")

    if replace_existing:
        listed = api.execute(api.youtube.captions().list(part="snippet", videoId=video_id), "captions.list")
        for item in listed.get("items", []):
            theirs = item.get("snippet", {})
            if theirs.get("language") == language and theirs.get("name", "") == "":
                request = api.youtube.captions().update(
                    part="snippet", body={"id": item["id"], "snippet": {"isDraft": False}}, media_body=media()
                )
                return str(api.execute(request, "captions.update")["id"])
    request = api.youtube.captions().insert(part="snippet", body={"snippet": snippet}, media_body=media())
    return str(api.execute(request, "captions.insert")["id"])


def update_video(api: Api, video_id: str, body: dict[str, Any], *, privacy_given: bool) -> None:
    """Push title, description, tags and disclosures to an uploaded video.

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


# --- the episode -----------------------------------------------------------------------------------


@dataclass
class LanguageResult:
    lang: str
    action: str  # uploaded, resumed, replaced, updated, completed, skipped, changed, planned, failed
    video_id: str | None = None
    message: str = ""
    warnings: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return self.action == "failed"

    def line(self) -> str:
        where = f" https://youtu.be/{self.video_id}" if self.video_id else ""
        text = f"{self.lang}: {self.action}{where}"
        return f"{text}: {self.message}" if self.message else text


@dataclass
class UploadReport:
    results: list[LanguageResult]
    units: dict[str, int] = field(default_factory=dict)  # planned quota units by bucket
    dry_run: bool = False

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def failed(self) -> list[LanguageResult]:
        return [r for r in self.results if r.failed]

    def result(self, lang: str) -> LanguageResult:
        return next(r for r in self.results if r.lang == lang)

    def lines(self) -> list[str]:
        lines = [r.line() for r in self.results]
        lines += [f"{r.lang}: warning: {w}" for r in self.results for w in r.warnings]
        return lines


@dataclass
class _Job:
    lang: str
    action: Action
    body: dict[str, Any]
    fingerprint: str
    content_key: str
    entry: dict[str, Any] | None
    message: str = ""

    def calls(self) -> dict[str, int]:
        """The API calls this job will make, by method (the worst case, for the quota check)."""
        if self.action in ("upload", "replace"):
            return {"videos.insert": 1, "thumbnails.set": 1, "captions.insert": 1}
        if self.action == "update":
            methods = ("videos.list", "videos.update", "thumbnails.set", "captions.list", "captions.update")
            return dict.fromkeys(methods, 1)
        if self.action == "complete":
            entry = self.entry or {}
            missing = {"thumbnails.set": "thumbnail" not in entry, "captions.insert": "captions" not in entry}
            return {method: 1 for method, needed in missing.items() if needed}
        return {}


def _total_calls(jobs: Iterable[_Job]) -> dict[str, int]:
    total: dict[str, int] = {}
    for job in jobs:
        for method, count in job.calls().items():
            total[method] = total.get(method, 0) + count
    return total


def project_of(episode: Episode, override: str | None = None) -> str:
    """The project a token belongs to: the episode folder's parent folder, unless given."""
    return override or PurePosixPath(episode.store.root.rstrip("/")).parent.name or "default"


def upload_episode(
    episode: Episode,
    *,
    langs: Iterable[str] | None = None,
    privacy: Privacy | None = None,
    dry_run: bool = False,
    force: bool = False,
    replace: bool = False,
    config: YouTubeConfig,
    credentials_for: Callable[[str], Credentials],
    now: datetime | None = None,
    http_factory: Callable[[], httplib2.Http] | None = None,
    progress: ProgressCallback | None = None,
    sleep: Callable[[float], None] = time.sleep,
    project: str | None = None,
) -> UploadReport:
    """Upload every (or the chosen) language of a finished episode to its channel.

    A language that fails is reported and the others go on; the report says what failed.
    Raises ValueError for a language the episode does not have, and QuotaError, before any
    request, when the planned calls would exceed today's quota. `http_factory` makes the plain
    httplib2.Http under each channel's authorized one (tests trust a fake's certificate with it);
    `progress(lang, acknowledged, total)` is called after every chunk YouTube acknowledged;
    `project` only names the project in the `zray auth` hint.
    """
    now = _aware(now or datetime.now(UTC))
    chosen = _choose(episode, langs)
    published = JsonRecord(episode, PUBLISHED_FILE, strict=True)
    state = JsonRecord(episode, UPLOAD_STATE_FILE, strict=False)
    results: dict[str, LanguageResult] = {}
    jobs: list[_Job] = []
    for lang in chosen:
        try:
            jobs.append(
                _plan(
                    episode,
                    lang,
                    published,
                    config=config,
                    privacy=privacy,
                    now=now,
                    force=force,
                    replace=replace,
                )
            )
        except (MetadataError, EpisodeError) as exc:
            results[lang] = LanguageResult(lang, "failed", message=str(exc))
    units = plan_units(_total_calls(jobs), config)
    if dry_run:
        with contextlib.suppress(AuthError):  # without client_secret.json there is no ledger to ask
            QuotaLedger(client_id=auth.client_id(config), config=config, now=now).check(_total_calls(jobs))
        for job in jobs:
            results[job.lang] = _dry_result(job)
        return UploadReport([results[lang] for lang in chosen], units=units, dry_run=True)

    active = [job for job in jobs if job.calls()]
    for job in jobs:
        if job not in active:
            video_id = (job.entry or {}).get("video_id")
            action = "skipped" if job.action == "skip" else "changed"
            results[job.lang] = LanguageResult(job.lang, action, video_id, job.message)

    # Credentials first (a missing token fails its language), then the quota check, then requests.
    apis: dict[str, Api] = {}
    ledgers: dict[str, QuotaLedger] = {}
    for job in active:
        try:
            credentials = credentials_for(job.lang)
        except (AuthError, RefreshError) as exc:
            results[job.lang] = LanguageResult(job.lang, "failed", message=str(exc))
            continue
        client = _client_id(credentials, config)
        ledger = ledgers.setdefault(client, QuotaLedger(client_id=client, config=config, now=now))
        http = authorized_http(credentials, config=config, http_factory=http_factory)
        apis[job.lang] = Api(build_client(http, config=config), http, config, ledger, sleep)
    for ledger in ledgers.values():
        ledger.check(
            _total_calls(job for job in active if (api := apis.get(job.lang)) and api.ledger is ledger)
        )

    for job in active:
        api = apis.get(job.lang)
        if api is None:
            continue
        try:
            results[job.lang] = _run(
                job,
                api,
                episode,
                published,
                state,
                progress=progress,
                now=now,
                privacy_given=privacy is not None,
            )
        except (AuthError, RefreshError):
            hint = auth.auth_hint(project_of(episode, project), job.lang)
            results[job.lang] = LanguageResult(
                job.lang, "failed", message=f"the YouTube token was refused; {hint}"
            )
        except Exception as exc:  # one language's failure must not stop the others
            results[job.lang] = LanguageResult(
                job.lang, "failed", (published.get(job.lang) or {}).get("video_id"), describe_failure(exc)
            )
    return UploadReport([results[lang] for lang in chosen], units=units)


def describe_failure(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, UploadFailed) else describe(exc)


def _choose(episode: Episode, langs: Iterable[str] | None) -> list[str]:
    available = episode.languages
    if langs is None:
        return list(available)
    chosen = list(dict.fromkeys(langs))
    missing = [lang for lang in chosen if lang not in available]
    if missing:
        raise ValueError(
            f"language {', '.join(missing)} is not in {episode.url} (it has {', '.join(available) or 'none'})"
        )
    return chosen


def _fingerprint(episode: Episode, lang: str, body: dict[str, Any], privacy: str, date: str | None) -> str:
    """What the published metadata was made from. The inputs, not the derived status, so the
    passing of a scheduled date does not look like a change."""
    status = {k: v for k, v in body["status"].items() if k not in ("privacyStatus", "publishAt")}
    digest = hashlib.sha256()
    digest.update(json.dumps([body["snippet"], status, privacy, date], sort_keys=True).encode())
    digest.update(episode.store.checksum(episode.thumbnail(lang)).encode())
    digest.update(episode.store.checksum(episode.subtitles(lang)).encode())
    return digest.hexdigest()


def _plan(
    episode: Episode,
    lang: str,
    published: JsonRecord,
    *,
    config: YouTubeConfig,
    privacy: Privacy | None,
    now: datetime,
    force: bool,
    replace: bool,
) -> _Job:
    body = build_metadata(episode, lang, config=config, privacy=privacy, now=now)
    problems = metadata_problems(body)
    if problems:
        raise MetadataError("; ".join(problems) + " (nothing was sent)")
    date = episode.script.date_published
    fingerprint = _fingerprint(
        episode, lang, body, privacy or config.privacy, date.isoformat() if date else None
    )
    key = episode.content_key(lang)
    entry = published.get(lang)

    def job(action: Action, message: str = "") -> _Job:
        return _Job(lang, action, body, fingerprint, key, entry, message)

    if entry is None:
        return job("upload")
    video_id = entry.get("video_id")
    # What was last pushed to the video: its metadata's inputs, and for which version of the video.
    pushed_for = entry.get("metadata_for", entry.get("content_key"))
    stale = entry.get("metadata") != fingerprint or entry.get("thumbnail") == "refused" or pushed_for != key
    if entry.get("content_key") != key:
        if replace:
            return job("replace")
        if force and stale:
            return job(
                "update",
                "the video itself changed since upload: only its metadata, thumbnail and captions were updated",
            )
        return job(
            "changed",
            f"the video changed since it was uploaded as {video_id}; nothing done: --force updates that "
            "video's title, description, thumbnail and captions, --replace uploads the new video",
        )
    if "thumbnail" not in entry or "captions" not in entry:
        return job("complete")
    if stale:
        if force:
            return job("update")
        return job("skip", "metadata or thumbnail changed since upload; --force updates the video")
    return job("skip", "already uploaded")


def _dry_result(job: _Job) -> LanguageResult:
    video_id = (job.entry or {}).get("video_id")
    if not job.calls():
        return LanguageResult(
            job.lang, "skipped" if job.action == "skip" else "changed", video_id, job.message
        )
    status = job.body["status"]
    when = f", scheduled for {status['publishAt']}" if "publishAt" in status else ""
    what = {
        "upload": "would upload",
        "replace": "would upload a replacement",
        "update": "would update",
        "complete": "would finish",
    }
    message = f"{what[job.action]} {job.body['snippet']['title']!r} as {status['privacyStatus']}{when}"
    return LanguageResult(job.lang, "planned", video_id, message)


def _run(
    job: _Job,
    api: Api,
    episode: Episode,
    published: JsonRecord,
    state: JsonRecord,
    *,
    progress: ProgressCallback | None,
    now: datetime,
    privacy_given: bool,
) -> LanguageResult:
    lang, body = job.lang, job.body
    status = body["status"]
    entry = dict(job.entry or {})
    if job.action in ("upload", "replace"):
        with episode.store.local_copy(episode.video(lang)) as path:
            video, resumed = upload_video(
                api,
                lang=lang,
                path=path,
                body=body,
                content_key=job.content_key,
                state=state,
                progress=progress,
            )
        replaced = (
            [*entry.get("replaces", []), entry["video_id"]] if job.action == "replace" and entry else []
        )
        entry = {
            "video_id": video["id"],
            "content_key": job.content_key,
            "uploaded_at": _iso(now),
            "title": body["snippet"]["title"],
            "privacy": status["privacyStatus"],
            "publish_at": status.get("publishAt"),
            "metadata": job.fingerprint,
        }
        if replaced:
            entry["replaces"] = replaced
        published.put(lang, entry)  # before anything else can fail: this video must never go up twice
        action = "replaced" if job.action == "replace" else "resumed" if resumed else "uploaded"
    elif job.action == "update":
        update_video(api, entry["video_id"], body, privacy_given=privacy_given)
        entry.update(
            title=body["snippet"]["title"],
            metadata=job.fingerprint,
            metadata_for=job.content_key,
            updated_at=_iso(now),
        )
        entry.pop("thumbnail", None)
        published.put(lang, entry)
        action = "updated"
    else:
        action = "completed"

    video_id = entry["video_id"]
    warnings: list[str] = []
    if "thumbnail" not in entry:
        warning = set_thumbnail(api, video_id, episode.store.read_bytes(episode.thumbnail(lang)))
        entry["thumbnail"] = "refused" if warning else "set"
        warnings += [warning] if warning else []
        published.put(lang, entry)
    if "captions" not in entry or job.action == "update":
        srt = episode.store.read_bytes(episode.subtitles(lang))
        entry["captions"] = upload_captions(api, video_id, lang, srt, replace_existing="captions" in entry)
        published.put(lang, entry)
    when = f"scheduled for {status['publishAt']}" if action != "completed" and "publishAt" in status else ""
    return LanguageResult(lang, action, video_id, job.message or when, warnings)


def _client_id(credentials: Credentials, config: YouTubeConfig) -> str:
    found = getattr(credentials, "client_id", None)
    if found:
        return str(found)
    try:
        return auth.client_id(config)
    except AuthError:
        return "unknown-client"


def _iso(moment: datetime) -> str:
    return _aware(moment).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
