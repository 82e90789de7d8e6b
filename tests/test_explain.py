"""`zray run --explain` names what changed for each stale node: the script's JSON path, the setting,
the input node, the engine, or the missing file (from what run.json recorded each node was made from)."""

from __future__ import annotations

from conftest import small_script, write_script
from typer.testing import CliRunner

import zray.engines.storyboard as storyboard
from zray.cli import app
from zray.config import load_config
from zray.pipeline.run import RunRequest, preview, run_episode

VIDEO = {"width": 96, "height": 64, "fps": 24, "preset": "fast", "gop": 24}


def config(tmp_path, **audio):
    return load_config(
        None,
        output=str(tmp_path / "out"),
        profile="draft",
        quiet=True,
        executor="in-process",
        video=VIDEO,
        audio=audio,
    )


def test_explain_names_the_change_per_stale_node(tmp_path, monkeypatch):
    data = small_script()
    script = write_script(tmp_path / "scripts" / "proj", data)
    assert run_episode(RunRequest(script=script), config(tmp_path)).ok
    folder = tmp_path / "out" / "proj" / script.stem

    (folder / "S01E02-CA-Prueba_de_zray.mp4").unlink()
    prep = preview(RunRequest(script=script), config(tmp_path))
    assert prep.reasons == {"video:ca": "S01E02-CA-Prueba_de_zray.mp4 is missing"}

    data["scenes"][0]["script_es"] = "Una narración distinta."
    data["scenes"][2]["chapter_es"] = "Final"
    write_script(tmp_path / "scripts" / "proj", data)
    prep = preview(RunRequest(script=script), config(tmp_path, scene_gap=0.8))
    reasons = prep.reasons
    assert reasons["tts:es:0"] == "scenes.0.script_es changed"
    assert reasons["pad:es:0"] == "audio.scene_gap changed, input tts:es:0 changed"
    assert reasons["pad:ca:1"] == "audio.scene_gap changed"
    assert "pad:ca:2" not in reasons  # the last scene's pause is audio.tail
    assert reasons["subs:es"] == (
        "scenes.0.script_es changed, scenes.2.chapter_es changed, input pad:es:0 changed and 1 more"
    )
    assert reasons["video:es"].startswith("input pad:es:0 changed, input pad:es:1 changed")
    assert "tts:ca:0" not in reasons

    made, bumped = storyboard.ENGINE_VERSION, str(int(storyboard.ENGINE_VERSION) + 1)
    monkeypatch.setattr(storyboard, "ENGINE_VERSION", bumped)
    prep = preview(RunRequest(script=script), config(tmp_path, scene_gap=0.8))
    assert prep.reasons["image:1"] == f"engine storyboard {made} -> {bumped}"
    assert prep.reasons["segment:1"] == "input image:1 changed"

    # The command prints them, one line per stale node.
    result = CliRunner().invoke(
        app,
        ["run", str(script), "--output", str(tmp_path / "out"), "--profile", "draft", "--explain"],
    )
    assert result.exit_code == 0, result.output
    assert f"image:1: engine storyboard {made} -> {bumped}" in result.output
    assert "tts:es:0: scenes.0.script_es changed" in result.output
