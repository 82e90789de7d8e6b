"""Shorts and burned captions in the plan: which nodes, their keys, and what they leave alone."""

import dataclasses

from conftest import small_script
from test_plan import IDENTITIES, keys, plan_for

from zray.config import load_config
from zray.nodes import ClipRequest, ImageRequest, Kind, ShortsClip, ShortsRequest
from zray.pipeline.plan import Intro, build_plan
from zray.script import check_data


def test_shorts_are_one_final_node_per_language_only_when_asked():
    plain = plan_for(small_script())
    assert not any(n.kind is Kind.SHORTS for n in plain.nodes.values())
    plan = plan_for(small_script(), shorts={"enabled": True})
    node = plan.nodes["shorts:es"]
    assert node.final and node.stage == "shorts" and node.request.dynamic_outputs and node.outputs == ()
    assert dict(node.inputs) == {
        "subs": "subs:es",
        "images": ("image:0", "image:1", "image:2"),
        "pads": ("pad:es:0", "pad:es:1", "pad:es:2"),
        "music": "music",
        "intro": None,
    }
    request = node.request
    assert isinstance(request, ShortsRequest)
    assert (request.video.width, request.video.height, request.video.fps) == (1080, 1920, 24)
    assert request.folder == "shorts/es" and request.max_seconds == 60 and request.min_seconds == 10
    # Everything else keeps its key: turning Shorts on rebuilds nothing of the long video.
    assert {k: v for k, v in keys(plan).items() if not k.startswith("shorts:")} == keys(plain)


def test_a_short_owns_only_its_own_folder():
    request = plan_for(small_script(), shorts={"enabled": True}).nodes["shorts:es"].request
    assert request.owns("shorts/es/S01E02-ES-01-Uno.mp4") and request.owns("shorts/es/S01E02-ES-01-Uno.srt")
    for path in (
        "shorts/ca/S01E02-CA-01-Uno.mp4",
        "S01E02-ES-x.mp4",
        "shorts/es/../run.json",
        "shorts/es/a/b.mp4",
    ):
        assert not request.owns(path), path


def test_a_short_s_key_follows_its_settings_and_its_language_only():
    base = keys(plan_for(small_script(), shorts={"enabled": True}))
    wider = keys(plan_for(small_script(), shorts={"enabled": True, "max_seconds": 90}))
    assert base["shorts:es"] != wider["shorts:es"] and base["video:es"] == wider["video:es"]
    data = small_script()
    data["scenes"][1]["script_ca"] += " I prou."
    edited = keys(plan_for(data, shorts={"enabled": True}))
    assert edited["shorts:es"] == base["shorts:es"] and edited["shorts:ca"] != base["shorts:ca"]


def test_generated_vertical_pictures_only_when_chosen():
    plan = plan_for(small_script(), shorts={"enabled": True, "images": "generate"})
    vertical = plan.nodes["image_v:1"]
    scene = plan.nodes["image:1"].request
    assert isinstance(vertical.request, ImageRequest) and vertical.stage == "images"
    assert (vertical.request.width, vertical.request.height) == (1088, 1920)  # image models: multiples of 16
    assert (vertical.request.prompt, vertical.request.seed) == (scene.prompt, scene.seed)
    assert plan.nodes["shorts:es"].inputs["images"] == ("image_v:0", "image_v:1", "image_v:2")
    assert not any(n.startswith("image_v:") for n in plan_for(small_script(), shorts={"enabled": True}).nodes)


def test_a_shorts_intro_is_encoded_once_at_the_shorts_size():
    script = check_data(small_script(), filename="SAGA_01_Episode_02.json").script
    cfg = load_config(None, shorts={"enabled": True})
    clip = Intro(key="assets/common/intro_abc.mp4", digest="abc")
    plan = build_plan(
        script, languages=script.languages, identities=IDENTITIES, config=cfg, shorts_intro=clip
    )
    intro = plan.nodes["intro:shorts"]
    assert (intro.request.video.width, intro.request.video.height) == (1080, 1920)
    assert (
        plan.nodes["shorts:es"].inputs["intro"] == "intro:shorts" == plan.nodes["shorts:ca"].inputs["intro"]
    )
    assert "intro" not in plan.nodes  # the long video has none


