"""`zray upload --shorts` against the fake YouTube server: each language's Shorts go up after its long
video, on the same never-twice path, counted against both quota buckets before anything is sent."""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path

import pytest
from conftest import skip_reason
from PIL import Image

pytest.importorskip("googleapiclient", reason=skip_reason("publish", "googleapiclient"))
pytest.importorskip("google_auth_httplib2", reason=skip_reason("publish", "google_auth_httplib2"))
pytest.importorskip("httplib2", reason=skip_reason("publish", "httplib2"))

from fake_youtube import FakeYouTube
from typer.testing import CliRunner
from youtube_episode import (
    AFTER,
    BEFORE,
    LANGS,
    PUBLISHED,
    credentials,
    fake_options,
    noise_mp4,
    record_files,
    records,
    write_episode,
    youtube_settings,
)

from zray.episode import open_episode
from zray.publish.quota import QuotaError, plan_units
from zray.publish.settings import YouTubeConfig
from zray.publish.youtube import SEARCH_CALLS, UploadOptions, short_description, short_title, upload_episode

CHAPTERS = {
    "es": ("Plantas negras", "El crepúsculo eterno"),
    "pt-br": ("Plantas negras", "O crepúsculo eterno"),
}


SCENE_COLOURS = ((200, 40, 30), (30, 60, 200))


def add_shorts(folder: Path, video: bytes) -> None:
    """Two finished Shorts per language, recorded as the Shorts step records them, each showing one
    scene whose picture (a flat colour, 16:9) is recorded as the image step records it."""
    data = json.loads((folder / "run.json").read_text())
    script = json.loads((folder / "script.json").read_text())
    first = script["scenes"][0]
    script["scenes"] = [first, {**first, "scene_id": 1}]
    (folder / "script.json").write_text(json.dumps(script, ensure_ascii=False), encoding="utf-8")
    for index, colour in enumerate(SCENE_COLOURS):
        picture = f"assets/common/img_{index}.png"
        (folder / picture).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (640, 360), colour).save(folder / picture)
        # As write_episode's records: from the output root (a record before format 2).
        data["nodes"][f"image:{index}"] = {"key": f"image-{index}", "outputs": [f"demo/S01E01/{picture}"]}
    for lang in LANGS:
        shorts, outputs = [], []
        for number, title in enumerate(CHAPTERS[lang], start=1):
            stem = f"shorts/{lang}/S01E01-{lang.upper()}-{number:02d}-{title.replace(' ', '_')}"
            (folder / stem).parent.mkdir(parents=True, exist_ok=True)
            (folder / f"{stem}.mp4").write_bytes(video + bytes([number]))  # two different files
            (folder / f"{stem}.srt").write_text("1\n00:00:00,000 --> 00:00:01,000\nHola\n")
            shorts.append(
                {
                    "number": number,
                    "title": title,
                    "path": f"{stem}.mp4",
                    "srt": f"{stem}.srt",
                    "frames": 240,
                    "duration": 10.0,
                    "key": f"short-{lang}-{number}",
                    "scenes": [number - 1],
                }
            )
            outputs += [f"{stem}.mp4", f"{stem}.srt"]
        data["nodes"][f"shorts:{lang}"] = {
            "key": f"shorts-{lang}",
            "outputs": outputs,
            "result": {"path": f"shorts/{lang}", "shorts": shorts},
        }
    (folder / "run.json").write_text(json.dumps(data, ensure_ascii=False))


@pytest.fixture(scope="module")
def video_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return noise_mp4(tmp_path_factory.mktemp("video") / "noise.mp4")


@pytest.fixture
def fake(tmp_path: Path):
    cert_dir = tmp_path / "cert"
    cert_dir.mkdir()
    with FakeYouTube(cert_dir) as server:
        yield server


@pytest.fixture
def folder(tmp_path: Path, video_bytes: bytes) -> Path:
    folder = write_episode(tmp_path, video_bytes, b"")
    (folder / "thumbnail_pt-br.png").write_bytes((folder / "thumbnail_es.png").read_bytes())
    add_shorts(folder, video_bytes)
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
        shorts=True,
    )


def inserts(fake: FakeYouTube) -> int:
    return len(fake.calls("POST", "/upload/youtube/v3/videos"))


