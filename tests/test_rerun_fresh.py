"""A rerun equals a fresh build: edits made one at a time, each followed by `zray run` in the same
folder, end where a fresh run of the final script ends in an empty folder.

Draft engines, the in-process executor, a tiny video: the same decoded frames and audio samples in
every MP4 (the Shorts too), the same thumbnail pixels, byte-identical subtitles, word timings and
chapters, the same deliverable files, the same node ids and keys.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import small_script, write_script
from PIL import Image

from zray.config import load_config
from zray.pipeline.run import RunRequest, run_episode

VIDEO = {"width": 96, "height": 64, "fps": 24, "preset": "fast", "gop": 24}
SHORTS = {"enabled": True, "width": 180, "height": 320, "max_seconds": 20.0, "min_seconds": 0.0}

pytestmark = pytest.mark.slow


def run(out: Path, script: Path, settings: dict) -> None:
    cfg = load_config(
        None,
        output=str(out),
        profile="draft",
        quiet=True,
        executor="in-process",
        video={**VIDEO, **settings.get("video", {})},
        audio=settings.get("audio", {}),
        shorts=SHORTS,
    )
    report = run_episode(RunRequest(script=script, force=True), cfg)
    assert report.ok, report.failed


def write_review_seed(folder: Path, index: int, scene_id, seed: int) -> None:
    record = json.loads((folder / "run.json").read_text())
    entry = {"scene_id": str(scene_id), "seed": seed, "by": "tester", "at": "2026-12-01T00:00:00+00:00"}
    review = {"identity": record["identity"], "scenes": {str(index): entry}}
    (folder / "review.json").write_text(json.dumps(review))


def decoded(path: Path) -> tuple[list[np.ndarray], np.ndarray]:
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    with av.open(str(path)) as container:
        samples = [f.to_ndarray() for f in container.decode(audio=0)]
    return frames, np.concatenate(samples, axis=1) if samples else np.zeros((0, 0))


def deliverables(folder: Path) -> set[str]:
    """The episode's files, less zray's workings (assets/, logs) and its records of the runs."""
    return {
        str(p.relative_to(folder))
        for p in folder.rglob("*")
        if p.is_file()
        and p.relative_to(folder).parts[0] not in ("assets", "logs")
        and p.name not in ("run.json", "report.html")
    }


def planned_keys(folder: Path) -> dict[str, str]:
    record = json.loads((folder / "run.json").read_text())
    return {node_id: record["nodes"][node_id]["key"] for node_id in record["last_run"]["steps"]}


def test_edits_one_at_a_time_end_where_a_fresh_run_does(tmp_path):
    scripts = tmp_path / "scripts" / "proj"
    data = small_script()
    settings: dict = {}
    script = write_script(scripts, data)
    edited = tmp_path / "edited"
    folder = edited / "proj" / script.stem
    run(edited, script, settings)

    def edit(change) -> None:
        change()
        write_script(scripts, data)
        run(edited, script, settings)

    new_scene = copy.deepcopy(data["scenes"][1])
    new_scene.update(
        scene_id=7, image_prompt="A yellow field", script_es="Una escena nueva.", script_ca="Una escena nova."
    )
    edit(lambda: data["scenes"].insert(1, new_scene))
    edit(lambda: data["scenes"][0].update(script_es="Otra narración para empezar."))
    edit(lambda: data["scenes"].__setitem__(slice(2, 4), [data["scenes"][3], data["scenes"][2]]))
    edit(lambda: data["scenes"][1].update(chapter_es="Capítulo nuevo"))
    edit(lambda: data["scenes"][2].update(image_prompt="A purple mountain"))
    edit(lambda: data.update(global_music_prompt="bright plucked strings"))
    edit(lambda: settings.update(audio={"scene_gap": 0.8}))
    edit(lambda: settings.update(video={"motion": "gentle"}))
    edit(lambda: data["scenes"].pop(0))
    edit(lambda: write_review_seed(folder, 1, data["scenes"][1]["scene_id"], 4242))

    fresh = tmp_path / "fresh"
    fresh_folder = fresh / "proj" / script.stem
    fresh_folder.mkdir(parents=True)
    (fresh_folder / "review.json").write_bytes((folder / "review.json").read_bytes())
    run(fresh, script, settings)

    assert planned_keys(folder) == planned_keys(fresh_folder)
    files = deliverables(folder)
    assert files == deliverables(fresh_folder)
    videos = sorted(f for f in files if f.endswith(".mp4"))
    assert len([v for v in videos if v.startswith("shorts/")]) >= 2 and len(videos) >= 4
    for name in videos:
        (frames, sound), (fresh_frames, fresh_sound) = decoded(folder / name), decoded(fresh_folder / name)
        assert len(frames) == len(fresh_frames), name
        differing = [
            i for i, (a, b) in enumerate(zip(frames, fresh_frames, strict=True)) if not np.array_equal(a, b)
        ]
        assert not differing, f"{name}: {len(differing)} frames differ, first {differing[0]}"
        assert np.array_equal(sound, fresh_sound), name
    for name in sorted(f for f in files if f.endswith(".png")):
        assert np.array_equal(
            np.asarray(Image.open(folder / name)), np.asarray(Image.open(fresh_folder / name))
        ), name
    for name in sorted(
        f for f in files if f.endswith((".srt", ".vtt", ".json", ".txt")) and f != "review.json"
    ):
        assert (folder / name).read_bytes() == (fresh_folder / name).read_bytes(), name
