"""What leaves the folder is what zray made, and one slot is one video whatever folder it is sent from.

A file damaged in place (its size and mtime kept, so a rerun's fingerprint sees nothing) is caught
by its sha256 in run.json before its first byte is sent to YouTube or to a website; the other
languages go on. Two processes uploading one slot at once from two copies of a folder make one
video: the find-then-insert runs under the slot's lock beside the channel's tokens.
"""

from __future__ import annotations

import collections
import multiprocessing
import os
import shutil
import time
from pathlib import Path

import pytest

pytest.importorskip("googleapiclient")

from fake_youtube import FakeYouTube
from typer.testing import CliRunner
from youtube_episode import (
    BEFORE,
    credentials,
    fake_options,
    noise_mp4,
    record_files,
    records,
    write_episode,
    youtube_settings,
)

from zray.cli import app
from zray.episode import open_episode
from zray.publish.settings import YouTubeConfig
from zray.publish.youtube import UploadOptions, upload_episode

VIDEO = "S01E01-ES-video.mp4"
UPLOAD_PREFIX = "/upload/youtube/v3/videos"


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


def damage_in_place(path: Path) -> None:
    """Other bytes in the middle of the file, its size and mtime kept (a rerun's fingerprint)."""
    info = path.stat()
    with open(path, "r+b") as fh:
        fh.seek(info.st_size // 2)
        old = fh.read(16)
        fh.seek(info.st_size // 2)
        fh.write(bytes(b ^ 0xFF for b in old))
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (info.st_size, info.st_mtime_ns)


def languages_on(fake: FakeYouTube) -> dict[str, int]:
    return dict(collections.Counter(v["snippet"]["defaultLanguage"] for v in fake.videos.values()))


# --- bytes checked before anything leaves -----------------------------------------------------------


def test_a_video_damaged_in_place_sends_nothing_and_the_other_language_goes_on(folder, config, fake):
    damage_in_place(folder / VIDEO)

    report = upload(folder, config, fake)

    es, pt = report.results
    assert es.action == "failed" and not report.ok
    assert f"{folder / VIDEO} is not the file zray made" in es.message
    assert "nothing of it was sent" in es.message and "zray run" in es.message
    assert pt.action == "uploaded"
    assert languages_on(fake) == {"pt-BR": 1}
    # One session opened (pt-br's): not a byte of the Spanish file left.
    assert len(fake.calls("POST", UPLOAD_PREFIX)) == 1
    assert sum(c.received for c in fake.chunks) == (folder / "S01E01-PT-BR-video.mp4").stat().st_size
    assert "es" not in records(folder)


def test_a_damaged_thumbnail_or_captions_file_is_never_sent(folder, config, fake):
    damage_in_place(folder / "thumbnail_es.png")
    (folder / "subtitles_pt-br.srt").write_bytes(b"1\n00:00:00,000 --> 00:00:02,000\nOtro texto\n")

    report = upload(folder, config, fake)

    es, pt = report.results
    assert es.action == "failed" and "thumbnail_es.png is not the file zray made" in es.message
    assert pt.action == "failed" and "subtitles_pt-br.srt is not the file zray made" in pt.message
    # Checked before the slot's video: nothing of either slot left.
    assert not fake.videos and not fake.calls("POST", UPLOAD_PREFIX)
    assert not fake.thumbnails and not fake.captions


def test_publish_leaves_out_a_damaged_language_and_exits_non_zero(folder, tmp_path):
    damage_in_place(folder / VIDEO)
    site = tmp_path / "site"

    result = CliRunner().invoke(app, ["publish", str(folder), "--site", str(site)])

    assert result.exit_code == 1, result.output
    assert f"{folder / VIDEO} is not the file zray made" in result.output
    published = sorted(p.name for p in site.rglob("*") if p.is_file())
    assert "video.pt-br.mp4" in published and "video.es.mp4" not in published


# --- one video per slot, across processes -------------------------------------------------------------


def _upload_in_a_process(folder: str, settings: dict, fake: FakeYouTube, out: multiprocessing.Queue) -> None:
    report = upload_episode(
        open_episode(folder),
        UploadOptions(
            config=YouTubeConfig(**settings),
            credentials_for=credentials,
            http_factory=fake.http,
            sleep=lambda _s: None,
            now=BEFORE,
        ),
        langs=["es"],
    )
    out.put([(r.action, r.video_id) for r in report.results])


def test_two_copies_of_a_folder_uploaded_at_once_make_one_video(tmp_path, folder, fake, video_bytes):
    copy = tmp_path / "backup" / "demo" / "S01E01"  # the same project
    shutil.copytree(folder, copy)
    settings = youtube_settings(tmp_path, fake)
    fake.chunk_delay = 0.2  # the first upload is still going when the second starts
    forked = multiprocessing.get_context("fork")
    answers: multiprocessing.Queue = forked.Queue()
    first = forked.Process(target=_upload_in_a_process, args=(str(folder), settings, fake, answers))
    first.start()
    while not fake.chunks:  # the first is sending: its slot lock is held
        time.sleep(0.02)
    second = forked.Process(target=_upload_in_a_process, args=(str(copy), settings, fake, answers))
    second.start()
    results = sorted([answers.get(), answers.get()])
    first.join(), second.join()

    assert languages_on(fake) == {"es": 1}, results
    [video_id] = fake.videos
    assert results == [[("restored", video_id)], [("uploaded", video_id)]]
    assert records(folder)["es"]["video_id"] == records(copy)["es"]["video_id"] == video_id
