"""The draft video engine (parallax clips), generated clips on the frame grid, and a draft `zray run`
with scenes of motion "generate" through the in-process executor: what a viewer sees (the clip
starts on the picture, moves, goes on past its end without a freeze or a jump), and that a rerun
builds nothing and a fresh build gives the same bytes."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import FAST_VIDEO, small_script, write_script
from PIL import Image

from zray.config import load_config
from zray.engines.base import EngineError, check_engine_class
from zray.engines.parallax import ParallaxVideoEngine
from zray.engines.registry import PROFILES, engine_class
from zray.engines.storyboard import StoryboardImageEngine
from zray.media import generated
from zray.media.frames import ClipFrames
from zray.media.video.clip import write_clip
from zray.pipeline.run import RunRequest, run_episode
from zray.script import check_data

PROMPT = "A red desert at dawn"


def card(width: int = 320, height: int = 176, seed: int = 7, label: str = "Scene 1") -> Image.Image:
    return StoryboardImageEngine().generate(PROMPT, width=width, height=height, seed=seed, label=label)


def mean_step(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def test_parallax_is_a_video_engine_of_the_draft_profile():
    assert check_engine_class(ParallaxVideoEngine, "video") == []
    assert engine_class("parallax", "video") is ParallaxVideoEngine
    assert PROFILES["draft"]["video"] == "parallax" and PROFILES["production"]["video"] == "wan"
    with pytest.raises(EngineError, match="makes video, not image"):
        engine_class("parallax", "image")


def test_clip_frames_are_4n_plus_1_and_sizes_follow_the_engine():
    assert generated.clip_frames(5) == 121
    assert generated.clip_frames(1) == 25
    assert all(generated.clip_frames(s) % 4 == 1 for s in (0.1, 0.5, 2.2, 7.9))
    assert generated.clip_size(1920, 1072, max_pixels=1280 * 704, multiple=32) == (1280, 704)
    assert generated.clip_size(1080, 1920, max_pixels=1280 * 704, multiple=32) == (704, 1280)
    assert generated.clip_size(320, 176, max_pixels=None) == (320, 176)


def test_a_card_moves_in_layers_from_the_picture_itself():
    picture = card()
    frames = list(
        ParallaxVideoEngine().generate(
            picture, PROMPT, width=320, height=176, frames=25, seed=3, layers=(PROMPT, 7, "Scene 1")
        )
    )
    assert len(frames) == 25 and frames[0].shape == (176, 320, 3) and frames[0].dtype == np.uint8
    assert np.array_equal(frames[0], np.asarray(picture))  # the clip starts on the picture, exactly
    steps = [mean_step(a, b) for a, b in itertools.pairwise(frames)]
    assert steps[-1] > 0.0 and max(steps) < 8.0  # it moves, and never jumps
    # Near layers travel further than far ones: the sky band changes least, the ground most.
    sky, ground = slice(0, 40), slice(100, 130)
    assert mean_step(frames[0][sky], frames[-1][sky]) < mean_step(frames[0][ground], frames[-1][ground])
    # The label tab and the border are fixed to the frame.
    assert np.array_equal(frames[0][:4], frames[-1][:4])


def test_the_same_request_gives_the_same_frames_and_the_seed_changes_them():
    engine = ParallaxVideoEngine()

    def clip(seed: int) -> list[np.ndarray]:
        return list(
            engine.generate(
                card(), PROMPT, width=320, height=176, frames=9, seed=seed, layers=(PROMPT, 7, "Scene 1")
            )
        )

    one, two = clip(3), clip(3)
    assert all(np.array_equal(a, b) for a, b in zip(one, two, strict=True))
    # Every other seed is another clip (a re-roll in review never gives the same one back).
    assert all(mean_step(clip(s)[-1], one[-1]) > 0 for s in (0, 1, 2, 4, 5, 6, 7, 8))


def test_a_studio_picture_or_a_card_that_does_not_match_gets_the_gentle_move():
    engine = ParallaxVideoEngine()
    studio = Image.fromarray((np.indices((200, 360)).sum(axis=0) % 256).astype(np.uint8)).convert("RGB")
    for picture, layers in ((studio, None), (card(seed=8), (PROMPT, 7, "Scene 1"))):
        frames = list(engine.generate(picture, "x", width=320, height=176, frames=13, seed=1, layers=layers))
        assert len(frames) == 13
        steps = [mean_step(a, b) for a, b in itertools.pairwise(frames)]
        assert min(steps) > 0 and max(steps) < 6.0  # moving from the first frame, smoothly


@pytest.mark.parametrize("bad", [4, 6, 0, True])
def test_a_clip_length_that_is_not_4n_plus_1_is_refused(bad):
    with pytest.raises(EngineError, match="4n \\+ 1"):
        ParallaxVideoEngine().generate(card(), PROMPT, width=320, height=176, frames=bad, seed=1)


def test_a_generated_clip_goes_on_past_its_end_without_a_freeze_or_a_jump(tmp_path):
    picture = card()
    frames = ParallaxVideoEngine().generate(
        picture, PROMPT, width=320, height=176, frames=25, seed=3, layers=(PROMPT, 7, "Scene 1")
    )
    path = tmp_path / "clip.mp4"
    assert write_clip(frames, path, fps=24) == 25
    move = generated.continuation_move("some key")
    source = ClipFrames(path, width=320, height=176, fps=24, fit="cover", fill="move", move=move)
    shown = list(source.frames(0, 72))  # the clip's 25 frames, then 47 more
    assert len(shown) == 72
    steps = [mean_step(a, b) for a, b in itertools.pairwise(shown)]
    assert max(steps) < 6.0  # no jump, at the clip's end either
    assert min(steps[20:]) > 0.0  # no frozen frame past the clip's end
    # Asked for from past its end, the same frames come (a tail starts there).
    later = list(source.frames(40, 5))
    assert all(np.array_equal(a, b) for a, b in zip(later, shown[40:45], strict=True))
    # Retimed to 30 fps, the clip lasts as long and the scene still goes on.
    at30 = list(
        ClipFrames(path, width=320, height=176, fps=30, fit="cover", fill="move", move=move).frames(0, 60)
    )
    assert len(at30) == 60 and max(mean_step(a, b) for a, b in itertools.pairwise(at30)) < 6.0


def test_the_script_takes_motion_generate_and_a_motion_prompt():
    data = small_script()
    data["scenes"][0].update(motion="generate", motion_prompt="the dunes drift in the wind")
    checked = check_data(data)
    assert checked.errors == [] and checked.script is not None
    assert checked.script.scenes[0].motion == "generate"
    data["scenes"][1].update(clip_file="clip.mp4", motion="generate")
    assert [p.path for p in check_data(data).errors] == ["scenes.1.motion"]


# --- a draft run --------------------------------------------------------------------------------


def run_config(out: Path, **video):
    return load_config(
        None,
        output=str(out),
        profile="draft",
        quiet=True,
        executor="in-process",
        video={**FAST_VIDEO, "transition": 0.5, **video},
        models={"video_seconds": 1.0},
    )


def decoded(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


@pytest.fixture(scope="module")
def draft(tmp_path_factory):
    """Three scenes: a storyboard card set in motion (parallax), the studio's own picture set in
    motion (the gentle move), a still scene; 1 s clips, so every scene goes on past its clip."""
    tmp = tmp_path_factory.mktemp("parallax")
    folder = tmp / "scripts" / "proj"
    folder.mkdir(parents=True)
    studio = np.zeros((352, 640, 3), np.uint8)
    studio[:, :320], studio[:, 320:] = (240, 220, 30), (30, 200, 230)
    studio[100:200, 200:440] = (200, 40, 90)
    Image.fromarray(studio).save(folder / "studio.png")
    data = small_script()
    data["scenes"][0].update(motion="generate", motion_prompt="the dunes drift")
    data["scenes"][1].update(image_file="studio.png", motion="generate")
    data["scenes"][2].update(motion="none")
    script = write_script(folder, data)
    out = tmp / "out"
    report = run_episode(RunRequest(script=script, languages=["es"]), run_config(out))
    assert report.ok, report.failed
    episode = out / "proj" / script.stem
    record = json.loads((episode / "run.json").read_text())
    return {"script": script, "out": out, "folder": episode, "record": record, "tmp": tmp}


def test_draft_run_makes_a_clip_per_generated_scene_and_the_video_plays_them(draft):
    nodes = draft["record"]["nodes"]
    clips = sorted(k for k in nodes if k.startswith("clip:"))
    assert clips == ["clip:0", "clip:1"]
    assert nodes["clip:0"]["result"]["frames"] == generated.clip_frames(1.0) == 25
    assert (nodes["clip:0"]["result"]["width"], nodes["clip:0"]["result"]["height"]) == (320, 176)
    frames = decoded(draft["folder"] / "S01E02-ES-Título_de_prueba.mp4")
    pads = [nodes[f"pad:es:{i}"]["result"]["frames"] for i in range(3)]
    assert len(frames) == sum(pads)  # the narration sets the length, not the clips
    first = frames[: pads[0] - 12]  # scene 0 before its crossfade
    steps = [mean_step(a, b) for a, b in itertools.pairwise(first)]
    assert max(steps) < 8.0  # no jump, at the clip's end (frame 25) either
    # Moving throughout, past the 25-frame clip too: the continuation's slow zoom moves the card's
    # edges by hundredths of a pixel a frame, which x264 may code as the frame before, so stillness is
    # looked for over half a second (12 frames), where a frozen picture would show none.
    assert all(mean_step(first[i], first[i + 12]) > 0.0 for i in range(len(first) - 12))
    assert np.mean(steps[30:]) > 0.005
    # Scene 0 starts on its picture (through two lossy encodes at 320x176).
    picture = np.asarray(Image.open(draft["folder"] / nodes["image:0"]["result"]["path"]).convert("RGB"))
    assert mean_step(frames[0], picture) < 6.0
    # The still scene holds.
    third = frames[sum(pads[:2]) + 2 : sum(pads)]
    assert max(mean_step(a, b) for a, b in itertools.pairwise(third)) < 0.5


def test_a_rerun_builds_nothing_and_a_fresh_build_is_the_same_bytes(draft):
    again = run_episode(RunRequest(script=draft["script"], languages=["es"]), run_config(draft["out"]))
    assert again.ok and again.built == 0
    fresh_out = draft["tmp"] / "fresh"
    fresh = run_episode(RunRequest(script=draft["script"], languages=["es"]), run_config(fresh_out))
    assert fresh.ok
    name = "S01E02-ES-Título_de_prueba.mp4"
    fresh_folder = fresh_out / "proj" / draft["script"].stem
    record = json.loads((fresh_folder / "run.json").read_text())
    for node in ("clip:0", "clip:1"):
        assert record["nodes"][node]["key"] == draft["record"]["nodes"][node]["key"]
        path = record["nodes"][node]["result"]["path"]
        assert (fresh_folder / path).read_bytes() == (draft["folder"] / path).read_bytes()
    assert (fresh_folder / name).read_bytes() == (draft["folder"] / name).read_bytes()
    shutil.rmtree(fresh_out)


def test_a_motion_prompt_edit_rebuilds_only_that_clip_and_what_shows_it(draft, tmp_path):
    data = json.loads(draft["script"].read_text())
    data["scenes"][0]["motion_prompt"] = "the dunes drift the other way"
    script = write_script(tmp_path / "scripts" / "proj", data)
    shutil.copy(draft["script"].parent / "studio.png", script.parent / "studio.png")
    out = tmp_path / "out"
    shutil.copytree(draft["out"], out)
    # Another script file takes the copied folder over (--force): what it reuses is decided by keys.
    report = run_episode(RunRequest(script=script, languages=["es"], force=True), run_config(out))
    assert report.ok
    before = draft["record"]["nodes"]
    after = json.loads((out / "proj" / script.stem / "run.json").read_text())["nodes"]
    changed = {node for node in after if after[node]["key"] != before[node]["key"]}
    assert "clip:0" in changed and "motion:0" in changed
    assert not changed & {"clip:1", "image:0", "image:1", "motion:1", "music"}
    assert not any(node.startswith(("tts:", "pad:")) for node in changed)
    assert report.built == len(changed)


def test_in_every_round_pictures_voices_and_music_go_before_clips(tmp_path):
    """The scheduler's order: with pictures made, every ready non-clip step of the round is submitted
    before any clip (clips are the heaviest GPU work), and clips do go out in the same round."""
    from zray.nodes import ImageResult, Kind
    from zray.pipeline.driver import Driver, Job
    from zray.pipeline.engine_setup import prepare_engines
    from zray.pipeline.prepare import open_store, prepare_episode
    from zray.script import load_script

    config = run_config(tmp_path / "out", motion="generate")
    path = write_script(tmp_path / "scripts" / "proj", small_script())
    engines = prepare_engines(["es", "ca"], config, "draft")
    prep = prepare_episode(
        RunRequest(script=path), load_script(path)[0], config, open_store(config.output), engines
    )
    submitted: list[Kind] = []

    class Recorder:
        def submit(self, work):
            submitted.append(work.node.kind)

    try:
        job = Job(name=prep.episode, plan=prep.plan, record=prep.record, stale=prep.stale, store=prep.store)
        driver = Driver(Recorder(), max_in_flight=1000)  # type: ignore[arg-type]
        driver._start(job)
        for node in [n for n in job.waiting if n.kind is Kind.IMAGE]:
            job.waiting.remove(node)
            job.results[node.id] = ImageResult(path=node.outputs[0], width=320, height=176)
        driver._submit_round([job])
    finally:
        prep.release()
    clips = [i for i, kind in enumerate(submitted) if kind is Kind.CLIP]
    assert len(clips) == 3
    assert Kind.SPEECH in submitted and Kind.MUSIC in submitted
    assert min(clips) > max(i for i, kind in enumerate(submitted) if kind is not Kind.CLIP)


# --- Shorts of generated scenes, and a new clip from review ---------------------------------------

SHORT_SIZE = (180, 320)
CAPTION_BOX = (0.06, 0.02, 0.94, 0.2)  # at the top, clear of where the draft cards' layers move
CLEAR = slice(72, SHORT_SIZE[1])  # the rows of a Short below its captions


def shorts_run(tmp: Path, images: str):
    """Scenes 0 and 1 generated (1 s clips), scene 2 still; Shorts on, `shorts.images` = images."""
    folder = tmp / "scripts" / "proj"
    folder.mkdir(parents=True)
    data = small_script()
    data["scenes"][0].update(motion="generate", motion_prompt="the dunes drift")
    data["scenes"][1].update(motion="generate")
    data["scenes"][2].update(motion="none")
    script = write_script(folder, data)
    config = shorts_config(tmp / "out", images)
    report = run_episode(RunRequest(script=script, languages=["es"]), config)
    assert report.ok, report.failed
    episode = tmp / "out" / "proj" / script.stem
    return {"script": script, "config": config, "folder": episode, "record": run_record(episode)}


def shorts_config(out: Path, images: str):
    return load_config(
        None,
        output=str(out),
        profile="draft",
        quiet=True,
        executor="in-process",
        video={**FAST_VIDEO, "transition": 0.5},
        models={"video_seconds": 1.0},
        shorts={
            "enabled": True,
            "width": SHORT_SIZE[0],
            "height": SHORT_SIZE[1],
            "images": images,
            "caption_box": CAPTION_BOX,
        },
    )


def run_record(folder: Path) -> dict:
    return json.loads((folder / "run.json").read_text())


def luma(path: Path, rows: slice = CLEAR) -> list[np.ndarray]:
    """A video's Y planes (`rows` of them: by default a Short's below its captions)."""
    with av.open(str(path)) as container:
        return [
            f.to_ndarray(format="yuv420p")[: f.height][rows].astype(np.float32)
            for f in container.decode(video=0)
        ]


def first_short(shorts: dict) -> dict:
    first = shorts["result"]["shorts"][0]
    assert first["scenes"][0] == 0  # scene 0 opens it, from its first frame (no intro)
    return first


def best_window(frame: np.ndarray, wide: np.ndarray) -> float:
    """How close a Short's frame is to the closest window of a wider picture, across every offset."""
    width = frame.shape[1]
    return min(
        float(np.abs(wide[:, left : left + width] - frame).mean())
        for left in range(wide.shape[1] - width + 1)
    )