def test_each_language_s_shorts_go_up_after_its_long_video_and_never_twice(tmp_path, folder, fake):
    config = YouTubeConfig(**youtube_settings(tmp_path, fake))
    report = upload(folder, config, fake)
    assert [(r.name, r.action) for r in report.results] == [
        ("es", "uploaded"),
        ("pt-br", "uploaded"),
        ("es/short-01", "uploaded"),
        ("es/short-02", "uploaded"),
        ("pt-br/short-01", "uploaded"),
        ("pt-br/short-02", "uploaded"),
    ], report.lines()
    assert inserts(fake) == 6
    saved = records(folder)
    episode = open_episode(str(folder))
    for lang in LANGS:
        long_id = saved[lang]["video_id"]
        long = fake.videos[long_id]
        for number in (1, 2):
            video = fake.videos[saved[f"{lang}/short-{number:02d}"]["video_id"]]
            snippet = video["snippet"]
            assert episode.identity.slot(lang, f"short-{number:02d}") in snippet["tags"]
            assert snippet["title"] == f"{CHAPTERS[lang][number - 1]} · {long['snippet']['title']}"
            assert f"https://www.youtube.com/watch?v={long_id}" in snippet["description"]
            assert "#Shorts" in snippet["description"] and "0:00" not in snippet["description"]
            # The long video's privacy, schedule, synthetic-media and made-for-kids settings.
            assert video["status"] == long["status"]
            assert video["id"] not in {c["snippet"]["videoId"] for c in fake.captions.values()}
            # Its thumbnail: 9:16, its scene's picture under its chapter's words.
            ((kind, data),) = fake.thumbnails[video["id"]]
            thumbnail = Image.open(io.BytesIO(data)).convert("RGB")
            assert kind == "image/png" and thumbnail.size == (720, 1280)
            assert _mostly(thumbnail, SCENE_COLOURS[number - 1])
            assert saved[f"{lang}/short-{number:02d}"]["thumbnail"] == "set"
    assert len(fake.captions) == 2  # the long videos' tracks only

    before = len(fake.requests)
    again = upload(folder, config, fake)
    assert {r.action for r in again.results} == {"skipped"} and len(fake.requests) == before

    # The records lost: every video is found on the channel by its slot tag, none goes up twice.
    (folder / PUBLISHED).unlink()
    restored = upload(folder, config, fake)
    assert {r.action for r in restored.results} == {"restored"}, restored.lines()
    assert inserts(fake) == 6 and len(fake.videos) == 6


def test_the_shorts_count_against_both_quota_buckets_before_anything_is_sent(tmp_path, folder, fake):
    # Two long videos fit in 3 uploads a day; with their four Shorts they do not.
    config = YouTubeConfig(**youtube_settings(tmp_path, fake, daily_uploads=3))
    with pytest.raises(QuotaError, match=r"needs 6 videos\.insert calls .* only 3 of 3"):
        upload(folder, config, fake)
    assert not fake.requests and not (folder / PUBLISHED).exists()
    # The shared units: enough for the long videos alone, not with their Shorts' look-ups.
    long_only = upload_episode(
        open_episode(str(folder)),
        UploadOptions(config=config, credentials_for=credentials, now=BEFORE, dry_run=True),
    ).units["shared"]
    shared = YouTubeConfig(**youtube_settings(tmp_path, fake, daily_quota=long_only + 1))
    with pytest.raises(QuotaError, match="shared daily quota"):
        upload(folder, shared, fake)
    assert not fake.requests


def test_a_dry_run_plans_the_shorts_with_their_thumbnails_and_no_captions(tmp_path, folder, fake):
    config = YouTubeConfig(**youtube_settings(tmp_path, fake))
    report = upload(folder, config, fake, dry_run=True)
    assert [r.action for r in report.results] == ["planned"] * 6
    # Long videos: look-up, insert, thumbnail (50), captions list and insert (450) each; a Short:
    # its look-up, its insert, the look at its processing (1) and its thumbnail (50).
    long_only = upload_episode(
        open_episode(str(folder)),
        fake_options(config, fake, dry_run=True),
    )
    assert report.units["videos.insert"] == 6 and long_only.units["videos.insert"] == 2
    look_up = plan_units(SEARCH_CALLS, config)["shared"]
    assert report.units["shared"] - long_only.units["shared"] == 4 * (look_up + 1 + 50)
    assert not fake.requests


def test_upload_shorts_flag_on_the_command_line(tmp_path, folder, fake, monkeypatch):
    from zray import cli

    settings = youtube_settings(tmp_path, fake)
    config_file = tmp_path / "zray.toml"
    lines = ["[youtube]"] + [
        f"{key} = {json.dumps(str(value) if isinstance(value, Path) else value)}"
        for key, value in settings.items()
    ]
    config_file.write_text("\n".join(lines) + "\n")
    monkeypatch.setattr("zray.publish.auth.credentials_provider", lambda *a, **k: credentials)
    original = upload_episode

    def with_fake(episode, options, **kwargs):
        options = dataclasses.replace(options, http_factory=fake.http, sleep=lambda _s: None, now=BEFORE)
        return original(episode, options, **kwargs)

    monkeypatch.setattr("zray.publish.youtube.upload_episode", with_fake)
    result = CliRunner().invoke(cli.app, ["upload", str(folder), "--shorts", "--config", str(config_file)])
    assert result.exit_code == 0, result.output
    assert "es/short-02: uploaded" in result.output and inserts(fake) == 6
    # The bytes each video sent, when it is all sent (a line each: stderr is no terminal here).
    size = (folder / "S01E01-ES-video.mp4").stat().st_size
    for slot in ("es", "pt-br", "es/short-01", "pt-br/short-02"):
        assert f"{slot}: {size / 1e6:.1f} of {size / 1e6:.1f} MB sent" in result.stderr, result.stderr


