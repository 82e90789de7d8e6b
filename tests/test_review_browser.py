"""The review page in a real browser: headless Chromium (Debian's) driven by Playwright.

One finished episode, one `zray review` server and one browser for the whole module; the tests
run in file order (look, approve and upload, then change a picture and rebuild, then the report).
"""

from __future__ import annotations

import hashlib
import io
import json
import wave
from pathlib import Path

import pytest
from conftest import needs_extra, skip_reason
from review_episode import (
    LOAD_ALL_IMAGES,
    browser_or_skip,
    make_episode,
    review_record,
    review_server,
    run_record,
)

pytest.importorskip("starlette", reason=skip_reason("review", "starlette"))
pytest.importorskip("uvicorn", reason=skip_reason("review", "uvicorn"))


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_episode(tmp_path_factory.mktemp("review-browser"))


@pytest.fixture(scope="module")
def server(folder: Path):
    with review_server(folder) as running:
        yield running


@pytest.fixture(scope="module")
def browser():
    playwright, browser = browser_or_skip()
    try:
        yield browser
    finally:
        browser.close()
        playwright.stop()


class Watched:
    """A page whose console errors, page errors and failed requests are collected."""

    def __init__(self, browser, **options):
        self.context = browser.new_context(viewport={"width": 1366, "height": 800}, **options)
        self.context.set_default_timeout(0)  # no wall-clock limits in tests: the machine is shared
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on(
            "console", lambda m: self.errors.append(f"console {m.text}") if m.type == "error" else None
        )
        self.page.on("pageerror", lambda e: self.errors.append(f"page error {e}"))
        self.page.on("request", lambda r: self.requests.append(r.url))

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def page(browser, server):
    watched = Watched(browser)
    watched.page.goto(server.url)
    watched.page.wait_for_selector("body[data-loaded]")
    yield watched
    watched.close()


def load_all_images(page) -> list[dict]:
    """Load every (lazy) picture and return what the browser decoded."""
    return page.evaluate(LOAD_ALL_IMAGES)


def wav_seconds(path: Path) -> float:
    with wave.open(str(path)) as wav:
        return wav.getnframes() / wav.getframerate()


def test_the_page_loads_with_no_console_errors_and_every_picture_loads(page, server):
    assert page.page.title().startswith("S01E02 Prueba de zray")
    images = load_all_images(page.page)
    # Three scene previews and, for Spanish, two thumbnail variants (Catalan has none: its official one).
    assert len(images) == 3 + 2 + 1
    assert all(image["width"] > 0 for image in images), images
    assert all(image["src"].startswith("/previews/") for image in images)  # small previews, not PNGs
    assert page.page.locator(".scene").count() == 3
    assert page.errors == []
    assert all(url.startswith(server.base) or url.startswith("data:") for url in page.requests)


def test_each_narration_plays_for_as_long_as_its_wav(page, folder):
    record = run_record(folder)
    for lang in ("es", "ca"):
        page.page.select_option("#scene-lang", lang)
        audios = page.page.locator(f"audio[data-lang='{lang}']")
        assert audios.count() == 3
        durations = page.page.evaluate(
            """async () => Promise.all([...document.querySelectorAll('audio')].map(a => new Promise(done => {
                   a.preload = 'metadata';
                   a.addEventListener('loadedmetadata', () => done(a.duration), {once: true});
                   a.addEventListener('error', () => done(-1), {once: true});
                   a.load();
               })))"""
        )
        for index, seconds in enumerate(durations):
            pad = record["nodes"][f"pad:{lang}:{index}"]["outputs"][0]
            assert abs(seconds - wav_seconds(folder / pad)) <= 1 / 24, (lang, index, seconds)
    assert page.errors == []