@pytest.fixture(scope="module")
def panned(tmp_path_factory):
    return shorts_run(tmp_path_factory.mktemp("shorts_pan"), "pan")


def test_a_short_pans_across_the_scenes_generated_clip_not_its_picture(panned):
    from zray.media.pan import PanPicture, fitted_size

    folder, nodes = panned["folder"], panned["record"]["nodes"]
    assert not any(node.startswith(("clip_v:", "image_v:")) for node in nodes)  # pan makes no new clip
    clip = folder / nodes["clip:0"]["result"]["path"]
    short = luma(folder / first_short(nodes["shorts:es"])["path"])
    wide, _ = fitted_size(320, 176, width=SHORT_SIZE[0], height=SHORT_SIZE[1])
    played = [
        f[: SHORT_SIZE[1]][CLEAR].astype(np.float32)
        for f in ClipFrames(clip, width=wide, height=SHORT_SIZE[1], fps=24, fit="cover", fill="hold").frames(
            0, 25
        )
    ]
    with Image.open(folder / nodes["image:0"]["result"]["path"]) as image:
        still = PanPicture(image, width=SHORT_SIZE[0], height=SHORT_SIZE[1])
    picture = np.asarray(still.y, np.float32)[CLEAR]
    # The Short starts on the picture (the clip's first frame) and, late in the clip, shows the clip's
    # frame of that moment, through a window: far closer to it than to the still picture.
    assert best_window(short[0], played[0]) < 1.5
    for i in (20, 24):
        assert best_window(short[i], played[i]) < 1.5
        assert best_window(short[i], picture) > 1.5 * best_window(short[i], played[i])
    assert best_window(short[24], picture) > 2 * best_window(short[24], played[24])
    # Past the clip's end (frame 25) the window keeps moving over its last frame: no freeze.
    scene_frames = nodes["pad:es:0"]["result"]["frames"]
    assert all(mean_step(short[i], short[i + 12]) > 0.0 for i in range(scene_frames - 24))


