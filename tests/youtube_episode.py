"""A finished two-language episode folder written by hand, and the settings that point the
uploader at the fake YouTube server: shared by the YouTube upload tests."""

from __future__ import annotations

import hashlib
import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from fake_youtube import GRANULE, FakeYouTube
from google.oauth2.credentials import Credentials
from PIL import Image

from zray.publish.youtube import UploadOptions

CLIENT = "client-1.apps.googleusercontent.com"


def credentials(_lang: str = "es") -> Credentials:
    """The token every test channel has (the fake server takes any bearer token)."""
    return Credentials(
        "test-access-token", refresh_token="test-refresh-token", client_id=CLIENT, client_secret="s"
    )


def fake_options(config: Any, fake: FakeYouTube, **options: Any) -> UploadOptions:
    """How the tests upload: to the fake server, as the test channel, never sleeping, and at BEFORE
    unless told otherwise."""
    options.setdefault("credentials_for", credentials)
    options.setdefault("now", BEFORE)
    return UploadOptions(config=config, http_factory=fake.http, sleep=lambda _s: None, **options)


DATE = "2027-03-01T18:00:00Z"
BEFORE = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)  # the script's date is still to come
AFTER = datetime(2027, 6, 1, 12, 0, tzinfo=UTC)
LANGS = ("es", "pt-br")
CHAPTERS = {"es": "0:00 Introducción\n0:12 Plantas negras", "pt-br": "0:00 Introdução\n0:12 Plantas negras"}
SRT = {
    lang: f"1\n00:00:00,000 --> 00:00:02,000\n{text}\n".encode()
    for lang, text in (("es", "Hola, bosque."), ("pt-br", "Olá, floresta."))
}
PUBLISHED = "published.json"
UPLOAD_STATE = "upload_state.json"


def noise_mp4(path: Path) -> bytes:
    """A small real MP4 (noise, so it does not compress): about five upload chunks of 256 KiB."""
    import av

    rng = np.random.default_rng(7)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=12)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        stream.options = {"crf": "0"}
        for _ in range(42):
            frame = av.VideoFrame.from_ndarray(
                rng.integers(0, 256, (120, 160, 3), dtype=np.uint8), format="rgb24"
            )
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    data = path.read_bytes()
    assert 4 * GRANULE < len(data) < 8 * GRANULE and len(data) % GRANULE
    return data


def script_data(**overrides: object) -> dict:
    data = {
        "project_title": "Bosques de otro mundo",
        "saga": 1,
        "episode": 1,
        "date_published": DATE,
        "scenes": [
            {
                "scene_id": 0,
                "image_prompt": "alien forest",
                "script_es": "Hola, bosque.",
                "script_pt-br": "Olá, floresta.",
            }
        ],
        "seo": {
            "es": {
                "variants": [{"title": "Bosques bajo una estrella roja"}, {"title": "Otro título"}],
                "description": "Un viaje a los bosques de los planetas de enanas rojas.",
                "tags": ["exoplanetas", "bosques alienígenas", "ciencia", "astrobiología"],
            },
            "pt-br": {
                "variants": [{"title": "Florestas sob uma estrela vermelha"}],
                "description": "Uma viagem às florestas de outros mundos.",
                "tags": ["exoplanetas", "ciência"],
            },
        },
    }
    data.update(overrides)
    return data


def write_episode(
    root: Path, video: bytes, thumbnail_pt: bytes, *, script: dict | None = None, name: str = "S01E01"
) -> Path:
    folder = root / "outputs" / "demo" / name
    folder.mkdir(parents=True)
    nodes = {}
    small_png = io.BytesIO()
    Image.new("RGB", (1280, 720), (20, 90, 40)).save(small_png, format="PNG")
    for lang in LANGS:
        at = f"demo/{name}/{{}}"
        video_name = f"S01E01-{lang.upper()}-video.mp4"
        (folder / video_name).write_bytes(video)
        (folder / f"thumbnail_{lang}.png").write_bytes(small_png.getvalue() if lang == "es" else thumbnail_pt)
        (folder / f"subtitles_{lang}.srt").write_bytes(SRT[lang])
        (folder / f"subtitles_{lang}.vtt").write_text("WEBVTT\n")
        (folder / f"chapters_{lang}.txt").write_text(CHAPTERS[lang] + "\n", encoding="utf-8")
        nodes[f"video:{lang}"] = {
            "key": f"video-{lang}-1",
            "outputs": [at.format(video_name)],
            "result": {"path": at.format(video_name), "duration": 24.0},
        }
        nodes[f"thumbs:{lang}"] = {"key": f"thumbs-{lang}", "outputs": [at.format(f"thumbnail_{lang}.png")]}
        nodes[f"subs:{lang}"] = {
            "key": f"subs-{lang}",
            "outputs": [at.format(f"subtitles_{lang}.{ext}") for ext in ("srt", "vtt")]
            + [at.format(f"chapters_{lang}.txt")],
        }
    (folder / "run.json").write_text(json.dumps({"script": "SAGA_01_Episode_01.json", "nodes": nodes}))
    (folder / "script.json").write_text(
        json.dumps(script or script_data(), ensure_ascii=False), encoding="utf-8"
    )
    record_files(folder)
    return folder


def record_files(folder: Path) -> None:
    """Record every output's sha256 in run.json as zray does when it writes a file (call it again
    after a test puts other bytes in a file, as a rebuild would)."""
    data = json.loads((folder / "run.json").read_text())
    for entry in data["nodes"].values():
        entry["files"] = {}
        for path in entry["outputs"]:
            # The outputs of a record before format 2 name a file from the output root.
            name = path if (folder / path).exists() else path.split("/", 2)[-1]
            raw = (folder / name).read_bytes()
            entry["files"][name] = {"sha256": hashlib.sha256(raw).hexdigest(), "size": len(raw), "stamp": "-"}
    (folder / "run.json").write_text(json.dumps(data, ensure_ascii=False))


def change_video_key(folder: Path, lang: str) -> None:
    record = json.loads((folder / "run.json").read_text())
    record["nodes"][f"video:{lang}"]["key"] = f"video-{lang}-2"
    (folder / "run.json").write_text(json.dumps(record))


def edit_script(folder: Path, edit) -> None:
    data = json.loads((folder / "script.json").read_text(encoding="utf-8"))
    edit(data)
    (folder / "script.json").write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")


def client_secret(folder: Path) -> Path:
    secret = folder / "client_secret.json"
    client = {
        "client_id": CLIENT,
        "client_secret": "s",
        "auth_uri": "https://accounts.invalid/auth",
        "token_uri": "x",
    }
    secret.write_text(json.dumps({"installed": client}))
    return secret


def youtube_settings(folder: Path, fake: FakeYouTube, **changes: object) -> dict:
    """The `[youtube]` settings of a test: the fake's endpoints, 256 KiB chunks, quick retries."""
    return {
        "client_secret": client_secret(folder),
        "token_dir": folder / "tokens",
        "api_endpoint": fake.url,
        "token_uri": fake.token_uri,
        "chunk_size": GRANULE,
        "retries": 6,
        "backoff_seconds": 0.01,
        **changes,
    }


def records(folder: Path, name: str = PUBLISHED) -> dict:
    """A record's entries (`videos` or `sessions`), whichever way it was written."""
    data = json.loads((folder / name).read_text())
    return data.get("videos", data.get("sessions", data)) if "identity" in data else data
