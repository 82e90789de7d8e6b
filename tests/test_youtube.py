"""YouTube upload against a fake API on 127.0.0.1 that the real google client talks to over TLS."""

from __future__ import annotations

import io
import json
import os
import re
import socket
import stat
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest
from conftest import skip_reason
from PIL import Image

pytest.importorskip("googleapiclient", reason=skip_reason("publish", "googleapiclient"))
pytest.importorskip("google_auth_httplib2", reason=skip_reason("publish", "google_auth_httplib2"))
pytest.importorskip("httplib2", reason=skip_reason("publish", "httplib2"))
pytest.importorskip("google_auth_oauthlib", reason=skip_reason("publish", "google_auth_oauthlib"))

from fake_youtube import GRANULE, FakeYouTube
from google.oauth2.credentials import Credentials
from pydantic import ValidationError
from youtube_episode import (
    AFTER,
    BEFORE,
    CLIENT,
    DATE,
    LANGS,
    SRT,
    change_video_key,
    fake_options,
    noise_mp4,
    record_files,
    records,
    script_data,
    write_episode,
    youtube_settings,
)

from zray.episode import open_episode
from zray.errors import ZrayError
from zray.publish import auth
from zray.publish.auth import AuthError
from zray.publish.errors import MissingExtra
from zray.publish.quota import QuotaError, QuotaLedger, quota_day
from zray.publish.settings import YouTubeConfig
from zray.publish.web import PublishError
from zray.publish.youtube import (
    PUBLISHED_FILE,
    UPLOAD_STATE_FILE,
    build_metadata,
    content_tag,
    hashtags,
    upload_episode,
    youtube_language,
)


class SimulatedCrash(BaseException):
    """Stands for a killed process: not an Exception, so nothing in zray may catch it."""


# --- a finished episode folder, written by hand --------------------------------------------------------


@pytest.fixture(scope="session")
def video_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return noise_mp4(tmp_path_factory.mktemp("video") / "noise.mp4")