def test_the_video_plays_with_its_subtitle_track(page):
    video = page.page.locator("video[data-lang='es']")
    track = video.locator("track")
    assert track.get_attribute("kind") == "subtitles" and track.get_attribute("srclang") == "es"
    state = page.page.evaluate(
        """async () => {
            const video = document.querySelector("video[data-lang='es']");
            video.muted = true;
            const track = video.textTracks[0];
            track.mode = 'showing';
            await video.play();
            await new Promise(done => {
                const check = () => video.currentTime > 0.3 ? done() : setTimeout(check, 50);
                check();
            });
            video.pause();
            const cues = await new Promise(done => {
                const check = () => track.cues && track.cues.length ? done(track.cues.length) : setTimeout(check, 50);
                check();
            });
            return {time: video.currentTime, cues, width: video.videoWidth, duration: video.duration,
                    error: video.error && video.error.code, first: track.cues[0].text};
        }"""
    )
    assert state["time"] > 0.3 and state["error"] is None and state["width"] == 320
    assert state["cues"] > 3 and state["first"].startswith("Hola")
    assert page.errors == []


def test_clicking_approve_records_it_and_the_upload_gate_lets_that_language_through(page, folder, tmp_path):
    needs_extra("publish")
    from fake_youtube import FakeYouTube
    from google.oauth2.credentials import Credentials
    from youtube_episode import BEFORE, CLIENT, youtube_settings

    from zray.episode import open_episode
    from zray.publish.settings import YouTubeConfig
    from zray.publish.youtube import UploadOptions, upload_episode

    assert "approvals" not in review_record(folder)
    page.page.click("button[data-action='approve'][data-lang='es']")
    page.page.wait_for_selector("#lang-es [data-approval='approved']")
    approval = review_record(folder)["approvals"]["es"]
    assert approval["keys"] == {"video:es": run_record(folder)["nodes"]["video:es"]["key"]}
    assert page.page.locator("#lang-ca [data-approval='none']").count() == 1

    cert = tmp_path / "cert"
    cert.mkdir()
    with FakeYouTube(cert) as fake:
        report = upload_episode(
            open_episode(str(folder)),
            UploadOptions(
                config=YouTubeConfig(**youtube_settings(tmp_path, fake)),
                credentials_for=lambda _lang: Credentials(
                    "test-access-token", refresh_token="r", client_id=CLIENT, client_secret="s"
                ),
                http_factory=fake.http,
                sleep=lambda _s: None,
                now=BEFORE,
            ),
            require_review=True,
        )
        assert [r.action for r in report.results] == ["uploaded", "unapproved"]
        assert report.lines()[1] == f"ca: not approved in review (zray review {folder})"
        assert len(fake.videos) == 1
    page.page.reload()
    page.page.locator("#lang-es .badge", has_text="published").wait_for()
    assert page.errors == []


def _picture_digests(folder: Path) -> dict[int, str]:
    record = run_record(folder)
    return {
        index: hashlib.sha256(
            (folder / record["nodes"][f"image:{index}"]["outputs"][0]).read_bytes()
        ).hexdigest()
        for index in range(3)
    }


def test_a_new_seed_then_rebuild_changes_exactly_that_scenes_picture(page, folder):
    before_files = _picture_digests(folder)
    sources = page.page.evaluate(
        "[...document.querySelectorAll('.scene img')].map(i => i.getAttribute('src'))"
    )
    card = page.page.locator(".scene[data-scene='2']")
    card.locator("input[aria-label='seed']").fill("777")
    card.locator("button[data-action='set-seed']").click()
    page.page.locator(".scene[data-scene='2'] .muted", has_text="seed 777").wait_for()
    assert review_record(folder)["scenes"]["2"]["seed"] == 777

    page.page.click("#rebuild")
    page.page.wait_for_selector("body[data-rebuild='done'], body[data-rebuild='failed']")
    log = page.page.locator("#rebuild-log").inner_text()
    assert page.page.get_attribute("body", "data-rebuild") == "done", log
    page.page.evaluate(
        """async (old) => {
            const changed = () => document.querySelector(".scene[data-scene='2'] img").getAttribute('src') !== old;
            while (!changed()) await new Promise(done => setTimeout(done, 100));
        }""",
        sources[2],
    )
    after_files = _picture_digests(folder)
    assert {i for i in range(3) if before_files[i] != after_files[i]} == {2}
    now = page.page.evaluate("[...document.querySelectorAll('.scene img')].map(i => i.getAttribute('src'))")
    assert [now[i] != sources[i] for i in range(3)] == [False, False, True]
    assert all(image["width"] > 0 for image in load_all_images(page.page))
    # The rebuilt video has a new key: the approval given before no longer counts.
    page.page.wait_for_selector("#lang-es [data-approval='outdated']")
    assert page.errors == []


