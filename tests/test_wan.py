"""The Wan image-to-video engine with tiny random-weight components (tests/tiny_wan.py: Wan2.2 5B's
shapes scaled down, nothing downloaded): through the engine class, from a saved model folder as a
real model id would load, and in a real `zray run --profile production` whose models are tiny folders."""

from __future__ import annotations

import json

import av
import numpy as np
import pytest
from conftest import write_script
from PIL import Image
from tiny_wan import build_tiny_wan, build_tiny_wan_pipeline
from tiny_zimage import build_tiny_zimage

from zray.config import load_config
from zray.engines.base import EngineError, check_engine_class
from zray.engines.registry import engine_class
from zray.engines.wan import NATIVE_PIXELS, WanSettings, WanVideoEngine, cover
from zray.media import generated
from zray.pipeline.engine_setup import (
    EngineIdentities,
    EngineSetup,
    EngineSetupError,
    choose_engines,
    settings_for,
)
from zray.pipeline.run import RunRequest, run_episode

pytest.importorskip("diffusers")
pytest.importorskip("ftfy")

CPU = {"device": "cpu", "steps": 2}


@pytest.fixture(scope="module")
def pipeline():
    return build_tiny_wan_pipeline()


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return build_tiny_wan(tmp_path_factory.mktemp("wan") / "tiny-wan")


def picture(width: int = 96, height: int = 60) -> Image.Image:
    rgb = np.zeros((height, width, 3), np.uint8)
    rgb[:, : width // 2] = (220, 60, 40)
    rgb[:, width // 2 :] = (30, 120, 230)
    return Image.fromarray(rgb)


def test_wan_is_the_production_video_engine_and_fits_the_role():
    assert check_engine_class(WanVideoEngine, "video") == []
    assert engine_class("wan", "video") is WanVideoEngine
    assert WanVideoEngine.uses_gpu and "ftfy" in WanVideoEngine.requires
    defaults = WanSettings()
    assert (defaults.model, defaults.steps, defaults.guidance) == ("Wan-AI/Wan2.2-TI2V-5B-Diffusers", 50, 5.0)
    assert defaults.max_pixels == NATIVE_PIXELS == 1280 * 704


def test_config_sets_the_video_engine_from_models():
    config = load_config(
        None, models={"video": "/models/wan", "video_steps": 30, "video_memory": "group_offload"}
    )
    choice = choose_engines(config, ["es"], profile="production")
    assert choice.video is not None and choice.video.name == "wan"
    settings = settings_for("wan", config, ["es"])
    assert (settings.model, settings.steps, settings.memory) == ("/models/wan", 30, "group_offload")
    assert choose_engines(config, ["es"], profile="draft").video.name == "parallax"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("steps", 0, "video steps must be a positive integer"),
        ("memory", "cpu", "video memory mode must be one of"),
        ("cache_threshold", 1.5, "cache_threshold must be a number in"),
        ("model", " ", "video model must be"),
    ],
)
def test_bad_settings_are_refused_in_one_line(field, value, message):
    with pytest.raises(EngineError, match=message):
        WanSettings(**{field: value})


def test_a_clip_from_injected_components_is_its_frames_in_uint8_and_reproducible(pipeline):
    engine = WanVideoEngine(WanSettings(**CPU), pipeline=pipeline)
    clip = engine.generate(picture(), "waves roll onto a beach", width=64, height=32, frames=9, seed=1)
    assert isinstance(clip, np.ndarray) and clip.shape == (9, 32, 64, 3) and clip.dtype == np.uint8
    assert clip.std() > 0  # not a blank clip
    again = engine.generate(picture(), "waves roll onto a beach", width=64, height=32, frames=9, seed=1)
    assert np.array_equal(clip, again)
    other = engine.generate(picture(), "waves roll onto a beach", width=64, height=32, frames=9, seed=2)
    assert not np.array_equal(clip, other)
    prompt = engine.generate(picture(), "leaves move in the wind", width=64, height=32, frames=9, seed=1)
    assert not np.array_equal(clip, prompt)
    # Several requests in one call give what each gives alone (a clip never depends on its batch).
    many = engine.generate_many(
        [
            {
                "image": picture(),
                "prompt": "waves roll onto a beach",
                "width": 64,
                "height": 32,
                "frames": 9,
                "seed": 1,
            },
            {
                "image": picture(),
                "prompt": "waves roll onto a beach",
                "width": 64,
                "height": 32,
                "frames": 9,
                "seed": 2,
            },
        ]
    )
    assert np.array_equal(many[0], clip) and np.array_equal(many[1], other)


@pytest.mark.parametrize(
    ("ask", "message"),
    [
        ({"frames": 8}, "4n \\+ 1"),
        ({"width": 48}, "multiples of 32"),
        ({"seed": "1"}, "seed must be an integer"),
    ],
)
def test_bad_requests_are_refused_before_the_model_loads(ask, message):
    engine = WanVideoEngine(WanSettings(**CPU))  # no pipeline: loading would fail
    request = {"width": 64, "height": 32, "frames": 9, "seed": 1, **ask}
    with pytest.raises(EngineError, match=message):
        engine.generate(picture(), "x", **request)
    assert engine.placement is None


