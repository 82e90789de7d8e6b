"""No video goes up twice, even when the folder's records are lost, damaged or another episode's.

Each path that once produced a second video on the fake YouTube server ends here with exactly one
video per language: the record's write failing after the upload, a kill as YouTube answered the
last chunk (then a title edit, or the upload state deleted), published.json deleted, of the wrong
shape, or carried over from another episode by a copied folder.
"""

from __future__ import annotations

import collections
import shutil
from pathlib import Path

import pytest
from conftest import skip_reason

pytest.importorskip("googleapiclient", reason=skip_reason("publish", "googleapiclient"))
pytest.importorskip("google_auth_httplib2", reason=skip_reason("publish", "google_auth_httplib2"))
pytest.importorskip("httplib2", reason=skip_reason("publish", "httplib2"))

from fake_youtube import GRANULE, FakeYouTube, Killed
from youtube_episode import (
    BEFORE,
    CLIENT,
    LANGS,
    PUBLISHED,
    UPLOAD_STATE,
    change_video_key,
    credentials,
    edit_script,
    fake_options,
    noise_mp4,
    record_files,
    records,
    write_episode,
    youtube_settings,
)

from zray.episode import open_episode
from zray.errors import ZrayError
from zray.publish.quota import QuotaLedger
from zray.publish.settings import YouTubeConfig
from zray.publish.youtube import UploadOptions, short_video, upload_episode, upload_videos
from zray.store import Store

NEW_TITLE = "Bosques bajo dos soles"


@pytest.fixture(scope="session")
def video_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return noise_mp4(tmp_path_factory.mktemp("video") / "noise.mp4")


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
def folder(tmp_path: Path, video_bytes: bytes) -> Path:
    folder = write_episode(tmp_path, video_bytes, b"")
    shutil.copyfile(folder / "thumbnail_es.png", folder / "thumbnail_pt-br.png")
    record_files(folder)
    return folder


def upload(
    folder: Path, config: YouTubeConfig, fake: FakeYouTube, *, langs=None, require_review=False, **options
):
    return upload_episode(
        open_episode(str(folder)),
        fake_options(config, fake, **options),
        langs=langs,
        require_review=require_review,
    )


def videos_per_language(fake: FakeYouTube) -> dict[str, int]:
    return dict(collections.Counter(v["snippet"]["defaultLanguage"] for v in fake.videos.values()))


ONE_EACH = {"es": 1, "pt-BR": 1}


def inserts(fake: FakeYouTube) -> int:
    return len(fake.calls("POST", "/upload/youtube/v3/videos"))


@pytest.fixture
def failing_record_writes(monkeypatch):
    """A disk that refuses published.json (full, read-only) while `failing["on"]` is set."""
    failing = {"on": True}
    write_text = Store.write_text

    def refuse(self: Store, key: str, text: str) -> None:
        if key == PUBLISHED and failing["on"]:
            raise OSError(28, "No space left on device", self.url(key))
        write_text(self, key, text)

    monkeypatch.setattr(Store, "write_text", refuse)
    return failing


# --- a record lost after the upload ---------------------------------------------------------------


def test_a_failed_write_of_the_record_after_the_upload_is_not_uploaded_again(
    folder, config, fake, failing_record_writes
):
    first = upload(folder, config, fake)
    assert [r.action for r in first.results] == ["failed", "failed"]
    assert "No space left on device" in first.results[0].message
    assert videos_per_language(fake) == ONE_EACH  # YouTube has both; the folder has no record

    failing_record_writes["on"] = False
    second = upload(folder, config, fake)

    assert [r.action for r in second.results] == ["restored", "restored"], second.lines()
    assert videos_per_language(fake) == ONE_EACH and inserts(fake) == 2
    assert {records(folder)[lang]["video_id"] for lang in LANGS} == set(fake.videos)
    assert not (folder / UPLOAD_STATE).exists()
    assert len(fake.captions) == 2 and all(len(t) == 1 for t in fake.thumbnails.values())
    before = len(fake.requests)
    assert [r.action for r in upload(folder, config, fake).results] == ["skipped", "skipped"]
    assert len(fake.requests) == before