def test_a_new_clip_seed_from_review_changes_the_clip_and_its_short_but_not_the_picture(panned, tmp_path):
    from zray.episode import open_episode
    from zray.review.record import update_review

    out = tmp_path / "out"
    shutil.copytree(panned["folder"].parent.parent, out)
    folder = out / "proj" / panned["script"].stem
    episode = open_episode(str(folder))
    update_review(episode.store, episode.identity, lambda r: r.set_clip_seed(0, "0", 4242), command="test")
    config = shorts_config(out, "pan")
    report = run_episode(RunRequest(script=panned["script"], languages=["es"]), config)
    assert report.ok, report.failed
    before, after = panned["record"]["nodes"], run_record(folder)["nodes"]
    changed = {node for node in after if after[node]["key"] != before[node]["key"]}
    assert {"clip:0", "motion:0", "shorts:es", "video:es"} <= changed
    assert not changed & {"image:0", "clip:1", "image:1", "motion:1", "music"}
    assert report.built == len(changed)
    # The same picture, a new clip: its own frames, and the Short that shows it.
    picture = nodes_file(folder, after, "image:0")
    assert picture.read_bytes() == nodes_file(panned["folder"], before, "image:0").read_bytes()
    old_clip = luma(nodes_file(panned["folder"], before, "clip:0"), rows=slice(None))
    new_clip = luma(nodes_file(folder, after, "clip:0"), rows=slice(None))
    assert mean_step(old_clip[0], new_clip[0]) < 1.0  # both start on the picture
    assert mean_step(old_clip[24], new_clip[24]) > 1.0
    old_shorts, new_shorts = before["shorts:es"]["result"]["shorts"], after["shorts:es"]["result"]["shorts"]
    assert old_shorts[0]["key"] != new_shorts[0]["key"]  # it shows scene 0
    assert [s["key"] for s in old_shorts[1:]] == [s["key"] for s in new_shorts[1:]]
    assert (
        mean_step(
            luma(folder / new_shorts[0]["path"])[24], luma(panned["folder"] / old_shorts[0]["path"])[24]
        )
        > 1.0
    )
    # Back to the derived seed: the first clip again, bit for bit.
    update_review(episode.store, episode.identity, lambda r: r.set_clip_seed(0, "0", None), command="test")
    assert run_episode(RunRequest(script=panned["script"], languages=["es"]), config).ok
    assert run_record(folder)["nodes"]["clip:0"]["key"] == before["clip:0"]["key"]
    assert (
        nodes_file(folder, before, "clip:0").read_bytes()
        == nodes_file(panned["folder"], before, "clip:0").read_bytes()
    )


