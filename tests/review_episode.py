"""A real finished episode for the review tests, the `zray review` server as a process, and the
headless Chromium the browser tests drive (Debian's package, through Playwright).

`REQUIRE_BROWSER=1` (set by .ci/run) turns a missing Chromium or Playwright into a failure
instead of a skip: CI must never pass without having run the browser tests.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import FAST_VIDEO, small_script, write_script

from zray.config import load_config
from zray.pipeline.run import RunRequest, run_episode

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

# The page's Content-Security-Policy forbids eval, which Playwright's wait_for_function polls
# with: waits are async functions evaluated in the page instead.
LOAD_ALL_IMAGES = """async () => {
    const images = [...document.images];
    images.forEach(i => { i.loading = 'eager'; });  // lazy pictures below the fold load too
    await Promise.all(images.map(i => i.complete ? null : new Promise(done => {
        i.addEventListener('load', done, {once: true});
        i.addEventListener('error', done, {once: true});
    })));
    return images.map(i => ({src: i.getAttribute('src'), width: i.naturalWidth}));
}"""


def review_script() -> dict:
    """small_script with two Spanish thumbnail variants, to choose the official one from."""
    data = small_script()
    data["seo"]["es"] = {
        "variants": [
            {"title": "Título de prueba", "thumb_text": "¡PRUEBA!"},
            {"title": "Otro título", "thumb_text": "¡OTRA!"},
        ],
        "description": "Una prueba de zray.",
        "tags": ["test"],
    }
    return data


def make_episode(root: Path, *, generated: bool = False) -> Path:
    """Run the draft profile in this process (no Ray) and return the finished episode folder;
    `generated`: scene 0 of motion generate (a 1 s parallax clip made from its picture)."""
    data = review_script()
    if generated:
        data["scenes"][0]["motion"] = "generate"
    script = write_script(root / "scripts" / "proj", data)
    config = load_config(
        None,
        output=str(root / "out"),
        profile="draft",
        quiet=True,
        video=FAST_VIDEO,
        executor="in-process",
        audio={"music_seconds": 8.0},
        **({"models": {"video_seconds": 1.0}} if generated else {}),
    )
    report = run_episode(RunRequest(script=script), config)
    assert report.ok, report.failed
    return root / "out" / "proj" / script.stem


def run_record(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "run.json").read_text(encoding="utf-8"))


def review_record(folder: Path) -> dict[str, Any]:
    path = folder / "review.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


@dataclass
class Server:
    process: subprocess.Popen[str]
    url: str  # as printed: with the token

    @property
    def base(self) -> str:
        return self.url.split("/?", 1)[0]

    @property
    def token(self) -> str:
        return self.url.split("token=", 1)[1]

    @property
    def port(self) -> int:
        return int(self.base.rsplit(":", 1)[1])

    def request(
        self,
        path: str,
        *,
        method: str = "GET",
        body: dict[str, Any] | None = None,
        token: bool = True,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, bytes]:
        all_headers = {"X-Zray-Token": self.token} if token else {}
        all_headers |= headers or {}
        data = json.dumps(body).encode() if body is not None else (b"" if method == "POST" else None)
        if data is not None:
            all_headers.setdefault("Content-Type", "application/json")
        request = urllib.request.Request(self.base + path, data=data, method=method, headers=all_headers)
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def json(self, path: str, **options: Any) -> Any:
        status, body = self.request(path, **options)
        assert status < 300, (status, body)
        return json.loads(body)

    def wait_rebuild(self) -> dict[str, Any]:
        """Poll the rebuild until it ends (the tests never limit wall time: the machine is shared)."""
        while True:
            status = self.json("/api/rebuild")
            if not status["running"]:
                return status
            time.sleep(0.3)


@contextlib.contextmanager
def review_server(folder: Path, *args: str) -> Iterator[Server]:
    """`zray review FOLDER --no-browser` as its own process; its first stdout line is the URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "zray", "review", str(folder), "--no-browser", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("ZRAY_")},
    )
    assert process.stdout is not None
    first = process.stdout.readline().strip()
    if not first.startswith("http://"):
        process.kill()
        _, err = process.communicate()
        raise AssertionError(f"zray review printed {first!r} first; stderr: {err}")
    try:
        yield Server(process, first)
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def browser_or_skip() -> tuple[Any, Any]:
    """(playwright, browser): headless Debian Chromium; Playwright never downloads a browser."""
    required = os.environ.get("REQUIRE_BROWSER") == "1"
    problem = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        problem = "the playwright package is not installed (pip install -e '.[dev]')"
    if problem is None and not Path(CHROMIUM).exists():
        problem = f"{CHROMIUM} is missing (apt-get install chromium)"
    if problem is not None:
        if required:
            pytest.fail(f"REQUIRE_BROWSER=1 but {problem}")
        pytest.skip(problem)
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    playwright = sync_playwright().start()
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    return playwright, browser
