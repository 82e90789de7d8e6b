"""`zray run` with Shorts on the in-process executor: vertical videos checked on their decoded frames
and samples, their captions against `words.json`, and what a rerun rebuilds."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
from pathlib import Path

import av
import numpy as np
import pytest
from caption_checks import highlight_changes
from conftest import FAST_VIDEO, small_script, write_script
from PIL import Image
from test_motion import write_clip

from zray.config import load_config
from zray.episode import open_episode
from zray.errors import RunError
from zray.media import subtitles
from zray.pipeline.prepare import check_caption_fonts
from zray.pipeline.run import RunRequest, preview, run_episode
from zray.pipeline.shorts import make_shorts
from zray.script import load_script

INTRO = Path(__file__).resolve().parent.parent / "inputs" / "assets" / "demo" / "intro.mp4"
FPS = 24
SIZE = (180, 320)
MAX_SECONDS = 25.0
LEAD = 0.3


# shorts.caption_box's default (left, top, right, bottom), as fractions of the frame.
CAPTION_BOX = (0.06, 0.58, 0.82, 0.76)


def config(tmp: Path, **extra):
    shorts = {"enabled": True, "width": SIZE[0], "height": SIZE[1], "max_seconds": MAX_SECONDS}
    shorts.update(extra.pop("shorts", {}))
    return load_config(
        None,
        output=str(tmp / "out"),
        profile="draft",
        quiet=True,
        executor="in-process",
        video=extra.pop("video", FAST_VIDEO),
        audio={"lead": LEAD, "tail": 2.0},
        shorts=shorts,
        **extra,
    )


def run(tmp: Path, script: Path, **extra):
    return run_episode(RunRequest(script=script), config(tmp, **extra))


def folder_of(tmp: Path, script: Path) -> Path:
    return tmp / "out" / script.parent.name / script.stem


def record(folder: Path) -> dict:
    return json.loads((folder / "run.json").read_text())


def shorts_of(folder: Path, lang: str) -> list[dict]:
    return record(folder)["nodes"][f"shorts:{lang}"]["result"]["shorts"]


def mtimes(folder: Path) -> dict[str, int]:
    return {
        str(p.relative_to(folder)): p.stat().st_mtime_ns
        for p in folder.rglob("*")
        if p.is_file() and p.name != "run.json" and "logs" not in p.parts
    }


def decoded(path: Path) -> tuple[list[np.ndarray], float]:
    """RGB frames, and the seconds of decoded audio."""
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24").astype(np.int16) for f in container.decode(video=0)]
    with av.open(str(path)) as container:
        seconds = sum(f.samples for f in container.decode(audio=0)) / 48_000
    return frames, seconds


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("shorts")
    script = write_script(tmp / "scripts" / "proj")
    report = run(tmp, script)
    assert report.ok, report.failed
    return tmp, script, report


def pads(folder: Path, lang: str) -> list[dict]:
    nodes = record(folder)["nodes"]
    return [nodes[f"pad:{lang}:{i}"]["result"] for i in range(3)]


def lead_frames(pad: dict) -> int:
    """The silence a Short adds before its first scene: up to `audio.lead`, less the scene's own."""
    return max(0, math.ceil(LEAD * FPS) - round(pad["speech_offset"] * FPS))