def test_a_picture_of_another_shape_is_cover_fitted():
    fitted = cover(picture(200, 60), width=64, height=32)
    assert fitted.size == (64, 32)
    assert np.asarray(fitted)[:, 0].mean(axis=0)[0] > 150  # the left half is still red at the left


def test_a_saved_folder_loads_as_a_model_id_would_and_names_itself(pipeline, folder):
    from_folder = WanVideoEngine(WanSettings(model=str(folder), **CPU))
    injected = WanVideoEngine(WanSettings(**CPU), pipeline=pipeline)
    a = from_folder.generate(picture(), "waves", width=64, height=32, frames=5, seed=3)
    b = injected.generate(picture(), "waves", width=64, height=32, frames=5, seed=3)
    assert np.array_equal(a, b)
    identity = from_folder.identity()
    assert identity["model"] == "tiny-wan" and identity["model_digest"]
    assert identity["dtype"] == "float32" and identity["max_pixels"] == NATIVE_PIXELS
    assert json.loads(json.dumps(identity)) == identity


def test_a_missing_model_folder_is_one_line(tmp_path):
    engine = WanVideoEngine(WanSettings(model=str(tmp_path / "nowhere"), **CPU))
    with pytest.raises(EngineError, match=r"video model directory .* does not exist; set models.video"):
        engine.load()


def test_an_episode_with_clips_but_without_the_extras_says_so_in_one_line(tmp_path, monkeypatch):
    config = load_config(None, output=str(tmp_path), models={"device": "cpu"})
    monkeypatch.setattr(WanVideoEngine, "requires", ("zray_no_such_module",))
    choice = choose_engines(config, ["es"], profile="production")
    full = EngineSetup(
        profile="production",
        image=choice.image,
        music=choice.music,
        tts=choice.tts,
        origins=choice.origins,
        video=choice.video,
        identities=EngineIdentities({}, {}, {}, {}),
    )
    with pytest.raises(EngineSetupError, match="profile production's video engine wan: the wan engine needs"):
        full.video_identity()


def test_production_run_with_a_generated_scene_from_tiny_model_folders(tmp_path, folder):
    """`zray run --profile production` (in-process): Z-Image and Wan from tiny local folders, espeak
    and the ambient bed in place of Kokoro and MusicGen (their own tests cover them)."""
    data = {
        "project_title": "Producción",
        "saga": 1,
        "episode": 4,
        "global_music_prompt": "calm pads",
        "scenes": [
            {
                "scene_id": 0,
                "image_prompt": "a red planet",
                "motion": "generate",
                "motion_prompt": "the planet turns slowly",
                "script_es": "Hola mundo, esta escena se mueve sola.",
            },
            {"scene_id": 1, "image_prompt": "a blue moon", "script_es": "Adiós."},
        ],
    }
    script = write_script(tmp_path / "scripts" / "prod", data, name="SAGA_01_Episode_04.json")
    config = load_config(
        None,
        output=str(tmp_path / "out"),
        profile="production",
        quiet=True,
        executor="in-process",
        video={"width": 128, "height": 64, "fps": 30, "preset": "fast", "gop": 24},
        audio={"music_seconds": 4.0},
        engines={"tts_default": "espeak", "music": "ambient"},
        models={
            "image": str(build_tiny_zimage(tmp_path / "zimage")),
            "video": str(folder),
            "video_steps": 2,
            "video_seconds": 0.5,
            "video_pixels": 128 * 64,
            "device": "cpu",
        },
    )
    report = run_episode(RunRequest(script=script), config)
    assert report.ok, report.failed
    episode = tmp_path / "out" / "prod" / "SAGA_01_Episode_04"
    record = json.loads((episode / "run.json").read_text())
    assert record["engines"]["wan"]["model"] == "tiny-wan"
    clip = record["nodes"]["clip:0"]
    assert clip["result"]["frames"] == generated.clip_frames(0.5) == 13
    assert (clip["result"]["width"], clip["result"]["height"]) == (128, 64)
    assert "clip:1" not in record["nodes"]  # the other scene keeps the gentle move
    with av.open(str(episode / clip["result"]["path"])) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height, stream.average_rate) == (128, 64, 24)
    video = episode / record["nodes"]["video:es"]["outputs"][0].rsplit("/", 1)[-1]
    frames = sum(record["nodes"][f"pad:es:{i}"]["result"]["frames"] for i in range(2))
    with av.open(str(video)) as container:
        assert (
            sum(1 for _ in container.decode(video=0)) == frames
        )  # retimed to 30 fps, carried on past 13 frames
    again = run_episode(RunRequest(script=script), config)
    assert again.ok and again.built == 0
