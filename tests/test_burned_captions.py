"""`captions.burn = true` on the long video: still scenes encoded with their captions, which change
on the frames where `words.json` says the words start."""

from __future__ import annotations

import json
import math
from pathlib import Path

import av
import numpy as np
import pytest
from caption_checks import highlight_changes
from conftest import small_script, write_script

from zray.config import load_config
from zray.pipeline.run import RunRequest, run_episode

FPS = 24
VIDEO = {"width": 640, "height": 352, "fps": FPS, "preset": "fast", "gop": 24}
# Where the long video's captions are drawn (left, top, right, bottom), as fractions of the frame.
LOWER_THIRD = (0.08, 0.72, 0.92, 0.94)


def run(tmp: Path, script: Path, *, video=None, **captions):
    cfg = load_config(
        None,
        output=str(tmp / "out"),
        profile="draft",
        quiet=True,
        executor="in-process",
        video={**VIDEO, **(video or {})},
        captions=captions,
    )
    return run_episode(RunRequest(script=script, languages=["es"]), cfg)


@pytest.mark.parametrize(
    "video",
    [{}, {"motion": "gentle", "transition": 0.5}],
    ids=["stills", "gentle-motion-and-crossfades"],
)
def test_burned_captions_on_the_long_video_follow_the_word_timings(tmp_path, video):
    script = write_script(tmp_path / "scripts" / "proj", small_script())
    report = run(tmp_path, script, burn=True, video=video)
    assert report.ok, report.failed
    folder = tmp_path / "out" / "proj" / script.stem
    record = json.loads((folder / "run.json").read_text())
    nodes = record["nodes"]
    assert {f"captioned:es:{i}" for i in range(3)} <= set(nodes)
    # No still GOP repeated, no moving segment shared, no tail: each scene is its language's own.
    assert not any(node.startswith(("segment:", "motion:", "tail:")) for node in nodes)
    with av.open(str(folder / report.video_names["es"])) as container:
        frames = [f.to_ndarray(format="rgb24").astype(np.int16) for f in container.decode(video=0)]
    pads = [nodes[f"pad:es:{i}"]["result"]["frames"] for i in range(3)]
    assert len(frames) == sum(pads)
    above = int(frames[0].shape[0] * 0.7)  # the picture above the captions
    moved = float(np.abs(frames[10][:above] - frames[40][:above]).mean())
    assert moved > 0.5 if video else moved < 0.5, moved
    words = json.loads((folder / "subtitles_es.words.json").read_text(encoding="utf-8"))
    expected = [math.floor(w["start"] * FPS + 0.5) for w in words]
    changes = highlight_changes(frames, box=LOWER_THIRD)
    missing = [e for e in expected if not any(abs(e - c) <= 1 for c in changes)]
    assert len(expected) > 60 and not missing, (missing, changes)
    extra = [c for c in changes if not any(abs(e - c) <= 1 for e in expected)]
    assert len(extra) <= 3, extra  # the captions leave at the end of each scene's words

    # Off again: the shared still segments come back, and the captioned ones are not run.
    report = run(tmp_path, script, burn=None, video=video)
    after = json.loads((folder / "run.json").read_text())
    assert report.ok
    assert not any(step.startswith("captioned:") for step in after["last_run"]["steps"])
    shared = "motion" if video else "segment"
    assert {f"{shared}:{i}" for i in range(3)} <= set(after["nodes"])