def test_each_short_is_vertical_bounded_and_in_sync(made):
    tmp, script, report = made
    folder = folder_of(tmp, script)
    images = [np.asarray(Image.open(folder / f"assets/common/img_{i}.png").convert("RGB")) for i in range(3)]
    for lang in ("es", "ca"):
        shorts = shorts_of(folder, lang)
        # Scenes 0 and 1 (chapters "Uno" and "Dos", or "Dos" alone where "Uno" was too short and
        # merged into it) make one Short, named after its first chapter; "Tres" another.
        ranges = record(folder)["nodes"][f"subs:{lang}"]["result"]["ranges"]
        first = next(r["title"] for r in ranges if 0 in r["scenes"])
        assert [s["scenes"] for s in shorts] == [[0, 1], [2]]
        assert [Path(s["path"]).name for s in shorts] == [
            f"S01E02-{lang.upper()}-01-{first}.mp4",
            f"S01E02-{lang.upper()}-02-Tres.mp4",
        ]
        scene_pads = pads(folder, lang)
        for short in shorts:
            frames, audio_seconds = decoded(folder / short["path"])
            assert (frames[0].shape[1], frames[0].shape[0]) == SIZE
            assert len(frames) == short["frames"] and len(frames) <= MAX_SECONDS * FPS
            assert abs(audio_seconds - len(frames) / FPS) <= 1 / FPS, (audio_seconds, len(frames))
            # Each scene's picture starts on its boundary frame (no crossfade at transition 0).
            boundary = lead_frames(scene_pads[short["scenes"][0]])
            for k, scene in enumerate(short["scenes"]):
                if k:
                    previous = short["scenes"][k - 1]
                    assert _closer(frames[boundary], images[scene], images[previous])
                    assert _closer(frames[boundary - 1], images[previous], images[scene])
                boundary += scene_pads[scene]["frames"]
            assert boundary <= len(frames)  # and any tail the last scene's own pause lacked
        assert report.outputs[shorts[0]["path"]]["duration"] == shorts[0]["duration"]


def test_each_short_s_audio_is_tagged_with_its_language(made):
    tmp, script, _ = made
    folder = folder_of(tmp, script)
    for lang, tag in (("es", "spa"), ("ca", "cat")):
        for short in shorts_of(folder, lang):
            with av.open(str(folder / short["path"])) as container:
                assert container.streams.audio[0].metadata.get("language") == tag


def _closer(frame: np.ndarray, this: np.ndarray, other: np.ndarray) -> bool:
    """The frame's picture (above the captions) is nearer in colour to `this` image than to `other`."""
    shown = frame[: int(frame.shape[0] * 0.55)].reshape(-1, 3).mean(axis=0)

    def distance(image: np.ndarray) -> float:
        return float(np.abs(shown - image[: int(image.shape[0] * 0.8)].reshape(-1, 3).mean(axis=0)).sum())

    return distance(this) < distance(other)


def test_captions_change_on_the_frames_where_the_words_start(made):
    tmp, script, _ = made
    folder = folder_of(tmp, script)
    for lang in ("es", "ca"):
        words = json.loads((folder / f"subtitles_{lang}.words.json").read_text(encoding="utf-8"))
        scene_pads = pads(folder, lang)
        starts = [0]
        for pad in scene_pads:
            starts.append(starts[-1] + pad["frames"])
        for short in shorts_of(folder, lang):
            frames, _ = decoded(folder / short["path"])
            # Where words.json says each word starts, moved to where its scene plays in the Short.
            expected, at, last_end = [], lead_frames(scene_pads[short["scenes"][0]]), 0.0
            for scene in short["scenes"]:
                begin, end = starts[scene] / FPS, starts[scene + 1] / FPS
                spoken = [w for w in words if begin - 1e-3 <= w["start"] < end - 1e-3]  # rounded to 0.1 ms
                expected += [math.floor((w["start"] - begin) * FPS + at + 0.5) for w in spoken]
                last_end = spoken[-1]["end"] - begin + at / FPS
                at += scene_pads[scene]["frames"]
            # After the last word, the tail: the picture holds and the music fades.
            assert short["duration"] - last_end >= 2.0 - 1 / FPS
            changes = highlight_changes(frames, box=CAPTION_BOX)
            assert len(expected) > 20
            missing = [e for e in expected if not any(abs(e - c) <= 1 for c in changes)]
            assert not missing, (lang, short["path"], missing, changes)
            # Besides the words, the highlight only goes when the captions end.
            extra = [c for c in changes if not any(abs(e - c) <= 1 for e in expected)]
            assert len(extra) <= len(short["scenes"]), extra