def test_burned_captions_make_each_language_s_scenes_its_own():
    plain = plan_for(small_script())
    plan = plan_for(small_script(), captions={"burn": True})
    assert plan.nodes["video:es"].inputs["segments"] == ("captioned:es:0", "captioned:es:1", "captioned:es:2")
    assert plan.nodes["video:ca"].inputs["segments"] == ("captioned:ca:0", "captioned:ca:1", "captioned:ca:2")
    assert plan.nodes["captioned:es:0"].key != plan.nodes["captioned:ca:0"].key
    assert (
        keys(plan)["subs:es"] == keys(plain)["subs:es"] and keys(plan)["video:es"] != keys(plain)["video:es"]
    )
    red = plan_for(small_script(), captions={"burn": True, "highlight": "#ff0000"})
    assert keys(red)["captioned:es:0"] != keys(plan)["captioned:es:0"]


WITH_VIDEO = dataclasses.replace(IDENTITIES, video={"engine": "parallax", "max_pixels": None})


def generated_scene_1() -> dict:
    data = small_script()
    data["scenes"][1]["motion"] = "generate"
    return data


def test_a_short_pans_across_a_generated_scene_s_clip_and_is_keyed_by_it():
    plan = plan_for(generated_scene_1(), identities=WITH_VIDEO, shorts={"enabled": True})
    node, clip = plan.nodes["shorts:es"], plan.nodes["clip:1"]
    assert node.inputs["clips"] == ("clip:1",) and node.inputs["images"] == ("image:0", "image:1", "image:2")
    scenes = node.request.scenes
    assert scenes[1].generated == ShortsClip(key=clip.key, index=0, move=None)  # no move: panned across
    assert scenes[0].generated is None and scenes[2].generated is None
    assert not any(n.startswith(("clip_v:", "image_v:")) for n in plan.nodes)
    # A different clip (its motion prompt) is a different Short; the long video's still scenes are not.
    data = generated_scene_1()
    data["scenes"][1]["motion_prompt"] = "the waves roll in"
    other = plan_for(data, identities=WITH_VIDEO, shorts={"enabled": True})
    assert other.nodes["clip:1"].key != clip.key and other.nodes["shorts:es"].key != node.key
    assert other.nodes["image:1"].key == plan.nodes["image:1"].key


def test_shorts_images_generate_makes_a_vertical_clip_from_the_vertical_picture():
    plan = plan_for(
        generated_scene_1(), identities=WITH_VIDEO, shorts={"enabled": True, "images": "generate"}
    )
    vertical, scene = plan.nodes["clip_v:1"], plan.nodes["clip:1"]
    assert isinstance(vertical.request, ClipRequest) and vertical.stage == "clips"
    assert dict(vertical.inputs) == {"image": "image_v:1"}
    assert (vertical.request.width, vertical.request.height) == (1088, 1920)  # the vertical picture's size
    assert (vertical.request.prompt, vertical.request.seed) == (scene.request.prompt, scene.request.seed)
    assert vertical.outputs != scene.outputs
    node = plan.nodes["shorts:es"]
    assert node.inputs["clips"] == ("clip_v:1",)
    generated = node.request.scenes[1].generated
    assert generated.key == vertical.key and generated.index == 0 and generated.move is not None
    assert not any(
        n.startswith("clip_v:")
        for n in plan_for(small_script(), shorts={"enabled": True, "images": "generate"}).nodes
    )
    # A model with a native size makes the vertical clip at its number of pixels, in the Short's shape.
    wan = dataclasses.replace(
        IDENTITIES, video={"engine": "wan", "max_pixels": 1280 * 704, "size_multiple": 32}
    )
    sized = plan_for(generated_scene_1(), identities=wan, shorts={"enabled": True, "images": "generate"})
    request = sized.nodes["clip_v:1"].request
    assert request.height > request.width and request.width * request.height <= 1280 * 704