@pytest.fixture(scope="session")
def big_thumbnail() -> bytes:
    """A 1280x720 PNG of noise: over 2 MB, so it must go up as a JPEG."""
    noise = np.random.default_rng(3).integers(0, 256, (720, 1280, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(noise).save(out, format="PNG")
    assert out.tell() > 2 * 1024 * 1024
    return out.getvalue()


@pytest.fixture
def fake(tmp_path: Path):
    cert_dir = tmp_path / "cert"
    cert_dir.mkdir()
    with FakeYouTube(cert_dir) as server:
        yield server


@pytest.fixture
def config(tmp_path: Path, fake: FakeYouTube) -> YouTubeConfig:
    return YouTubeConfig(**youtube_settings(tmp_path, fake))


@pytest.fixture
def folder(tmp_path: Path, video_bytes: bytes, big_thumbnail: bytes) -> Path:
    return write_episode(tmp_path, video_bytes, big_thumbnail)


def upload(
    folder: Path, config: YouTubeConfig, fake: FakeYouTube, *, langs=None, require_review=False, **options
):
    return upload_episode(
        open_episode(str(folder)),
        fake_options(config, fake, **options),
        langs=langs,
        require_review=require_review,
    )


def published(folder: Path) -> dict:
    return records(folder, PUBLISHED_FILE)


# --- clean upload ----------------------------------------------------------------------------------------


def test_clean_upload_sends_the_file_metadata_thumbnail_and_captions(
    folder, config, fake, video_bytes, big_thumbnail
):
    report = upload(folder, config, fake)

    assert report.ok, report.lines()
    assert [r.action for r in report.results] == ["uploaded", "uploaded"]
    assert len(fake.videos) == 2
    ids = {r.lang: r.video_id for r in report.results}
    for lang in LANGS:
        assert fake.video_bytes[ids[lang]] == video_bytes
    # Only resumable chunks of whole 256 KiB granules (the fake refuses others), each byte once.
    taken = [c for c in fake.chunks if c.outcome in ("308", "done")]
    assert sum(c.received for c in taken) == 2 * len(video_bytes)

    es = fake.videos[ids["es"]]
    snippet, status = es["snippet"], es["status"]
    assert snippet["title"] == "Bosques bajo una estrella roja"
    assert snippet["description"] == (
        "Un viaje a los bosques de los planetas de enanas rojas.\n\n"
        "0:00 Introducción\n0:12 Plantas negras\n\n"
        "#exoplanetas #BosquesAlienígenas #ciencia"
    )
    episode = open_episode(str(folder))
    # The script's tags, then zray's: the slot tag (episode and language) and the content tag.
    assert snippet["tags"] == [
        "exoplanetas",
        "bosques alienígenas",
        "ciencia",
        "astrobiología",
        episode.identity.slot("es"),
        content_tag("video-es-1"),
    ]
    assert re.fullmatch(r"zray-[0-9a-f]{16}", snippet["tags"][-2])
    assert re.fullmatch(r"zray-c-[0-9a-f]{16}", snippet["tags"][-1])
    assert fake.videos[ids["pt-br"]]["snippet"]["tags"][-2] == episode.identity.slot("pt-br")
    assert snippet["categoryId"] == "28"
    assert (snippet["defaultLanguage"], snippet["defaultAudioLanguage"]) == ("es", "es")
    assert fake.videos[ids["pt-br"]]["snippet"]["defaultLanguage"] == "pt-BR"
    # A future date schedules: private until YouTube publishes it at that UTC time.
    assert status["privacyStatus"] == "private"
    assert status["publishAt"] == DATE
    assert status["containsSyntheticMedia"] is True
    assert status["selfDeclaredMadeForKids"] is False

    es_thumb = (folder / "thumbnail_es.png").read_bytes()
    assert fake.thumbnails[ids["es"]] == [("image/png", es_thumb)]
    [(kind, jpeg)] = fake.thumbnails[ids["pt-br"]]
    assert kind == "image/jpeg" and len(jpeg) <= 2 * 1024 * 1024
    assert Image.open(io.BytesIO(jpeg)).size == (1280, 720)

    tracks = {c["snippet"]["videoId"]: c for c in fake.captions.values()}
    assert tracks[ids["es"]]["data"] == SRT["es"] and tracks[ids["es"]]["snippet"]["language"] == "es"
    assert tracks[ids["pt-br"]]["snippet"]["language"] == "pt-BR"

    record = published(folder)
    assert record["es"]["video_id"] == ids["es"]
    assert record["es"]["content_key"] == "video-es-1"
    assert record["es"]["publish_at"] == DATE and record["es"]["uploaded_at"] == "2026-11-25T12:00:00Z"
    assert not (folder / UPLOAD_STATE_FILE).exists()

    ledger = QuotaLedger(client_id=CLIENT, config=config, now=BEFORE)
    # thumbnails.set + captions.insert per language, and the look-up before each insert:
    # channels.list and playlistItems.list, then videos.list once the channel has a video.
    assert ledger.spent() == 2 * (50 + 400) + 2 + 3
    assert ledger.spent("videos.insert") == 2
    assert stat.S_IMODE(ledger.path.stat().st_mode) == 0o600


def test_a_past_date_uploads_with_the_chosen_privacy(folder, config, fake):
    report = upload(folder, config, fake, langs=["es"], privacy="unlisted", now=AFTER)
    status = fake.videos[report.results[0].video_id]["status"]
    assert status["privacyStatus"] == "unlisted"
    assert "publishAt" not in status


# --- faults ----------------------------------------------------------------------------------------------


def test_503s_and_dropped_connections_still_give_one_intact_video(folder, config, fake, video_bytes):
    fake.fail_initiate = [503]
    fake.fail_chunks = [503, 503]
    fake.drop_chunks = 2

    report = upload(folder, config, fake, langs=["es"])

    assert report.ok, report.lines()
    assert len(fake.videos) == 1 and len(fake.sessions) == 1
    assert fake.video_bytes[report.results[0].video_id] == video_bytes
    outcomes = [c.outcome for c in fake.chunks]
    assert outcomes.count("503") == 2 and outcomes.count("dropped") == 2
    assert fake.status_queries >= 3  # after each 503 and after the drop that httplib2 did not retry itself


def test_a_crash_after_half_the_chunks_resumes_from_the_last_acknowledged_byte(
    folder, config, fake, video_bytes
):
    half = len(video_bytes) // 2

    def crash_past_half(lang: str, sent: int, total: int) -> None:
        if sent >= half:
            raise SimulatedCrash

    with pytest.raises(SimulatedCrash):
        upload(folder, config, fake, langs=["es"], progress=crash_past_half)

    saved = records(folder, UPLOAD_STATE_FILE)["es"]
    acknowledged = saved["progress"]
    assert half <= acknowledged < len(video_bytes) and acknowledged % GRANULE == 0
    assert not fake.videos and not (folder / PUBLISHED_FILE).exists()
    chunks_before = len(fake.chunks)

    report = upload(folder, config, fake, langs=["es"])

    assert report.results[0].action == "resumed"
    assert len(fake.calls("POST", "/upload/youtube/v3/videos")) == 1  # the same session, not a new one
    assert fake.video_bytes[report.results[0].video_id] == video_bytes
    after = fake.chunks[chunks_before:]
    assert after and min(c.start for c in after) == acknowledged  # nothing before it was sent again
    assert sum(c.received for c in fake.chunks) == len(video_bytes)
    assert not (folder / UPLOAD_STATE_FILE).exists()


def test_an_expired_session_starts_a_new_upload(folder, config, fake, video_bytes):
    def crash(lang: str, sent: int, total: int) -> None:
        raise SimulatedCrash

    with pytest.raises(SimulatedCrash):
        upload(folder, config, fake, langs=["es"], progress=crash)
    [session] = fake.sessions
    fake.expire(session)

    report = upload(folder, config, fake, langs=["es"])

    asked = fake.calls("PUT", f"/upload/youtube/v3/videos?uploadType=resumable&upload_id={session}")
    assert len(asked) == 2  # the crashed chunk, then the status query that found the session gone

    assert report.results[0].action == "uploaded"
    assert len(fake.calls("POST", "/upload/youtube/v3/videos")) == 2
    assert len(fake.videos) == 1
    assert fake.video_bytes[report.results[0].video_id] == video_bytes


def test_a_403_on_the_thumbnail_is_a_warning_and_the_captions_still_go_up(folder, config, fake):
    fake.thumbnail_status = 403
    report = upload(folder, config, fake, langs=["es"])
    [result] = report.results
    assert report.ok and result.action == "uploaded"
    assert "verified channel" in result.warnings[0]
    assert published(folder)["es"]["thumbnail"] == "refused"
    assert len(fake.captions) == 1


# --- reruns ----------------------------------------------------------------------------------------------


def test_a_rerun_after_success_sends_nothing(folder, config, fake):
    upload(folder, config, fake)
    before = len(fake.requests)

    report = upload(folder, config, fake)

    assert [r.action for r in report.results] == ["skipped", "skipped"]
    assert len(fake.requests) == before
    assert len(fake.videos) == 2


def test_a_changed_video_needs_force_or_replace(folder, config, fake):
    first = upload(folder, config, fake, langs=["es"]).results[0].video_id
    change_video_key(folder, "es")
    before = len(fake.requests)

    changed = upload(folder, config, fake, langs=["es"]).results[0]
    assert changed.action == "changed" and "--force" in changed.message and "--replace" in changed.message
    assert len(fake.requests) == before

    forced = upload(folder, config, fake, langs=["es"], force=True).results[0]
    assert forced.action == "updated" and forced.video_id == first
    assert len(fake.videos) == 1
    [update] = fake.updates
    assert update["id"] == first and update["snippet"]["title"] == "Bosques bajo una estrella roja"
    assert update["status"]["privacyStatus"] == "private"  # the video's own status is kept
    # zray's tags stay, and the content tag still names the file on YouTube, not the new build.
    slot = open_episode(str(folder)).identity.slot("es")
    assert update["snippet"]["tags"][-2:] == [slot, content_tag("video-es-1")]
    assert len(fake.thumbnails[first]) == 2
    [track] = fake.captions.values()
    assert track["versions"] == 2  # the existing track replaced, not a second one

    # --force again with nothing new to push sends nothing.
    before = len(fake.requests)
    assert upload(folder, config, fake, langs=["es"], force=True).results[0].action == "changed"
    assert len(fake.requests) == before

    replaced = upload(folder, config, fake, langs=["es"], replace=True).results[0]
    assert replaced.action == "replaced" and replaced.video_id != first
    assert len(fake.videos) == 2
    record = published(folder)["es"]
    assert record["video_id"] == replaced.video_id and record["replaces"] == [first]
    assert record["content_key"] == "video-es-2"
    assert fake.videos[replaced.video_id]["snippet"]["tags"][-2:] == [slot, content_tag("video-es-2")]
    assert upload(folder, config, fake, langs=["es"], replace=True).results[0].action == "skipped"


def test_dry_run_plans_without_a_request_or_a_token(folder, config, fake):
    def no_tokens(lang: str) -> Credentials:
        raise AssertionError("a dry run needs no token")

    report = upload(folder, config, fake, dry_run=True, credentials_for=no_tokens)
    assert [r.action for r in report.results] == ["planned", "planned"]
    assert "scheduled for 2027-03-01T18:00:00Z" in report.results[0].message
    # Per language: thumbnail 50, captions 400 (+ 50 to list them first should the video be found
    # on the channel), and the look-up: 1 channels.list + 4 pages of 50 uploads x 2 calls.
    assert report.units == {"videos.insert": 2, "shared": 2 * (50 + 400 + 50 + 9)}
    assert fake.requests == []


# --- limits and quota ------------------------------------------------------------------------------------


def test_metadata_over_a_limit_is_refused_before_upload_and_the_others_go_on(
    tmp_path, config, fake, video_bytes
):
    data = script_data()
    data["seo"]["es"]["variants"][0]["title"] = "B" * 120
    folder = write_episode(tmp_path, video_bytes, b"", script=data)
    (folder / "thumbnail_pt-br.png").write_bytes((folder / "thumbnail_es.png").read_bytes())
    record_files(folder)

    report = upload(folder, config, fake)

    es, pt = report.results
    assert es.failed and "snippet.title: title is 120 characters, YouTube allows 100" in es.message
    assert pt.action == "uploaded" and not report.ok
    assert len(fake.videos) == 1 and not fake.calls("POST", "/upload/youtube/v3/videos?part")[1:]


def test_quota_refusal_comes_before_any_request(folder, config, fake):
    ledger = QuotaLedger(client_id=CLIENT, config=config, now=BEFORE)
    for _ in range(24):
        ledger.record("captions.insert")  # 9,600 of 10,000 units gone

    with pytest.raises(QuotaError) as refused:
        upload(folder, config, fake)

    message = str(refused.value)
    assert "needs 1,018 units" in message and "only 400 of 10,000 are left" in message and CLIENT in message
    assert fake.requests == []


def test_the_upload_bucket_is_counted_in_calls(folder, config, fake):
    narrow = config.model_copy(update={"daily_uploads": 1})
    with pytest.raises(QuotaError, match=r"needs 2 videos.insert calls .* only 1 of 1"):
        upload(folder, narrow, fake)
    assert fake.requests == []


def test_quota_days_turn_at_midnight_pacific(config):
    late = datetime(2026, 11, 25, 7, 59, tzinfo=UTC)  # 23:59 PST on the 24th
    assert quota_day(late) == "2026-11-24"
    assert quota_day(late + timedelta(minutes=2)) == "2026-11-25"
    QuotaLedger(client_id=CLIENT, config=config, now=late).record("videos.update")
    assert QuotaLedger(client_id=CLIENT, config=config, now=late).spent() == 50
    assert QuotaLedger(client_id=CLIENT, config=config, now=late + timedelta(minutes=2)).spent() == 0
    assert QuotaLedger(client_id="another", config=config, now=late).spent() == 0


# --- tokens ----------------------------------------------------------------------------------------------


def write_token(config: YouTubeConfig, *, token: str, expiry: datetime) -> Path:
    info = {
        "token": token,
        "refresh_token": "test-refresh-token",
        "client_id": CLIENT,
        "client_secret": "s",
        "token_uri": "https://oauth2.googleapis.com/token",
        "scopes": list(auth.SCOPES),
    }
    info["expiry"] = expiry.strftime("%Y-%m-%dT%H:%M:%SZ")
    path = auth.token_path("demo", "es", config)
    auth.write_private(path, json.dumps(info))
    return path


def test_an_expired_token_is_refreshed_against_the_token_endpoint(folder, config, fake):
    path = write_token(config, token="stale", expiry=datetime.now(UTC) - timedelta(hours=1))
    provider = auth.credentials_provider("demo", config, interactive=False, http=fake.http())

    report = upload(folder, config, fake, langs=["es"], credentials_for=provider)

    assert report.ok, report.lines()
    [grant] = fake.token_grants
    assert grant["grant_type"] == "refresh_token" and grant["refresh_token"] == "test-refresh-token"
    saved = json.loads(path.read_text())
    assert saved["token"] == "refreshed-1" and saved["refresh_token"] == "test-refresh-token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "stale" not in fake.access_tokens and len(fake.videos) == 1


def test_a_revoked_token_says_which_command_to_run(config, fake):
    write_token(config, token="stale", expiry=datetime.now(UTC) - timedelta(hours=1))
    fake.refresh_tokens.clear()
    with pytest.raises(AuthError) as failed:
        auth.load_credentials("demo", "es", config, interactive=False, http=fake.http())
    message = str(failed.value)
    assert "\n" not in message and message.endswith("run: zray auth youtube --project demo --lang es")
    assert "test-refresh-token" not in message and "stale" not in message


def test_a_missing_token_in_a_non_interactive_run_is_one_line(folder, config, fake):
    with pytest.raises(AuthError) as missing:
        auth.load_credentials("demo", "pt-br", config, interactive=False)
    assert str(missing.value) == (
        "no YouTube token for project demo, language pt-br; run: zray auth youtube --project demo --lang pt-br"
    )
    # Through the uploader: that language fails with the same line, the other goes on.
    write_token(config, token="test-access-token", expiry=datetime.now(UTC) + timedelta(hours=1))
    provider = auth.credentials_provider("demo", config, interactive=False)
    report = upload(folder, config, fake, credentials_for=provider)
    es, pt = report.results
    assert es.action == "uploaded"
    assert pt.failed and pt.message.endswith("run: zray auth youtube --project demo --lang pt-br")


def test_consent_listens_on_a_port_to_forward_and_stores_a_private_token(config, fake, capsys, monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(fake.cert))  # the code exchange goes through requests
    with socket.socket() as probe:
        probe.bind(("localhost", 0))
        port = probe.getsockname()[1]
    done: dict[str, Path] = {}
    consent = threading.Thread(
        target=lambda: done.setdefault(
            "path", auth.authorize("demo", "es", config, open_browser=False, port=port)
        )
    )
    consent.start()
    printed = ""
    while consent.is_alive() and "https://accounts.invalid/auth" not in printed:
        printed += capsys.readouterr().out
        time.sleep(0.02)
    assert f"ssh -L {port}:localhost:{port}" in printed
    url = urlsplit(re.search(r"https://accounts\.invalid/auth\S+", printed).group())
    query = parse_qs(url.query)
    assert set(query["scope"][0].split()) == set(auth.SCOPES)
    assert query["redirect_uri"] == [f"http://localhost:{port}/"] and query["access_type"] == ["offline"]
    # The user's browser comes back to the forwarded port with the code.
    urllib.request.urlopen(f"http://localhost:{port}/?state={query['state'][0]}&code=fake-code").read()
    consent.join()

    path = done["path"]
    assert path == auth.token_path("demo", "es", config)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    saved = json.loads(path.read_text())
    assert (saved["token"], saved["refresh_token"]) == ("from-consent", "refresh-from-consent")
    assert auth.load_credentials("demo", "es", config, interactive=False).token == "from-consent"


def test_tokens_are_private_and_a_readable_one_is_refused(config):
    path = write_token(config, token="test-access-token", expiry=datetime.now(UTC) + timedelta(hours=1))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert auth.load_credentials("demo", "es", config, interactive=False).token == "test-access-token"

    os.chmod(path, 0o644)
    with pytest.raises(AuthError, match=r"has permissions 0644.*chmod 600"):
        auth.load_credentials("demo", "es", config, interactive=False)


# --- metadata rules --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "youtube"),
    [
        ("es", "es"),
        ("en", "en"),
        ("ca", "ca"),
        ("pt-br", "pt-BR"),
        ("zh-hant", "zh-Hant"),
        ("es-419", "es-419"),
    ],
)
def test_language_codes_take_youtube_spelling(code, youtube):
    assert youtube_language(code) == youtube


def test_hashtags_have_no_spaces_and_no_repeats():
    assert hashtags(["deep sea", "Ciencia", "ciencia", "c++", "¿?", "a-b c"], 4) == [
        "#DeepSea",
        "#Ciencia",
        "#c",
        "#ABC",
    ]
    assert hashtags(["x"], 0) == []


def test_metadata_for_a_script_without_a_date_uses_the_configured_privacy(folder, config):
    episode = open_episode(str(folder))
    episode.script.date_published = None
    body = build_metadata(episode, "es", config=config.model_copy(update={"privacy": "public"}), now=BEFORE)
    assert body["status"] == {
        "privacyStatus": "public",
        "selfDeclaredMadeForKids": False,
        "containsSyntheticMedia": True,
    }


def test_config_checks_chunk_size_and_keeps_default_costs():
    with pytest.raises(ValidationError, match="not a multiple of 256 KiB"):
        YouTubeConfig(chunk_size=1_000_000)
    custom = YouTubeConfig(quota_costs={"captions.insert": 500})
    assert custom.cost("captions.insert") == 500 and custom.cost("thumbnails.set") == 50
    assert custom.cost("videos.insert") == 1
    with pytest.raises(ValidationError):
        YouTubeConfig(privacy="secret")
    with pytest.raises(ValidationError):
        YouTubeConfig(unknown=1)


# --- errors a user can cause -----------------------------------------------------------------------------


def test_an_unknown_language_is_one_line_and_any_case_works(folder, config, fake):
    with pytest.raises(ZrayError) as unknown:
        upload(folder, config, fake, langs=["xx"])
    message = str(unknown.value)
    assert "\n" not in message and message.startswith("--lang xx:") and "es, pt-br" in message
    assert fake.requests == []
    report = upload(folder, config, fake, langs=["ES", "PT-BR"], dry_run=True)
    assert [r.name for r in report.results] == ["es", "pt-br"]


def test_publishing_errors_are_zray_errors():
    for error in (AuthError, QuotaError, PublishError, MissingExtra):
        assert issubclass(error, ZrayError)


def test_without_the_publish_extra_the_uploader_says_what_to_install():
    blocked = ["googleapiclient", "google_auth_httplib2", "httplib2", "google.auth", "google.oauth2"]
    code = (
        f"import sys\nfor name in {blocked!r}:\n    sys.modules[name] = None\n"
        "from zray.errors import ZrayError\n"
        "try:\n    import zray.publish.youtube\n"
        "except ZrayError as exc:\n    print(exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("pip install 'zray[publish]'") and done.stdout.count("\n") == 1