def test_each_short_has_its_subtitles_beside_it(made):
    tmp, script, _ = made
    folder = folder_of(tmp, script)
    data = small_script()
    for lang in ("es", "ca"):
        for short in shorts_of(folder, lang):
            srt = folder / short["srt"]
            assert srt.with_suffix(".mp4").name == Path(short["path"]).name
            cues = subtitles.parse_srt(srt.read_text(encoding="utf-8"))
            said = " ".join(data["scenes"][i][f"script_{lang}"] for i in short["scenes"])
            assert " ".join(c.text for c in cues).split() == said.split()
            assert cues[-1].end <= short["duration"] + 1e-3
    episode = open_episode(str(folder))
    assert [s.path for s in episode.shorts("es")] == [s["path"] for s in shorts_of(folder, "es")]


def test_a_rerun_rebuilds_nothing(made):
    tmp, script, _ = made
    folder = folder_of(tmp, script)
    before = mtimes(folder)
    report = run(tmp, script)
    assert report.ok and report.built == 0
    assert mtimes(folder) == before


def copy_episode(made, tmp_path: Path) -> tuple[Path, Path]:
    """The finished episode, copied with its script, for a test that changes it."""
    tmp = made[0]
    shutil.copytree(tmp / "out", tmp_path / "out")
    copy = write_script(tmp_path / "scripts" / "proj")
    folder = folder_of(tmp_path, copy)
    data = record(folder)
    data["script"] = str(copy.resolve())  # the copy's own script, not the one it was copied from
    (folder / "run.json").write_text(json.dumps(data, ensure_ascii=False))
    return copy, folder


def test_a_one_scene_edit_renders_only_the_shorts_that_show_it(made, tmp_path):
    script, folder = copy_episode(made, tmp_path)
    data = small_script()
    data["scenes"][2]["script_es"] += " Y nadie lo olvidó."
    script.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    before = mtimes(folder)
    report = run(tmp_path, script)
    assert report.ok, report.failed
    nodes = record(folder)["nodes"]
    assert nodes["shorts:es"]["result"]["rendered"] == 1 and nodes["shorts:es"]["result"]["reused"] == 1
    first, second = shorts_of(folder, "es")
    after = mtimes(folder)
    assert after[first["path"]] == before[first["path"]]
    assert after[second["path"]] != before[second["path"]]
    assert all(after[s["path"]] == before[s["path"]] for s in shorts_of(folder, "ca"))
    assert "shorts:ca" not in record(folder)["last_run"]["steps"] or (
        record(folder)["last_run"]["steps"]["shorts:ca"]["state"] == "cached"
    )
    frames, _ = decoded(folder / second["path"])
    assert len(frames) == second["frames"]


def test_a_deleted_short_is_made_again_alone(made, tmp_path):
    script, folder = copy_episode(made, tmp_path)
    first, second = shorts_of(folder, "es")
    (folder / second["path"]).unlink()
    before = mtimes(folder)
    report = run(tmp_path, script)
    assert report.ok and report.built == 1
    result = record(folder)["nodes"]["shorts:es"]["result"]
    assert (result["rendered"], result["reused"]) == (1, 1)
    assert mtimes(folder)[first["path"]] == before[first["path"]]
    assert (folder / second["path"]).exists()


def test_a_new_chapter_title_renames_its_short_without_rendering_it(made, tmp_path):
    script, folder = copy_episode(made, tmp_path)
    _, second = shorts_of(folder, "es")
    before = (folder / second["path"]).read_bytes()
    data = small_script()
    data["scenes"][2]["chapter_es"] = "El bosque"
    script.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    assert run(tmp_path, script).ok
    renamed = shorts_of(folder, "es")[1]
    assert renamed["path"] == "shorts/es/S01E02-ES-02-El_bosque.mp4" and renamed["title"] == "El bosque"
    assert (folder / renamed["path"]).read_bytes() == before
    assert not (folder / second["path"]).exists() and not (folder / second["srt"]).exists()
    result = record(folder)["nodes"]["shorts:es"]["result"]
    assert (result["rendered"], result["reused"]) == (0, 2)
    assert sorted(p.name for p in (folder / "shorts" / "es").iterdir()) == [
        "S01E02-ES-01-Uno.mp4",
        "S01E02-ES-01-Uno.srt",
        "S01E02-ES-02-El_bosque.mp4",
        "S01E02-ES-02-El_bosque.srt",
    ]


