"""A Short at the full 1080x1920 plays in Chromium: H.264 codes its 1080 columns as 1088 with the
frame cropped in the SPS, which PyAV and the browser must both honour."""

from __future__ import annotations

import functools
import http.server
import threading
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image
from review_episode import browser_or_skip

from zray.media.mastering import MemoryCache, encode_track
from zray.media.short_video import ShortScene, render_short
from zray.media.video.settings import VideoSettings

WIDTH, HEIGHT, FPS = 1080, 1920, 24


@pytest.fixture(scope="module")
def short(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("short")
    settings = VideoSettings(width=WIDTH, height=HEIGHT, fps=FPS, preset="fast", gop=24)
    rng = np.random.default_rng(5)
    pictures = [
        Image.fromarray(rng.integers(40, 220, (9, 16, 3), dtype=np.uint8)).resize((1920, 1072))
        for _ in range(2)
    ]
    scenes = [ShortScene(pictures[0], 30), ShortScene(pictures[1], 30, transition=6)]
    samples = 60 * 48_000 // FPS
    tone = 0.1 * np.sin(np.arange(samples, dtype=np.float32) * 2 * np.pi * 440 / 48_000)
    sound = encode_track(tone[None], sample_rate=48_000, target_lufs=-14, peak_dbfs=-1, cache=MemoryCache())
    path = folder / "short.mp4"
    render_short(scenes, path, settings=settings, states=[], audio=sound.audio, threads=1)
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
        assert (frame.width, frame.height) == (WIDTH, HEIGHT)
        assert container.streams.video[0].codec_context.coded_width == 1088  # the SPS crops it to 1080
    return path


def test_a_vertical_short_plays_in_chromium(short: Path):
    playwright, browser = browser_or_skip()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(short.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        page = browser.new_page()
        page.set_default_timeout(0)  # no wall-clock limits in tests: the machine is shared
        # A page of the same origin as the video, so its frames may be read back from a canvas.
        (short.parent / "play.html").write_text(
            f'<video id="v" src="{short.name}" muted playsinline></video>'
        )
        page.goto(f"http://127.0.0.1:{server.server_address[1]}/play.html")
        seen = page.evaluate(
            """async () => {
              const v = document.getElementById('v');
              await new Promise((ok, bad) => { v.onloadeddata = ok; v.onerror = () => bad('error ' + v.error.code); v.load(); });
              await v.play();
              while (v.currentTime < 0.5) await new Promise(r => setTimeout(r, 50));
              v.pause();
              v.currentTime = 2.4;
              await new Promise(r => v.onseeked = r);
              const c = document.createElement('canvas'); c.width = v.videoWidth; c.height = v.videoHeight;
              const g = c.getContext('2d'); g.drawImage(v, 0, 0);
              const d = g.getImageData(0, 0, c.width, c.height).data; let s = 0;
              for (let i = 0; i < d.length; i += 4) s += d[i] + d[i + 1] + d[i + 2];
              return {width: v.videoWidth, height: v.videoHeight, duration: v.duration, mean: s / (d.length / 4) / 3};
            }"""
        )
    finally:
        browser.close()
        playwright.stop()
        server.shutdown()
    assert (seen["width"], seen["height"]) == (WIDTH, HEIGHT)
    assert abs(seen["duration"] - 60 / FPS) < 0.1
    assert 40 < seen["mean"] < 220  # a picture, not black or a decoding failure
