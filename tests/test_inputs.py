"""Inputs that never end, and the small ones: every file a user names is a regular file read with a
bound, any nesting depth is one line, and a few values that were told as something else are told
as what they are.

A FIFO given as an input would hang zray forever (nothing ever writes to it): each is one line
naming the file before any work. The `subprocess` timeouts only keep a regression from hanging the
test session; nothing here measures time.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import small_script, write_script
from PIL import Image
from typer.testing import CliRunner

from zray.cli import app
from zray.keys import safe_name
from zray.publish.auth import load_client_config
from zray.publish.errors import AuthError
from zray.publish.settings import YouTubeConfig
from zray.script import check_text

FIFO = "it is a named pipe (FIFO), not a file"


def zray(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZRAY_")}
    return subprocess.run(
        [sys.executable, "-m", "zray", *args], capture_output=True, text=True, timeout=300, env=env, cwd=cwd
    )


def one_line(result: subprocess.CompletedProcess) -> str:
    """zray's one line about the problem (log lines about engines may come before it)."""
    lines = [line for line in result.stderr.splitlines() if line.startswith("zray:")]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "pipe"
    os.mkfifo(path)
    return path


# --- a FIFO, a device or a folder where a file belongs ---------------------------------------------


def test_a_fifo_as_the_intro_from_the_flag_or_the_seed_layout_is_one_line(tmp_path, fifo):
    script = write_script(tmp_path / "inputs" / "scripts" / "proj")
    out = tmp_path / "out"
    result = zray("run", str(script), "--output", str(out), "--profile", "draft", "--intro", str(fifo))
    assert result.returncode == 1 and f"--intro {fifo}: {FIFO}" in one_line(result)
    # The seed's layout: inputs/assets/<project>/intro*.mp4 is found without a flag.
    (tmp_path / "inputs" / "assets" / "proj").mkdir(parents=True)
    os.mkfifo(tmp_path / "inputs" / "assets" / "proj" / "intro.mp4")
    result = zray("run", str(script), "--output", str(out), "--profile", "draft")
    assert result.returncode == 1 and f"intro.mp4: {FIFO}" in one_line(result)
    assert not out.exists() or not any(out.rglob("*.mp4"))


def test_a_fifo_or_device_as_the_script_or_config_is_one_line(tmp_path, fifo):
    result = zray("validate", str(fifo))
    assert result.returncode == 2 and FIFO in result.stdout + result.stderr
    result = zray("validate", "/dev/zero")
    assert result.returncode == 2 and "it is a device" in result.stdout + result.stderr
    script = write_script(tmp_path / "scripts" / "proj")
    result = zray("run", str(script), "--output", str(tmp_path / "out"), "--config", str(fifo))
    assert result.returncode == 1 and f"{fifo}: cannot read the config file: {FIFO}" in one_line(result)
    result = zray("run", str(script), "--output", str(tmp_path / "out"), "--config", str(tmp_path))
    assert result.returncode == 1 and "it is a folder, not a file" in one_line(result)


def test_a_fifo_or_folder_as_a_studio_picture_is_named_as_what_it_is(tmp_path):
    data = small_script()
    data["scenes"][0]["image_file"] = "pipe.png"
    data["scenes"][1]["image_file"] = "pictures"
    folder = tmp_path / "scripts" / "proj"
    script = write_script(folder, data)
    os.mkfifo(folder / "pipe.png")
    (folder / "pictures").mkdir()
    result = CliRunner().invoke(app, ["validate", str(script)])
    assert result.exit_code == 2
    assert f"scenes.0.image_file: 'pipe.png': {FIFO} next to the script" in result.output
    assert "scenes.1.image_file: 'pictures': it is a folder, not a file next to the script" in result.output
    assert "no such file" not in result.output


def test_a_fifo_as_the_client_secret_is_one_line(tmp_path, fifo):
    with pytest.raises(AuthError, match=re.escape(f"youtube.client_secret {fifo}: {FIFO}")):
        load_client_config(YouTubeConfig(client_secret=fifo, token_dir=tmp_path / "tokens"))


# --- any nesting depth ---------------------------------------------------------------------------


def test_a_script_nested_too_deep_is_invalid_like_any_other(tmp_path):
    deep = tmp_path / "deep.json"
    deep.write_text('{"scenes": ' + "[" * 100_000 + "]" * 100_000 + "}")
    result = zray("validate", str(deep))
    assert result.returncode == 2 and "nested more than 32 levels deep" in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_a_config_nested_too_deep_is_one_line(tmp_path):
    config = tmp_path / "zray.toml"
    config.write_text("x = " + "[" * 50_000 + "]" * 50_000 + "\n")
    script = write_script(tmp_path / "scripts" / "proj")
    result = zray("run", str(script), "--output", str(tmp_path / "out"), "--config", str(config))
    assert result.returncode == 1 and "nested more than 16 levels deep" in one_line(result)


def test_a_record_nested_too_deep_is_one_line(tmp_path):
    folder = tmp_path / "out" / "proj" / "EP"
    folder.mkdir(parents=True)
    (folder / "run.json").write_text("[" * 100_000 + "]" * 100_000)
    result = zray("verify", str(folder))
    assert result.returncode == 1 and "run.json: the run record is nested too deep" in one_line(result)


# --- the smaller ones ----------------------------------------------------------------------------


def test_a_picture_over_40_megapixels_is_refused_before_any_work(tmp_path):
    data = small_script()
    data["scenes"][0]["image_file"] = "huge.png"
    folder = tmp_path / "scripts" / "proj"
    script = write_script(folder, data)
    Image.new("1", (8000, 5001)).save(folder / "huge.png")  # 40.008 megapixels, a small file
    out = tmp_path / "out"
    result = zray("run", str(script), "--output", str(out), "--profile", "draft")
    line = one_line(result)
    assert result.returncode == 1 and "scenes.0.image_file: huge.png is 8000x5001 (40 megapixels)" in line
    assert "up to 40 megapixels" in line and not any(out.rglob("*.png"))


def test_bidirectional_controls_never_reach_a_file_name():
    for control in [*map(chr, range(0x202A, 0x202F)), *map(chr, range(0x2066, 0x206A))]:
        name = safe_name(f"evil{control}gnp.mp4")
        assert control not in name and name == "evil_gnp.mp4"


def test_a_nan_gap_and_a_narration_key_with_path_characters_are_told_as_such():
    data = small_script()
    data["scenes"][0]["gap"] = float("nan")
    data["scenes"][1]["script_../../etc"] = "hola"
    data["scenes"][2]["script_ES"] = "hola"
    errors = [p.render("s.json") for p in check_text(json.dumps(data)).errors]
    assert "s.json: scenes.0.gap: nan is not a number; give a finite number" in errors
    assert any("scenes.1.script_../../etc: '../../etc' is not a language code" in e for e in errors)
    assert "s.json: scenes.2.script_ES: language code must be lowercase, like script_es" in errors