def test_the_review_page_shows_the_run_report(page):
    frame = page.page.frame_locator("#report")
    frame.locator("h1").wait_for()
    assert "run report" in frame.locator("h1").inner_text()
    assert page.errors == []


def test_the_report_opens_from_disk_with_no_network(browser, folder):
    watched = Watched(browser, offline=True)
    report = folder / "report.html"
    watched.page.goto(report.as_uri())
    watched.page.wait_for_load_state("load")
    assert watched.page.locator("h1").inner_text().endswith("run report")
    images = watched.page.evaluate("[...document.images].map(i => i.naturalWidth)")
    assert len(images) == 3 and all(width > 0 for width in images)
    assert watched.page.locator("#timeline rect").count() > 0
    assert watched.page.locator("#engines td", has_text="storyboard").count() >= 1
    text = watched.page.locator("body").inner_text()
    assert "True peak" in text and "cache" in text
    assert watched.requests == [report.as_uri()]  # pictures are embedded: nothing else is asked for
    assert watched.errors == []
    watched.close()
    data = json.loads((folder / "run.json").read_text())
    assert "report.html" in data["generated"]


def test_report_html_is_small_and_self_contained(folder):
    text = (folder / "report.html").read_text(encoding="utf-8")
    assert "http://" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in text and "<script" not in text
    assert len(io.BytesIO(text.encode()).getvalue()) < 200_000


# --- a scene of motion generate: a new clip, its picture kept -------------------------------------


@pytest.fixture(scope="module")
def generated_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_episode(tmp_path_factory.mktemp("review-clip"), generated=True)


@pytest.fixture
def generated_page(browser, generated_folder: Path):
    with review_server(generated_folder) as running:
        watched = Watched(browser)
        watched.page.goto(running.url)
        watched.page.wait_for_selector("body[data-loaded]")
        yield watched
        watched.close()


def _file_digest(folder: Path, record: dict, node: str) -> str:
    return hashlib.sha256((folder / record["nodes"][node]["outputs"][0]).read_bytes()).hexdigest()


def test_a_new_clip_then_rebuild_changes_the_clip_but_not_its_picture(generated_page, generated_folder):
    page, folder = generated_page.page, generated_folder
    before = run_record(folder)
    assert page.locator(".scene .clip").count() == 1  # only the generated scene has a clip to re-roll
    card = page.locator(".scene[data-scene='0']")
    assert card.locator("[data-role='clip-seed']").inner_text() == "from the picture's seed"
    assert card.locator(".clip a").get_attribute("href").split("?")[0].endswith(".mp4")
    card.locator("button[data-action='new-clip']").click()
    card.locator("button[data-action='reset-clip-seed']").wait_for()
    chosen = review_record(folder)["clips"]["0"]
    assert chosen["scene_id"] == "0" and "0" not in review_record(folder).get("scenes", {})
    assert (
        card.locator("[data-role='clip-seed']").inner_text().startswith(f"seed {chosen['seed']} (chosen by ")
    )

    page.click("#rebuild")
    page.wait_for_selector("body[data-rebuild='done'], body[data-rebuild='failed']")
    log = page.locator("#rebuild-log").inner_text()
    assert page.get_attribute("body", "data-rebuild") == "done", log
    after = run_record(folder)
    rebuilt = {n for n in before["nodes"] if before["nodes"][n]["key"] != after["nodes"][n]["key"]}
    assert {"clip:0", "motion:0", "video:es", "video:ca"} <= rebuilt
    assert not any(n.startswith(("image:", "tts:", "pad:", "clip:1", "thumbs:")) for n in rebuilt)
    assert _file_digest(folder, after, "image:0") == _file_digest(folder, before, "image:0")
    assert _file_digest(folder, after, "clip:0") != _file_digest(folder, before, "clip:0")
    # The page links the new clip once it has reloaded the episode.
    new_clip = after["nodes"]["clip:0"]["outputs"][0]
    page.locator(f".scene[data-scene='0'] .clip a[href*='{new_clip.rsplit('/', 1)[1]}']").wait_for()
    assert generated_page.errors == []
