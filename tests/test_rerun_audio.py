"""A rerun after a one-sentence edit gives the audio a fresh run of the edited script gives, sample
for sample, from cached chunks and measures, and the MP4 still meets `audio.peak_dbfs`."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import FAST_VIDEO, small_script, write_script

from zray.config import load_config
from zray.media import mastering
from zray.media.video.probing import audio_levels
from zray.pipeline.run import RunRequest, run_episode

# 150 AAC frames (3.2 s) a chunk, so the short test episode makes several and an edit in its middle
# leaves the first ones as they were.
CHUNK_FRAMES = 150
PEAK_DBFS = -1.0  # the config's default audio.peak_dbfs


@pytest.fixture(autouse=True)
def short_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mastering, "CHUNK_FRAMES", CHUNK_FRAMES)


def spanish_only(extra: str = "") -> dict:
    """The test script's three scenes twice over, in Spanish only: long enough (about a minute) that
    one more sentence keeps the loudness gain (a multiple of 0.1 dB), and with it every chunk's key."""
    data = small_script()
    scenes = data["scenes"] + [dict(scene) for scene in data["scenes"]]
    for index, scene in enumerate(scenes):
        scene.pop("script_ca"), scene.pop("chapter_ca")
        scene["scene_id"] = index
    data["scenes"] = scenes
    del data["seo"]["ca"]
    if extra:
        scenes[3]["script_es"] += " " + extra
    return data


def run(root: Path, script: Path):
    config = load_config(
        None,
        output=str(root / "out"),
        profile="draft",
        quiet=True,
        video=FAST_VIDEO,
        executor="in-process",
    )
    report = run_episode(RunRequest(script=script), config)
    assert report.ok, report.failed
    folder = root / "out" / script.parent.name / script.stem
    return folder, json.loads((folder / "run.json").read_text())


def decoded_audio(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.concatenate([frame.to_ndarray() for frame in container.decode(audio=0)], axis=1)


def test_a_rerun_after_a_one_sentence_edit_has_the_audio_of_a_fresh_run(tmp_path: Path) -> None:
    script = write_script(tmp_path / "edited" / "scripts" / "proj", spanish_only())
    folder, first = run(tmp_path / "edited", script)
    chunks = first["nodes"]["video:es"]["result"]["audio_chunks_encoded"]
    assert chunks >= 4

    script.write_text(
        json.dumps(spanish_only("Y luego, por un momento, todo quedó en silencio."), ensure_ascii=False),
        encoding="utf-8",
    )
    _, rerun = run(tmp_path / "edited", script)
    edited = rerun["nodes"]["video:es"]
    assert rerun["last_run"]["steps"]["video:es"]["state"] == "built"
    # The edit kept the gain, so the chunks before it came from the cache; those after it were not.
    assert edited["result"]["gain_db"] == first["nodes"]["video:es"]["result"]["gain_db"]
    assert edited["result"]["audio_chunks_reused"] >= 1 and edited["result"]["audio_chunks_encoded"] >= 1

    fresh_script = write_script(tmp_path / "fresh" / "scripts" / "proj", json.loads(script.read_text()))
    fresh_folder, fresh = run(tmp_path / "fresh", fresh_script)
    clean = fresh["nodes"]["video:es"]
    assert clean["result"]["audio_chunks_reused"] == 0

    video = folder / edited["outputs"][0]
    fresh_video = fresh_folder / clean["outputs"][0]
    ours, theirs = decoded_audio(video), decoded_audio(fresh_video)
    assert ours.shape == theirs.shape and np.array_equal(ours, theirs)
    for key in ("gain_db", "true_peak_dbtp"):
        assert edited["result"][key] == clean["result"][key]
    assert edited["result"]["true_peak_dbtp"] <= PEAK_DBFS
    assert audio_levels(video).true_peak_dbtp <= PEAK_DBFS  # as ffmpeg's ebur128 measures it

    # Every measure the rerun read or wrote is a generated file of the record, so --clean removes it.
    cache_files = set(edited["result"]["cache_files"])
    on_disk = {str(p.relative_to(folder)) for p in (folder / "assets" / "tmp" / "audio").rglob("*.bin")}
    assert on_disk == cache_files
    kinds = {Path(name).name.split("-")[0] for name in cache_files}
    assert {"aac", "gain", "plan", "check", "loud"} <= kinds
