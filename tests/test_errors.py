"""One clear line and a non-zero exit for every bad input and fault, never a traceback.

Each case is one class of problem a user meets; the command runs as a user runs it (the CLI, or a
real process where a fault must land mid-run), and the test reads what the user would read.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import needs_extra, small_script, write_script
from PIL import Image
from s3server import moto_server
from typer.testing import CliRunner

from zray.cli import app

TESTS = Path(__file__).resolve().parent
FAST = {
    "ZRAY_VIDEO__WIDTH": "320",
    "ZRAY_VIDEO__HEIGHT": "176",
    "ZRAY_VIDEO__PRESET": "fast",
    "ZRAY_EXECUTOR": "in-process",
}


def zray(*args: str, env: dict[str, str] | None = None):
    result = CliRunner().invoke(app, list(args), env={**FAST, **(env or {})})
    return result


def one_line(result, *, code: int | None = None) -> str:
    """The run failed with exactly one `zray:` line on stderr and no traceback; returns that line."""
    assert result.exit_code != 0, result.output
    if code is not None:
        assert result.exit_code == code, (result.exit_code, result.output)
    assert ("Traceback" not in result.output and result.exception is None) or isinstance(
        result.exception, SystemExit
    )
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("zray:")]
    assert len(errors) == 1, result.stderr
    return errors[0]


@pytest.fixture
def script(tmp_path) -> Path:
    return write_script(tmp_path / "scripts" / "proj")


# --- configuration ---------------------------------------------------------------------------------


def test_a_config_file_with_a_byte_that_is_not_utf8(tmp_path, script):
    bad = tmp_path / "zray.toml"
    bad.write_bytes(b'[voices]\nes = "espa\xf1ol"\n')
    line = one_line(zray("run", str(script), "--config", str(bad), "--output", str(tmp_path / "o")))
    assert "not UTF-8" in line and "zray.toml" in line
    assert not (tmp_path / "o").exists()


def test_a_table_set_as_a_value_in_the_environment(tmp_path, script):
    line = one_line(
        zray(
            "run",
            str(script),
            "--output",
            str(tmp_path / "o"),
            env={"ZRAY_VIDEO": "1", "ZRAY_VIDEO__WIDTH": "1280"},
        )
    )
    assert "environment variables ZRAY_VIDEO and ZRAY_VIDEO__" in line and "conflict" in line


@pytest.mark.parametrize("target", ["json:dumps", "os:getcwd", "no_such_module:Engine"])
def test_an_engine_that_is_not_an_engine(tmp_path, script, target):
    line = one_line(
        zray(
            "run",
            str(script),
            "--output",
            str(tmp_path / "o"),
            "--profile",
            "draft",
            env={"ZRAY_ENGINES__IMAGE": target},
        )
    )
    assert target in line and "engines.image" in line
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("setting", "value", "words"),
    [
        ("ZRAY_VIDEO__FPS", "7", "does not divide 48000"),
        ("ZRAY_VIDEO__GOP", "2", "at least 3"),
        ("ZRAY_AUDIO__MUSIC_LEVEL", "3", "it must be at most 1"),
        ("ZRAY_LIMITS__NARRATION_CHARS", "0", "it must be at least 100"),
    ],
)
def test_every_setting_is_checked_where_it_is_parsed(tmp_path, script, setting, value, words):
    line = one_line(zray("run", str(script), "--output", str(tmp_path / "o"), env={setting: value}))
    assert setting in line and value in line and words in line


def test_a_bad_flag_value_is_a_usage_error(tmp_path, script):
    result = zray("run", str(script), "--profile", "fastest")
    assert result.exit_code == 2 and "fastest" in result.output and "Traceback" not in result.output
    result = zray("upload", str(tmp_path), "--privacy", "publik")
    assert result.exit_code == 2 and "publik" in result.output


# --- inputs checked before any work ----------------------------------------------------------------


def _audio_only(path: Path) -> Path:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=48000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 48000), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 48000
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)
    return path


def _three_hours(path: Path) -> Path:
    """Two frames whose timestamps say the clip lasts three hours."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        from fractions import Fraction

        stream.time_base = Fraction(1, 24)
        for pts in (0, 3 * 3600 * 24):
            frame = av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), np.uint8), format="rgb24")
            frame.pts = pts
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def test_intros_that_are_no_clips(tmp_path, script):
    png = tmp_path / "intro.png"
    Image.new("RGB", (64, 64), "red").save(png)
    cases = {
        "audio file": (_audio_only(tmp_path / "intro.m4a"), "no video frames"),
        "picture": (png, "still image"),
        "three hours": (_three_hours(tmp_path / "long.mp4"), "claims to last"),
    }
    for name, (intro, words) in cases.items():
        out = tmp_path / f"o-{name.replace(' ', '-')}"
        line = one_line(zray("run", str(script), "--output", str(out), "--intro", str(intro)))
        assert words in line and str(intro) in line, (name, line)
        assert not out.exists(), f"{name}: work started before the intro was refused"