@pytest.mark.parametrize("chunk", [GRANULE, 16 * GRANULE], ids=["five-chunks", "one-chunk"])
def test_a_kill_as_youtube_answered_the_last_chunk_then_a_title_edit(tmp_path, folder, fake, chunk):
    config = YouTubeConfig(**youtube_settings(tmp_path, fake, chunk_size=chunk))
    fake.kill_after_upload = 1
    # The finished video is not listed yet, so only its saved session can tell that it is up.
    fake.listing_lag = 1
    with pytest.raises(Killed):
        upload(folder, config, fake)
    [first] = fake.videos
    edit_script(folder, lambda data: data["seo"]["es"]["variants"][0].update(title=NEW_TITLE))

    report = upload(folder, config, fake)

    es, pt = report.results
    assert es.action == "restored" and es.video_id == first, report.lines()
    assert "--force" in es.message  # the title changed since it went up
    assert pt.action == "uploaded"
    assert videos_per_language(fake) == ONE_EACH and inserts(fake) == 2
    assert fake.videos[first]["snippet"]["title"] == "Bosques bajo una estrella roja"
    assert not (folder / UPLOAD_STATE).exists()

    fake.listing_lag = 0
    forced = upload(folder, config, fake, langs=["es"], force=True).results[0]
    assert forced.action == "updated" and fake.videos[first]["snippet"]["title"] == NEW_TITLE
    slot = open_episode(str(folder)).identity.slot("es")
    assert slot in fake.videos[first]["snippet"]["tags"]  # the update kept zray's tags
    assert videos_per_language(fake) == ONE_EACH


def test_a_kill_as_youtube_answered_then_the_upload_state_deleted(folder, config, fake):
    fake.kill_after_upload = 1
    with pytest.raises(Killed):
        upload(folder, config, fake)
    (folder / UPLOAD_STATE).unlink()  # as `zray run --clean` used to do

    report = upload(folder, config, fake)

    assert [r.action for r in report.results] == ["restored", "uploaded"], report.lines()
    assert "found on the channel" in report.results[0].message
    assert videos_per_language(fake) == ONE_EACH and inserts(fake) == 2


def test_a_deleted_record_is_restored_from_the_channel(folder, config, fake):
    upload(folder, config, fake)
    before = records(folder)
    (folder / PUBLISHED).unlink()

    report = upload(folder, config, fake)

    assert [r.action for r in report.results] == ["restored", "restored"], report.lines()
    assert videos_per_language(fake) == ONE_EACH and inserts(fake) == 2
    after = records(folder)
    assert {lang: after[lang]["video_id"] for lang in LANGS} == {
        lang: before[lang]["video_id"] for lang in LANGS
    }
    assert len(fake.captions) == 2  # zray's tracks were found, not added a second time
    # The restored record is complete: a rerun sends nothing.
    requests = len(fake.requests)
    assert [r.action for r in upload(folder, config, fake).results] == ["skipped", "skipped"]
    assert len(fake.requests) == requests


# --- records that cannot be trusted --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("record", "text", "problem"),
    [
        (PUBLISHED, '{"es": "vid0002"}', r"entry 'es' must be an object"),
        (PUBLISHED, "{not json", r"not valid JSON"),
        (PUBLISHED, "[1, 2]", r"must be a JSON object"),
        (UPLOAD_STATE, '{"es": 5}', r"entry 'es' must be an object"),
        (UPLOAD_STATE, '{"es": {"session_uri": "https://x/u", "size": "5 MB"}}', r"size that is not a byte"),
        (UPLOAD_STATE, "\xff\xfe", r"not UTF-8|not valid JSON"),
    ],
)
def test_a_record_of_the_wrong_shape_stops_in_one_line_and_uploads_nothing(
    folder, config, fake, record, text, problem
):
    upload(folder, config, fake)
    requests = len(fake.requests)
    (folder / record).write_bytes(text.encode("latin-1") if record == UPLOAD_STATE else text.encode())

    with pytest.raises(ZrayError, match=problem) as refused:
        upload(folder, config, fake)

    message = str(refused.value)
    assert "\n" not in message and record in message and "move" in message
    assert len(fake.requests) == requests
    assert videos_per_language(fake) == ONE_EACH


def test_a_copied_folder_refuses_the_other_episodes_record(folder, config, fake):
    upload(folder, config, fake)
    copy = folder.parent / "S01E02"
    shutil.copytree(folder, copy)
    edit_script(copy, lambda data: data.update(episode=2))
    requests = len(fake.requests)

    for force in (False, True):
        with pytest.raises(ZrayError) as refused:
            upload(copy, config, fake, force=force)
        message = str(refused.value)
        assert "\n" not in message and "published.json" in message
        assert "demo/S01E01" in message and "demo/S01E02" in message

    assert len(fake.requests) == requests and not fake.updates  # episode 1's videos untouched
    assert videos_per_language(fake) == ONE_EACH


# --- the same path for a replacement ------------------------------------------------------------


