"""The run report (report.html) from a run record: what it shows, that it is self-contained, and
that it is written only when its content changes. (A real run's report, opened in Chromium from
file://, is tested in test_review_browser.py.)"""

from __future__ import annotations

import base64
import io
import json
import re
import sys
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from zray.cli import app
from zray.review.report import write_report
from zray.store import Store

STEPS = {
    "image:0": {
        "state": "built",
        "started": 100.0,
        "ended": 101.5,
        "seconds": 1.5,
        "worker": "actor:image",
        "node": "abcdef123456",
        "executor": "ray",
        "gpu": "0",
    },
    "tts:es:0": {"state": "built", "started": 100.2, "ended": 100.9, "seconds": 0.7, "worker": "actor:tts"},
    "video:es": {
        "state": "failed",
        "started": 101.5,
        "ended": 103.0,
        "seconds": 1.5,
        "worker": "task",
        "error": "boom",
    },
    "video:en": {"state": "built", "started": 101.6, "ended": 102.5, "seconds": 0.9, "worker": "task"},
    "music": {"state": "cached"},
}


def script() -> dict:
    return {
        "project_title": "Informe <script>alert(1)</script>",
        "saga": 1,
        "episode": 3,
        "scenes": [
            {"scene_id": 0, "image_prompt": "A <b>bold</b> forest", "script_es": "Hola.", "script_en": "Hi."},
            {"scene_id": 1, "image_prompt": "A sea", "script_es": "Mar.", "script_en": "Sea."},
        ],
    }


def png(colour: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (1920, 1072), colour).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    folder = tmp_path / "proj" / "SAGA_01_Episode_03"
    (folder / "assets/common").mkdir(parents=True)
    (folder / "assets/common/img_0.png").write_bytes(png((200, 30, 30)))
    (folder / "script.json").write_text(json.dumps(script()), encoding="utf-8")
    record = {
        "format": 2,
        "identity": {"project": "proj", "saga": 1, "episode": 3},
        "script": "/scripts/proj/SAGA_01_Episode_03.json",
        "engines": {
            "storyboard": {"engine": "storyboard", "model": None, "version": "1"},
            "zimage": {"engine": "z-image", "model": "Tongyi-MAI/Z-Image-Turbo", "version": "2", "steps": 8},
        },
        "cache": {"hits": 1, "built": 3},
        "finished": "2026-11-28T00:00:00Z",
        "nodes": {
            "image:0": {"key": "k0", "outputs": ["assets/common/img_0.png"], "result": {}},
            "video:es": {
                "key": "v1",
                "outputs": ["S01E03-ES-x.mp4"],
                "result": {"duration": 61.0, "size": 2_000_000, "gain_db": -3.25, "true_peak_dbtp": -1.4},
            },
            "video:en": {
                "key": "v2",
                "outputs": ["S01E03-EN-x.mp4"],
                "result": {"duration": 59.0, "size": 1_000_000, "gain_db": 0.5, "true_peak_dbtp": None},
            },
        },
        "last_run": {
            "command": "zray run SAGA_01_Episode_03.json",
            "version": "0.1.0",
            "executor": "ray",
            "profile": "production",
            "options": {"config": {"audio": {"target_lufs": -14.0}}},
            "wall_seconds": 3.2,
            "step_seconds_by_stage": {"images": 1.5, "narration": 0.7, "assembly": 2.4},
            "steps": STEPS,
            "warnings": ["a <damaged> file was rebuilt"],
            "notes": ["MusicGen is CC-BY-NC"],
            "failed": {"es": "boom"},
        },
    }
    (folder / "run.json").write_text(json.dumps(record), encoding="utf-8")
    return folder


def test_the_report_shows_the_run(folder: Path):
    assert write_report(Store(str(folder)))
    text = (folder / "report.html").read_text(encoding="utf-8")
    # Engines and model identities.
    assert "Tongyi-MAI/Z-Image-Turbo" in text and "storyboard" in text
    # Loudness and true peak per language, when measured.
    assert "-3.2 dB" in text and "-1.4 dBTP" in text and "not measured" in text and "-14 LUFS" in text
    # The stage chart and one bar per step that ran, on the row of what ran it, with its node.
    assert text.count("<rect") == 3 + 4
    assert "actor:image @ abcdef123456" in text and "image:0: built, 1.50 s" in text and "GPU 0" in text
    assert "video:es: failed" in text and "stroke='#000'" in text
    assert "1 of 5 steps came from the cache" in text and "1 run, 1 cached" not in text
    assert "3 run, 1 cached (cache hits)" in text
    # Warnings and notes, escaped.
    assert "a &lt;damaged&gt; file was rebuilt" in text and "MusicGen is CC-BY-NC" in text
    assert "failed: es: boom" in text


def test_the_report_is_self_contained_and_escapes_script_text(folder: Path):
    write_report(Store(str(folder)))
    text = (folder / "report.html").read_text(encoding="utf-8")
    assert "<script" not in text and "&lt;script&gt;" in text and "&lt;b&gt;bold&lt;/b&gt;" in text
    assert re.findall(r'(?:src|href)="(?!data:)', text) == []  # nothing loaded from anywhere
    assert "default-src 'none'" in text
    # The scene strip: a small embedded JPEG for the picture, a note for the one never made.
    images = re.findall(r'src="data:image/jpeg;base64,([^"]+)"', text)
    assert len(images) == 1
    with Image.open(io.BytesIO(base64.b64decode(images[0]))) as preview:
        assert preview.width == 192
    assert "no picture" in text


def test_the_report_is_written_only_when_its_content_changes(folder: Path):
    store = Store(str(folder))
    assert write_report(store) is True
    stamp = (folder / "report.html").stat().st_mtime_ns
    assert write_report(store) is False
    assert (folder / "report.html").stat().st_mtime_ns == stamp
    record = json.loads((folder / "run.json").read_text())
    record["last_run"]["warnings"].append("something new")
    (folder / "run.json").write_text(json.dumps(record))
    assert write_report(store) is True
    assert "something new" in (folder / "report.html").read_text(encoding="utf-8")


def test_a_damaged_picture_is_named_in_the_report_not_fatal(folder: Path):
    (folder / "assets/common/img_0.png").write_bytes(b"not a png")
    assert write_report(Store(str(folder)))
    assert "assets/common/img_0.png" in (folder / "report.html").read_text(encoding="utf-8")


def test_zray_report_writes_it_again_from_run_json(folder: Path):
    runner = CliRunner()
    first = runner.invoke(app, ["report", str(folder)])
    assert first.exit_code == 0 and first.stdout.strip().endswith("report.html: written")
    second = runner.invoke(app, ["report", str(folder)])
    assert second.exit_code == 0 and second.stdout.strip().endswith("report.html: unchanged")
    empty = folder.parent / "empty"
    empty.mkdir()
    missing = runner.invoke(app, ["report", str(empty)])
    assert missing.exit_code == 1 and "no run.json here" in missing.stderr


def test_review_without_the_review_extra_is_one_line(folder: Path):
    import subprocess

    code = (
        "import sys\n"
        "sys.modules['starlette'] = sys.modules['uvicorn'] = None\n"  # the extra, absent
        "from zray.cli import main\n"
        f"sys.argv = ['zray', 'review', {str(folder)!r}, '--no-browser']\nmain()\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        "zray: zray review needs uvicorn: install the review extra: pip install 'zray[review]'"
    ]
