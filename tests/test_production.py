"""`zray run --profile production` end to end: Z-Image, Kokoro, Google Cloud TTS and MusicGen in real
Ray actors on CPU, with tiny random-weight models loaded from local directories (the same code path
as a Hub id) and Google's API faked on 127.0.0.1. The outputs pass the draft profile's checks.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import av
import pytest
from conftest import needs_extra, write_script
from PIL import Image
from test_google_tts import tone_wav
from tiny_kokoro import tiny_kokoro_dir
from tiny_musicgen import build_tiny_musicgen
from tiny_zimage import build_tiny_zimage

from zray.config import load_config
from zray.media import subtitles
from zray.pipeline.run import RunRequest, run_episode

needs_extra("models", "diffusers")
needs_extra("models", "kokoro")
KEY = "production-test-key"


def spoken_text(body: dict) -> str:
    """The text of a request: plain, or SSML without its tags (word marks)."""
    source = body["input"]
    if "ssml" in source:
        return re.sub(r"<[^>]*>", "", source["ssml"])
    return source["text"]


@pytest.fixture
def fake_google():
    requests: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            requests.append({"query": parse_qs(urlsplit(self.path).query), "body": body})
            audio = tone_wav(24_000 * max(1, len(spoken_text(body)) // 20))
            payload = json.dumps({"audioContent": base64.b64encode(audio).decode()}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", requests
    server.shutdown()
    server.server_close()


def test_production_profile_end_to_end(tmp_path, tmp_path_factory, monkeypatch, fake_google):
    import ray

    endpoint, requests = fake_google
    # The actors' processes must see the key: start this test's own Ray after setting it.
    ray.shutdown()
    monkeypatch.setenv("GOOGLE_API_KEY", KEY)
    models = {
        "image": str(build_tiny_zimage(tmp_path / "zimage")),
        "kokoro": str(tiny_kokoro_dir(tmp_path_factory)),
        "musicgen": str(build_tiny_musicgen(tmp_path / "musicgen")),
        "music_window": 2.0,
        "device": "cpu",
    }
    data = {
        "project_title": "Producción",
        "saga": 1,
        "episode": 3,
        "global_music_prompt": "calm pads",
        "scenes": [
            {
                "scene_id": 0,
                "image_prompt": "a red planet",
                "script_es": "Hola mundo.",
                "script_ca": "Hola món.",
                "chapter_es": "Uno",
                "chapter_ca": "U",
            },
            {
                "scene_id": 1,
                "image_prompt": "a blue moon",
                "script_es": "Adiós.",
                "script_ca": "Adéu.",
                "chapter_es": "Dos",
                "chapter_ca": "Dos",
            },
        ],
        "seo": {"es": {"variants": [{"title": "Prueba", "thumb_text": "¡HOLA!"}]}},
    }
    script = write_script(tmp_path / "scripts" / "prod", data, name="SAGA_01_Episode_03.json")
    config = load_config(
        None,
        output=str(tmp_path / "out"),
        profile="production",
        quiet=True,
        video={"width": 128, "height": 64, "fps": 24, "preset": "fast", "gop": 24},
        audio={"music_seconds": 4.0},
        models=models,
        google_tts={"endpoint": endpoint, "retries": 1},
    )
    report = run_episode(RunRequest(script=script), config)
    assert report.ok, report.failed

    folder = tmp_path / "out" / "prod" / "SAGA_01_Episode_03"
    record = json.loads((folder / "run.json").read_text())
    assert record["profile"] == "production"
    assert {"zimage", "kokoro", "google", "musicgen"} <= set(record["engines"])
    assert record["engines"]["kokoro"]["model"].endswith("tiny-kokoro")

    # Catalan went to Google with the seed's voice and the key; Spanish went to Kokoro.
    assert requests and all(r["body"]["voice"]["name"] == "ca-ES-Standard-B" for r in requests)
    assert all(r["query"]["key"] == [KEY] for r in requests)
    assert {spoken_text(r["body"]) for r in requests} == {"Hola món.", "Adéu."}

    for lang in ("es", "ca"):
        video = folder / record["nodes"][f"video:{lang}"]["outputs"][0].rsplit("/", 1)[-1]
        frames = sum(record["nodes"][f"pad:{lang}:{i}"]["result"]["frames"] for i in range(2))
        with av.open(str(video)) as container:
            decoded = sum(1 for _ in container.decode(video=0))
        assert decoded == frames
        cues = subtitles.parse_srt((folder / f"subtitles_{lang}.srt").read_text(encoding="utf-8"))
        narration = " ".join(s[f"script_{lang}"] for s in data["scenes"])
        assert " ".join(c.text.replace("\n", " ") for c in cues).split() == narration.split()
        with Image.open(folder / f"thumbnail_{lang}.png") as thumb:
            assert thumb.size == (1280, 720)
    with Image.open(folder / "assets" / "common" / "img_0.png") as image:
        assert image.size == (128, 64)
    assert list((folder / "assets" / "common").glob("bg_music_common_*_4s.wav"))