def test_short_titles_fit_youtube_and_descriptions_name_the_long_video():
    assert short_title("Plantas", "Bosques", number=1, count=2) == "Plantas · Bosques"
    long = short_title("Un capítulo de nombre largo", "x" * 120, number=1, count=2)
    assert len(long) == 100 and long.startswith("Un capítulo de nombre largo · x") and long.endswith("…")
    assert short_title("Bosques", "Bosques", number=2, count=3) == "Bosques (2/3)"
    text = short_description("Un viaje.", "es", "abc123")
    assert text == "Un viaje.\n\nVídeo completo: https://www.youtube.com/watch?v=abc123\n\n#Shorts"
    assert short_description("", "xx", None) == "#Shorts"


def _mostly(image: Image.Image, colour: tuple[int, int, int]) -> bool:
    """The top of a thumbnail (above its words and their shade) is the scene's colour."""
    top = image.crop((0, 0, image.width, image.height // 6)).resize((8, 8))
    return all(abs(a - b) < 12 for pixel in top.getdata() for a, b in zip(pixel, colour, strict=True))


def test_a_short_still_processing_gets_its_thumbnail_on_the_next_upload(tmp_path, folder, fake):
    config = YouTubeConfig(**youtube_settings(tmp_path, fake))
    fake.processing_looks = 1  # each new video is still processing at the first look
    report = upload(folder, config, fake)
    assert all(r.action == "uploaded" for r in report.results), report.lines()
    saved = records(folder)
    shorts = [f"{lang}/short-{n:02d}" for lang in LANGS for n in (1, 2)]
    assert {saved[name]["thumbnail"] for name in shorts} == {"processing"}
    assert not any(saved[name]["video_id"] in fake.thumbnails for name in shorts)
    lines = "\n".join(report.lines())
    assert "waits for YouTube's processing" in lines
    # No thumbnails.set was tried on a Short YouTube had not processed (the fake would refuse it).
    assert len(fake.calls("POST", "/upload/youtube/v3/thumbnails/set")) == 2  # the long videos'

    # The next upload: the quota plan counts the look and the thumbnail of each waiting Short...
    planned = upload(folder, config, fake, dry_run=True)
    assert planned.units == {"shared": 4 * (1 + 50)}
    assert [r.action for r in planned.results] == ["skipped"] * 2 + ["planned"] * 4
    # ...and sends them, nothing else.
    before = inserts(fake)
    again = upload(folder, config, fake)
    assert [r.action for r in again.results] == ["skipped"] * 2 + ["completed"] * 4, again.lines()
    saved = records(folder)
    assert {saved[name]["thumbnail"] for name in shorts} == {"set"}
    assert all(len(fake.thumbnails[saved[name]["video_id"]]) == 1 for name in shorts)
    assert inserts(fake) == before
    assert {r.action for r in upload(folder, config, fake).results} == {"skipped"}


def test_every_insert_declares_privacy_kids_and_synthetic_media_and_counts_in_its_own_bucket(
    tmp_path, folder, fake
):
    config = YouTubeConfig(**youtube_settings(tmp_path, fake, privacy="unlisted"))
    report = upload(folder, config, fake, now=AFTER)  # the script's date has passed: no schedule
    bodies = [session.metadata for session in fake.sessions.values()]
    assert len(bodies) == 6  # two long videos and four Shorts, each one insert request
    for body in bodies:
        status = body["status"]
        # Without privacyStatus YouTube would publish the video at once.
        assert status["privacyStatus"] == "unlisted"
        assert status["selfDeclaredMadeForKids"] is False
        assert status["containsSyntheticMedia"] is True
    shorts = [b for b in bodies if "#Shorts" in b["snippet"]["description"]]
    assert len(shorts) == 4
    assert all("publishAt" not in b["status"] for b in bodies)
    # videos.insert has a bucket of its own: 6 calls there, none of them in the shared units.
    assert report.units["videos.insert"] == 6
    assert plan_units({"videos.insert": 6}, config) == {"videos.insert": 6}
    assert inserts(fake) == 6