def nodes_file(folder: Path, nodes: dict, node: str) -> Path:
    return folder / nodes[node]["result"]["path"]


def test_shorts_images_generate_makes_a_vertical_clip_from_the_vertical_picture(tmp_path):
    run = shorts_run(tmp_path, "generate")
    folder, nodes = run["folder"], run["record"]["nodes"]
    assert sorted(n for n in nodes if n.startswith("clip_v:")) == ["clip_v:0", "clip_v:1"]
    vertical = nodes["clip_v:0"]
    # At the vertical picture's size (a multiple of 16 at least the Short's), made from that picture.
    assert (vertical["result"]["width"], vertical["result"]["height"]) == (192, 320)
    assert vertical["made_from"]["input_nodes"] == {"image": "image_v:0"}
    short = luma(folder / first_short(nodes["shorts:es"])["path"])
    played = [
        f[: SHORT_SIZE[1]][CLEAR].astype(np.float32)
        for f in ClipFrames(
            nodes_file(folder, nodes, "clip_v:0"),
            width=SHORT_SIZE[0],
            height=SHORT_SIZE[1],
            fps=24,
            fit="cover",
            fill="hold",
        ).frames(0, 25)
    ]
    # The Short plays the vertical clip, fitted: frame for frame, not its first frame held.
    for i in (0, 12, 24):
        assert mean_step(short[i], played[i]) < 1.5
    assert mean_step(short[24], played[0]) > 2 * mean_step(short[24], played[24])
    # Past its end the scene goes on under the continuation's slow zoom: no freeze.
    scene_frames = nodes["pad:es:0"]["result"]["frames"]
    assert all(mean_step(short[i], short[i + 12]) > 0.0 for i in range(scene_frames - 24))