def test_a_damaged_short_is_rendered_again(made, tmp_path):
    script, folder = copy_episode(made, tmp_path)
    first, _ = shorts_of(folder, "es")
    path = folder / first["path"]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    report = run(tmp_path, script)
    assert report.ok and report.built == 1
    result = record(folder)["nodes"]["shorts:es"]["result"]
    assert (result["rendered"], result["reused"]) == (1, 1)
    frames, _ = decoded(path)
    assert len(frames) == first["frames"]


def test_clean_removes_the_shorts_and_their_records(made, tmp_path):
    script, folder = copy_episode(made, tmp_path)
    report = run_episode(RunRequest(script=script, clean=True), config(tmp_path, shorts={"enabled": False}))
    assert report.ok
    assert not list((folder / "shorts").rglob("*.mp4"))
    assert not (folder / "assets" / "tmp" / "shorts" / "es" / "index.json").exists()


def test_a_language_the_caption_font_cannot_write_is_refused_before_any_work(tmp_path):
    data = small_script()
    data["scenes"][0]["script_es"] = "東京の夜は静かです。"
    script = write_script(tmp_path / "scripts" / "proj", data)
    with pytest.raises(
        RunError, match=r"captions\.font Roboto-Black\.ttf has no glyph for 東 .* in the es narration"
    ):
        run(tmp_path, script)
    assert not (tmp_path / "out" / "proj").exists() or not list((tmp_path / "out" / "proj").rglob("*.wav"))
    # Without Shorts and without burned captions nothing is drawn, so nothing is refused.
    loaded, _ = load_script(script)
    check_caption_fonts(loaded, ["es"], config(tmp_path, shorts={"enabled": False}))
    with pytest.raises(RunError, match=r"captions\.font"):
        check_caption_fonts(
            loaded, ["es"], config(tmp_path, shorts={"enabled": False}, captions={"burn": True})
        )


def test_a_shorts_record_naming_a_file_outside_its_folder_is_not_trusted(made, tmp_path):
    script, folder = copy_episode(made, tmp_path)
    data = record(folder)
    data["nodes"]["shorts:es"]["result"]["shorts"][0]["path"] = "S01E02-ES-Título_de_prueba.mp4"
    (folder / "run.json").write_text(json.dumps(data, ensure_ascii=False))
    before = mtimes(folder)
    report = run(tmp_path, script)
    assert report.ok and report.built == 1  # the step runs again and lists its own files
    result = record(folder)["nodes"]["shorts:es"]["result"]
    assert (result["rendered"], result["reused"]) == (0, 2)
    assert all(s["path"].startswith("shorts/es/S01E02-ES-0") for s in result["shorts"])
    assert all(mtimes(folder)[s["path"]] == before[s["path"]] for s in result["shorts"])
    assert (folder / "S01E02-ES-Título_de_prueba.mp4").exists()