def test_scripts_that_validate_used_to_pass(tmp_path):
    data = small_script()
    data["scenes"][0]["script_es"] = "\u200b\u200b ... \u200b"
    data["scenes"][1]["script_es"] = "palabra " * 200_000
    data["scenes"][2]["chaptr_es"] = "Tres"
    data["seo"]["es"]["tittle"] = "x"
    data["seo"]["es"]["variants"][0]["thumb_text"] = "X" * 10_000
    path = write_script(tmp_path / "scripts" / "proj", data)
    result = zray("validate", str(path))
    assert result.exit_code == 2
    out = result.stdout + result.stderr
    assert "scenes.0.script_es: nothing to say" in out
    assert "scenes.1.script_es: narration is 1,600,000 characters" in out and "limits.narration_chars" in out
    assert "scenes.2.chaptr_es: unknown key, ignored; did you mean 'chapter_es'?" in out
    assert "seo.es.tittle: unknown key" in out
    assert "thumb_text" in out and len(out) < 5_000  # the 10 kB text is not echoed
    result = zray("validate", "/dev/zero")
    assert result.exit_code == 2 and "not a regular file" in result.output


def test_a_music_file_in_the_draft_profile_is_one_line(tmp_path):
    path = write_script(tmp_path / "scripts" / "proj", small_script(music_file="track.wav"))
    line = one_line(zray("run", str(path), "--output", str(tmp_path / "o"), "--profile", "draft"))
    assert "music_file 'track.wav'" in line
    assert not (tmp_path / "o").exists()


# --- records of the wrong shape ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("finished")
    path = write_script(tmp / "scripts" / "proj", small_script(episode=2))
    result = zray("run", str(path), "--output", str(tmp / "out"), "--profile", "draft", "--lang", "es")
    assert result.exit_code == 0, result.output
    return tmp / "out" / "proj" / path.stem


@pytest.mark.parametrize("broken", ['{"nodes": "abc"}', '{"nodes": {"video:es": 1}}', "[1, 2]", "{not json"])
def test_a_run_record_of_the_wrong_shape_in_publish_and_upload(finished, tmp_path, broken):
    run_json = finished / "run.json"
    good = run_json.read_text()
    run_json.write_text(broken)
    try:
        line = one_line(zray("publish", str(finished), "--site", str(tmp_path / "site")))
        assert "run.json" in line
        needs_extra("publish")
        line = one_line(zray("upload", str(finished), "--dry-run"))
        assert "run.json" in line
    finally:
        run_json.write_text(good)


def test_a_corrupt_upload_record(finished):
    needs_extra("publish")
    published = finished / "published.json"
    published.write_text("{corrupt")
    try:
        line = one_line(zray("upload", str(finished), "--dry-run"))
        assert "published.json" in line
    finally:
        published.unlink()


def test_upload_to_a_language_the_episode_lacks(finished):
    needs_extra("publish")
    line = one_line(zray("upload", str(finished), "--lang", "xx", "--dry-run"))
    assert "xx" in line


# --- faults of the world outside --------------------------------------------------------------------


def test_an_unexpected_error_is_one_line_with_the_traceback_in_a_file(tmp_path, script, monkeypatch):
    import zray.pipeline.run as run_module

    def broken(*args, **kwargs):
        raise RuntimeError("a bug\nwith a second line")

    monkeypatch.setattr(run_module, "execute", broken)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    line = one_line(zray("run", str(script), "--output", str(tmp_path / "o")), code=70)
    assert "RuntimeError: a bug" in line and "second line" not in line
    log = Path(line.rsplit("traceback is in ", 1)[1].rstrip(")"))
    assert "Traceback" in log.read_text() and "raise RuntimeError" in log.read_text()


def test_an_s3_output_without_credentials(tmp_path, script):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        FAST, AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"), AWS_CONFIG_FILE=str(tmp_path / "none")
    )
    env.update(AWS_EC2_METADATA_DISABLED="true")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "zray",
            "run",
            str(script),
            "--output",
            "s3://zray-nowhere/out",
            "--profile",
            "draft",
            "--quiet",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("zray:")]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert "s3://zray-nowhere" in errors[0]


def test_an_s3_endpoint_that_goes_away_mid_run(tmp_path):
    needs_extra("cloud")
    gate = tmp_path / "gate"
    data = small_script()
    data["scenes"][-1]["image_prompt"] = f"GATE:{gate} a last scene"
    path = write_script(tmp_path / "scripts" / "proj", data)
    with moto_server(tmp_path, bucket="zray-away") as (_, server):
        temp = tmp_path / "tmp"
        temp.mkdir()
        env = {
            **os.environ,
            **FAST,
            "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
            "ZRAY_ENGINES__IMAGE": "fault_engines:GatedImageEngine",
            "TMPDIR": str(temp),
        }
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "zray",
                "run",
                str(path),
                "--output",
                "s3://zray-away/out",
                "--profile",
                "draft",
                "--quiet",
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        holder = tmp_path / "gate.holder"
        deadline = time.monotonic() + 300
        while not holder.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert holder.exists(), proc.communicate()[1][-3000:]
        server.terminate()
        server.wait()
        gate.touch()
        _, stderr = proc.communicate(timeout=600)
    assert proc.returncode != 0
    assert "Traceback" not in stderr, stderr[-3000:]
    errors = [line for line in stderr.splitlines() if line.startswith("zray:")]
    assert len(errors) == 1, stderr[-3000:]
    assert "s3://zray-away" in errors[0]
    assert not list(temp.glob("zray-*")), "temp folders left behind"
