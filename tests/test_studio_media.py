"""The studio's own pictures: used instead of generated ones, keyed by content, checked before work."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import FAST_VIDEO, small_script, write_script
from PIL import Image

from zray.config import load_config
from zray.errors import RunError
from zray.pipeline.run import RunRequest, run_episode


def config(out: Path):
    return load_config(
        None, output=str(out), profile="draft", quiet=True, video=FAST_VIDEO, executor="in-process"
    )


def frame_at(path: Path, index: int) -> np.ndarray:
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i == index:
                return frame.to_ndarray(format="rgb24").astype(np.int16)
    raise IndexError(index)


def test_a_scene_and_a_thumbnail_from_the_studios_own_files(tmp_path, monkeypatch):
    folder = tmp_path / "scripts" / "proj"
    folder.mkdir(parents=True)
    Image.new("RGB", (640, 360), (250, 20, 20)).save(folder / "red.png")
    Image.new("RGB", (1280, 720), (20, 20, 250)).save(folder / "blue.jpg")
    data = small_script(episode=1)
    for scene in data["scenes"]:
        scene.pop("script_ca"), scene.pop("chapter_ca")
    data["seo"].pop("ca")
    data["scenes"][1]["image_file"] = "red.png"
    data["seo"]["es"]["thumbnail_file"] = "blue.jpg"
    script = write_script(folder, data, name="SAGA_01_Episode_01.json")
    out = tmp_path / "out"
    report = run_episode(RunRequest(script=script), config(out))
    assert report.ok, report.failed
    episode = out / "proj" / "SAGA_01_Episode_01"
    record = json.loads((episode / "run.json").read_text())
    first = record["nodes"]["pad:es:0"]["result"]["frames"]
    picture = frame_at(episode / "S01E01-ES-Título_de_prueba.mp4", first + 5)
    assert picture.mean(axis=(0, 1)).tolist()[0] > 200 and picture.mean(axis=(0, 1)).tolist()[2] < 60
    with Image.open(episode / "assets" / "thumbnails" / "thumbnail_raw_es.png") as base:
        assert np.asarray(base.convert("RGB")).mean(axis=(0, 1))[2] > 200

    # An unchanged rerun does not read the studio's files again.
    import zray.pipeline.studio as studio

    def no_reading(path):
        raise AssertionError(f"{path} was read again")

    monkeypatch.setattr(studio, "file_digest", no_reading)
    assert run_episode(RunRequest(script=script), config(out)).built == 0
    monkeypatch.undo()

    # A replaced file rebuilds that scene's picture, its segment and the video, nothing else.
    Image.new("RGB", (640, 360), (20, 250, 20)).save(folder / "red.png")
    report = run_episode(RunRequest(script=script), config(out))
    assert report.ok
    rebuilt = {
        k
        for k, v in json.loads((episode / "run.json").read_text())["last_run"]["steps"].items()
        if v["state"] == "built"
    }
    assert rebuilt == {"image:1", "segment:1", "video:es"}
    assert frame_at(episode / "S01E01-ES-Título_de_prueba.mp4", first + 5).mean(axis=(0, 1))[1] > 200


def test_a_studio_file_that_is_missing_or_broken_is_one_line_naming_the_scene(tmp_path):
    folder = tmp_path / "scripts" / "proj"
    folder.mkdir(parents=True)
    (folder / "broken.png").write_bytes(b"not a picture")
    data = small_script(episode=1)
    data["scenes"][2]["image_file"] = "broken.png"
    script = write_script(folder, data, name="SAGA_01_Episode_01.json")
    with pytest.raises(RunError, match=r"scenes\.2\.image_file: broken\.png is not a picture"):
        run_episode(RunRequest(script=script), config(tmp_path / "out"))
    assert not (tmp_path / "out").exists()