def test_crossfades_between_a_short_s_scenes_end_on_the_boundary_frame(made, tmp_path):
    """The step with `video.transition` seconds of crossfade (the plan passes the long video's)."""
    script, folder = copy_episode(made, tmp_path)
    prep = preview(RunRequest(script=script), config(tmp_path))
    node = prep.plan.nodes["shorts:es"]
    inputs = node.resolve({dep: prep.record.result(prep.plan.nodes[dep]) for dep in node.deps})
    result = make_shorts(prep.store, dataclasses.replace(node.request, transition=0.5), inputs)
    # The Short of two scenes has a crossfade now: rendered again; the one-scene Short is the same.
    assert (result.rendered, result.reused) == (1, 1)
    first = result.shorts[0]
    frames, _ = decoded(folder / first.path)
    images = [np.asarray(Image.open(folder / f"assets/common/img_{i}.png").convert("RGB")) for i in (0, 1)]
    scene_pads = pads(folder, "es")
    boundary = lead_frames(scene_pads[0]) + scene_pads[0]["frames"]
    fade = 12  # 0.5 s, inside the scene's pause of 0.5 s

    def towards_second(index: int) -> float:
        shown = frames[index][: int(SIZE[1] * 0.55)].reshape(-1, 3).mean(axis=0)
        near = [np.abs(shown - i[: int(i.shape[0] * 0.8)].reshape(-1, 3).mean(axis=0)).sum() for i in images]
        return float(near[0] - near[1])

    assert _closer(frames[boundary - fade - 1], images[0], images[1])  # before it: the first picture
    assert _closer(frames[boundary], images[1], images[0])  # on the boundary: the second, whole
    steps = [towards_second(i) for i in range(boundary - fade, boundary + 1)]
    assert steps == sorted(steps) and steps[0] < steps[-1]  # a fade, frame by frame
    with av.open(str(folder / first.path)) as container:
        assert container.streams.video[0].frames == first.frames


def test_a_shorts_intro_plays_before_each_short(tmp_path):
    data = small_script()
    data["scenes"] = data["scenes"][2:]
    script = write_script(tmp_path / "scripts" / "proj", data)
    report = run(tmp_path, script, shorts={"intro": str(INTRO)})
    assert report.ok, report.failed
    folder = folder_of(tmp_path, script)
    nodes = record(folder)["nodes"]
    intro_frames = nodes["intro:shorts"]["result"]["frames"]
    [short] = shorts_of(folder, "es")
    frames, audio_seconds = decoded(folder / short["path"])
    pad = nodes["pad:es:2"]["result"]
    assert len(frames) == short["frames"] == intro_frames + lead_frames(pad) + pad["frames"]
    assert abs(audio_seconds - len(frames) / FPS) <= 1 / FPS
    assert (frames[0].shape[1], frames[0].shape[0]) == SIZE
    assert "intro" not in nodes  # the long video keeps its own (none here)


def test_a_studio_clip_plays_in_its_short_cover_fitted(tmp_path):
    folder = tmp_path / "scripts" / "proj"
    folder.mkdir(parents=True)
    levels = write_clip(folder / "clip.mp4", frames=45, tone=0.5)  # 1.5 s, its grey counts its frames
    data = small_script()
    data["scenes"][2].update(clip_file="clip.mp4", clip_audio=0.8)
    script = write_script(folder, data)
    report = run(tmp_path, script, video={**FAST_VIDEO, "transition": 0.5})
    assert report.ok, report.failed
    episode = folder_of(tmp_path, script)
    scene_pads = pads(episode, "es")
    [clip_short] = [s for s in shorts_of(episode, "es") if 2 in s["scenes"]]
    frames, audio_seconds = decoded(episode / clip_short["path"])
    # The first scene's picture covers the Short's lead too; a later one starts where its narration does.
    first = clip_short["scenes"][0]
    start = (
        0
        if first == 2
        else lead_frames(scene_pads[first]) + sum(scene_pads[i]["frames"] for i in range(first, 2))
    )
    assert abs(np.median(frames[start][: SIZE[1] // 2]) - levels[0]) <= 4  # the clip's first frame, whole
    # 30 frames later (1.25 s), the clip's frame on screen then: it plays on the Short's frame grid.
    assert abs(np.median(frames[start + 30][: SIZE[1] // 2]) - levels[30 * 30 // FPS]) <= 4
    assert abs(audio_seconds - len(frames) / FPS) <= 1 / FPS