def test_a_replacement_whose_record_failed_is_not_uploaded_a_third_time(
    folder, config, fake, failing_record_writes
):
    failing_record_writes["on"] = False
    first = upload(folder, config, fake, langs=["es"]).results[0].video_id
    change_video_key(folder, "es")
    failing_record_writes["on"] = True
    assert upload(folder, config, fake, langs=["es"], replace=True).results[0].failed
    failing_record_writes["on"] = False

    again = upload(folder, config, fake, langs=["es"], replace=True).results[0]

    assert again.action == "restored" and again.video_id != first
    assert inserts(fake) == 2 and len(fake.videos) == 2  # the original and one replacement
    entry = records(folder)["es"]
    assert entry["replaces"] == [first] and entry["content_key"] == "video-es-2"

    # With both records lost, the channel still knows which video is the replacement.
    (folder / PUBLISHED).unlink()
    assert upload(folder, config, fake, langs=["es"]).results[0].video_id == again.video_id
    assert inserts(fake) == 2


# --- the look-up -------------------------------------------------------------------------------------


def test_the_look_up_pages_through_newer_uploads_within_its_planned_calls(folder, config, fake):
    upload(folder, config, fake, langs=["es"])
    [ours] = fake.videos
    for n in range(120):  # newer videos of the channel, uploaded by other means
        fake.videos[f"other{n:04d}"] = {"id": f"other{n:04d}", "snippet": {"title": "x", "tags": ["y"]}}
    (folder / PUBLISHED).unlink()
    ledger = QuotaLedger(client_id=CLIENT, config=config, now=BEFORE)
    spent = ledger.spent()
    planned = upload(folder, config, fake, langs=["es"], dry_run=True).units["shared"]
    earlier = len(fake.calls("GET", "/youtube/v3/playlistItems"))

    report = upload(folder, config, fake, langs=["es"])

    assert report.results[0].action == "restored" and report.results[0].video_id == ours
    pages = fake.calls("GET", "/youtube/v3/playlistItems")[earlier:]
    assert len(pages) == 3 and all("maxResults=50" in page for page in pages)
    assert ledger.spent() - spent <= planned


def test_the_look_up_reads_at_most_the_newest_200_uploads(folder, config, fake):
    upload(folder, config, fake, langs=["es"])
    for n in range(250):
        fake.videos[f"other{n:04d}"] = {"id": f"other{n:04d}", "snippet": {"title": "x", "tags": ["y"]}}
    (folder / PUBLISHED).unlink()
    pages, lists = (
        len(fake.calls("GET", "/youtube/v3/playlistItems")),
        len(fake.calls("GET", "/youtube/v3/videos?")),
    )

    upload(folder, config, fake, langs=["es"])

    # Older than the newest 200 is out of reach (the README says so): the quota plan holds.
    assert len(fake.calls("GET", "/youtube/v3/playlistItems")) - pages == 4
    assert len(fake.calls("GET", "/youtube/v3/videos?")) - lists == 4


def test_tags_over_the_limit_with_zrays_two_are_refused_before_upload(tmp_path, folder, config, fake):
    # 458 characters of the script's own tags fit YouTube's 500, but not with zray's two (+46).
    edit_script(folder, lambda data: data["seo"]["es"].update(tags=[f"{n:02d}" + "x" * 48 for n in range(9)]))
    report = upload(folder, config, fake)
    es, pt = report.results
    assert es.failed and "zray's own two tags" in es.message and "allows 500" in es.message
    assert pt.action == "uploaded" and videos_per_language(fake) == {"pt-BR": 1}


# --- Shorts: one more video slot ---------------------------------------------------------------------


def test_a_short_is_one_more_slot_on_the_same_never_twice_path(folder, config, fake):
    episode = open_episode(str(folder))
    short = short_video(
        episode,
        "es",
        1,
        video=episode.video("es"),
        content_key="short-es-01",
        title="Plantas negras",
        description="Un minuto entre plantas negras. #Shorts",
        tags=("ciencia",),
    )

    def send(**choices):
        options = UploadOptions(
            config=config,
            credentials_for=credentials,
            http_factory=fake.http,
            sleep=lambda _s: None,
            now=BEFORE,
            **choices,
        )
        return upload_videos(open_episode(str(folder)), [short], options)

    # No thumbnail, no captions: the look-up and the insert are the whole plan.
    assert send(dry_run=True).units == {"videos.insert": 1, "shared": 9}
    [result] = send().results
    assert (result.name, result.action) == ("es/short-01", "uploaded")
    [video] = fake.videos.values()
    assert episode.identity.slot("es", "short-01") in video["snippet"]["tags"]
    assert "0:00" not in video["snippet"]["description"]  # no chapter list
    assert not fake.thumbnails and not fake.captions
    assert records(folder)["es/short-01"]["video_id"] == video["id"]

    (folder / PUBLISHED).unlink()
    assert send().results[0].action == "restored" and inserts(fake) == 1
    # The language's long video is a slot of its own, not mistaken for the Short.
    assert upload(folder, config, fake, langs=["es"]).results[0].action == "uploaded"
    assert inserts(fake) == 2 and set(records(folder)) == {"es", "es/short-01"}
