"""The plan is pure: keys, layout and typed nodes, checked without running anything."""

import PIL
from conftest import FAST_VIDEO, small_script

from zray.config import load_config
from zray.engines import storyboard
from zray.nodes import ImageRequest, Kind, VideoInputs
from zray.pipeline.engine_setup import prepare_engines
from zray.pipeline.plan import Identities, Intro, build_plan
from zray.pipeline.prepare import identities_for
from zray.script import check_data

IDENTITIES = Identities(
    image={"engine": "storyboard"},
    music={"engine": "a"},
    speech={"es": {"engine": "espeak"}, "ca": {"engine": "espeak"}},
)


def plan_for(data, intro=None, identities=IDENTITIES, **config):
    script = check_data(data, filename="SAGA_01_Episode_02.json").script
    cfg = load_config(None, **config)
    return build_plan(script, languages=script.languages, identities=identities, config=cfg, intro=intro)


def keys(plan):
    return {node_id: node.key for node_id, node in plan.nodes.items()}


def test_plan_has_the_seed_layout():
    plan = plan_for(small_script())
    outputs = {o for n in plan.nodes.values() for o in n.outputs}
    assert "S01E02-ES-Título_de_prueba.mp4" in outputs
    assert "S01E02-CA-Prueba_de_zray.mp4" in outputs  # no SEO variant: project title
    assert {
        "assets/common/img_0.png",
        "thumbnail_es.png",
        "subtitles_ca.srt",
        "subtitles_ca.vtt",
        "subtitles_ca.words.json",
        "chapters_es.txt",
        "assets/thumbnails/thumbnail_raw_ca.png",
        "assets/thumbnails/thumbnail_es_v1.png",
    } <= outputs
    assert any(o.startswith("assets/es/padding/audio_es_1_") for o in outputs)
    assert any(o.startswith("assets/common/bg_music_common_") for o in outputs)
    assert sorted(n.id for n in plan.targets()) == sorted(
        f"{kind}:{lang}" for kind in ("thumbs", "subs", "video") for lang in ("es", "ca")
    )


def test_every_node_comes_after_its_inputs_and_names_them():
    plan = plan_for(small_script(), intro=Intro(key="assets/common/intro_x.mp4", digest="abc"))
    seen: set[str] = set()
    for node in plan.nodes.values():
        assert set(node.deps) <= seen, node.id
        seen.add(node.id)
    video = plan.nodes["video:es"]
    assert dict(video.inputs) == {
        "music": "music",
        "segments": ("segment:0", "segment:1", "segment:2"),
        "pads": ("pad:es:0", "pad:es:1", "pad:es:2"),
        "intro": "intro",
    }
    assert video.kind is Kind.VIDEO
    # Typed inputs come from named results, never positions.
    from zray.nodes import IntroResult, MusicResult, PadResult, SegmentResult

    results = {"music": MusicResult(path="m"), "intro": IntroResult(path="i", frames=3)}
    results |= {f"segment:{i}": SegmentResult(path=f"s{i}") for i in range(3)}
    results |= {f"pad:es:{i}": PadResult(path=f"p{i}", frames=i + 1) for i in range(3)}
    inputs = video.resolve(results)
    assert isinstance(inputs, VideoInputs)
    assert [p.frames for p in inputs.pads] == [1, 2, 3] and inputs.intro.frames == 3


def test_changing_one_line_changes_only_what_depends_on_it():
    before = keys(plan_for(small_script()))
    data = small_script()
    data["scenes"][1]["script_es"] = "Otra frase distinta."
    after = keys(plan_for(data))
    changed = {node_id for node_id in before if before[node_id] != after[node_id]}
    assert changed == {"tts:es:1", "pad:es:1", "subs:es", "video:es"}


def test_music_key_ignores_episode_text_and_length():
    data = small_script()
    data["scenes"].append({**data["scenes"][0], "scene_id": 9})
    assert plan_for(data).nodes["music"].key == plan_for(small_script()).nodes["music"].key


def test_title_change_keeps_content_keys_and_renames_the_file():
    data = small_script()
    data["seo"]["es"]["variants"][0]["title"] = "Otro título"
    before, after = plan_for(small_script()), plan_for(data)
    assert before.nodes["video:es"].key == after.nodes["video:es"].key
    assert after.nodes["video:es"].outputs == ("S01E02-ES-Otro_título.mp4",)


def test_video_settings_and_intro_change_video_keys_not_narration():
    base = plan_for(small_script())
    other = plan_for(small_script(), video=FAST_VIDEO)
    with_intro = plan_for(small_script(), intro=Intro(key="assets/common/intro_x.mp4", digest="abc"))
    assert base.nodes["video:es"].key != other.nodes["video:es"].key
    assert base.nodes["tts:es:0"].key == other.nodes["tts:es:0"].key
    assert base.nodes["segment:0"].key != other.nodes["segment:0"].key
    assert "intro" in with_intro.nodes and "intro" in with_intro.nodes["video:es"].deps
    assert with_intro.nodes["subs:es"].key != base.nodes["subs:es"].key


def test_seeds_are_stable_and_per_scene():
    plan = plan_for(small_script())
    requests = [plan.nodes[f"image:{i}"].request for i in range(3)]
    assert all(isinstance(r, ImageRequest) for r in requests)
    seeds = [r.seed for r in requests]
    assert len(set(seeds)) == 3 and seeds == [
        plan_for(small_script()).nodes[f"image:{i}"].request.seed for i in range(3)
    ]


def test_colliding_scene_labels_are_disambiguated():
    data = small_script()
    data["scenes"][0]["scene_id"] = "a/b"
    data["scenes"][1]["scene_id"] = "a_b"
    plan = plan_for(data)
    assert "image:000_a_b" in plan.nodes and "image:001_a_b" in plan.nodes


FORMAT_1_KEYS = {
    "music": "75d1c6a1d87f5302",
    "image:0": "bce55a0e12edc26f",
    "image:1": "32d94bbc520ee703",
    "image:2": "9f081df44430f51f",
    "tts:es:0": "3bbbb8d3d8182d67",
    "tts:es:1": "863e46f03af20acd",
    "tts:es:2": "28b9e4f6135a8f29",
    "thumb_base:es": "251fc763863979a5",
    "tts:ca:0": "ef133a8696b96bee",
    "tts:ca:1": "cb73800a0cf69112",
    "tts:ca:2": "25a4aa132c992360",
    "thumb_base:ca": "bb8a144971a91ea4",
}


def test_the_old_key_formulas_recognise_keys_computed_by_zray_0_1(monkeypatch):
    """A studio that upgrades zray must not redo its GPU work: FORMAT_1_KEYS were computed by zray
    0.1.0 (commit 54b8726) for the same script with the draft engines; the migration recognises them
    (the storyboard cards only with their label set aside: format 1 left it out, so they rebuild)."""
    from zray.pipeline import migrate_keys

    # The storyboard's identity names the Pillow that drew it (its rasterizer decides the pixels), so
    # another Pillow rightly makes new pictures; the keys were computed under Pillow 11.3.0.
    monkeypatch.setattr(PIL, "__version__", "11.3.0")
    # FORMAT_1_KEYS were computed with storyboard 1; storyboard 2 (text inside the safe area) rightly
    # gives its cards and thumbnail bases new keys, so the formulas are checked under the engine they saw.
    monkeypatch.setattr(storyboard, "ENGINE_VERSION", "1")
    script = check_data(small_script(), filename="SAGA_01_Episode_02.json").script
    cfg = load_config(None, profile="draft")
    setup = prepare_engines(script.languages, cfg, "draft")
    plan = plan_for(
        small_script(), identities=identities_for(setup, script, script.languages), profile="draft"
    )
    old = migrate_keys.legacy_keys(plan.nodes, cfg)
    assert {k: old[k] for k in FORMAT_1_KEYS} == {
        k: (None if k.startswith("image:") else v) for k, v in FORMAT_1_KEYS.items()
    }
    monkeypatch.setattr(migrate_keys, "LABEL_DRAWING_ENGINES", frozenset())
    old = migrate_keys.legacy_keys(plan.nodes, cfg)
    assert {k: old[k] for k in FORMAT_1_KEYS} == FORMAT_1_KEYS
    # The new keys are another format: no old key can be mistaken for a new one.
    assert not set(FORMAT_1_KEYS.values()) & {n.key for n in plan.nodes.values()}


def test_motion_and_crossfades_are_decided_by_profile_unless_set():
    draft = plan_for(small_script())
    assert not [n for n in draft.nodes if n.startswith(("motion:", "tail:"))]
    production = build_plan(
        check_data(small_script(), filename="SAGA_01_Episode_02.json").script,
        languages=["es", "ca"],
        identities=IDENTITIES,
        config=load_config(None),
        profile="production",
    )
    assert {n for n in production.nodes if n.startswith("motion:")} == {"motion:0", "motion:1", "motion:2"}
    tail = production.nodes["tail:es:0"].request
    assert tail.transition == 12 and tail.shot.move is not None  # 0.5 s at 24 fps, inside the 0.5 s gap
    # Set explicitly, the settings win over the profile; a scene's own `motion` wins over both.
    data = small_script()
    data["scenes"][1]["motion"] = "none"
    plan = plan_for(data, video={"motion": "gentle", "transition": 2.0})
    assert {n for n in plan.nodes if n.startswith("motion:")} == {"motion:0", "motion:2"}
    # A crossfade never outlasts the pause it lies in (audio.scene_gap 0.5 s: 12 frames).
    assert plan.nodes["tail:1"].request.transition == 12 and plan.nodes["tail:1"].lang is None
    assert plan_for(data, video={"motion": "none", "transition": 0}).nodes.keys() == draft.nodes.keys()


def test_a_moving_scene_is_keyed_by_every_languages_narration_and_a_still_crossfade_by_neither():
    data = small_script()
    data["scenes"][1]["motion"] = "none"
    base = keys(plan_for(data, video={"motion": "gentle", "transition": 0.5}))
    data["scenes"][0]["script_ca"] += " Una frase més."
    data["scenes"][1]["script_ca"] += " Una frase més."
    edited = keys(plan_for(data, video={"motion": "gentle", "transition": 0.5}))
    changed = {n for n in base if base[n] != edited[n]}
    # Scene 0 moves: its shared segment follows the longest language; Catalan's tail follows its length.
    assert {"motion:0", "tail:ca:0", "video:ca", "video:es"} <= changed
    assert not {"tail:es:0", "tail:1", "motion:2", "tail:es:2", "tail:ca:2", "segment:1"} & changed


def test_the_thumbnail_base_is_asked_for_without_a_label():
    plan = plan_for(small_script())
    assert plan.nodes["thumb_base:es"].request.label == ""
    # The card's label names the scene by its id, so inserting a scene renumbers no other card.
    assert plan.nodes["image:0"].request.label == "Scene 0"


def test_pacing_lives_in_the_padded_narration():
    """A lead before the first scene, a gap after each (a scene's own `gap` wins), the tail after the
    last, each rounded up to whole frames; the music fades out over the tail."""
    data = small_script()
    data["scenes"][1]["gap"] = 1.01
    plan = plan_for(data, audio={"lead": 0.3, "scene_gap": 0.5, "tail": 2.0}, video={"fps": 24})
    pads = [plan.nodes[f"pad:es:{i}"].request for i in range(3)]
    assert [(p.lead_frames, p.gap_frames) for p in pads] == [(8, 12), (0, 25), (0, 48)]
    mix = plan.nodes["video:es"].request.audio
    assert mix.music_fade_out == 2.0 and mix.music_fade_in == 0.5
    other = plan_for(small_script(), audio={"scene_gap": 0.25})
    assert other.nodes["pad:es:0"].key != plan_for(small_script()).nodes["pad:es:0"].key


def test_every_key_is_derived_from_its_request_its_inputs_and_its_engine():
    """No key is written by hand: each is `node_key` of what the node carries, and the input keys it
    carries are the keys of the nodes it names."""
    from zray.nodes import node_key

    plan = plan_for(
        small_script(), intro=Intro(key="assets/common/intro_x.mp4", digest="abc"), shorts={"enabled": True}
    )
    for node in plan.nodes.values():
        assert node.key == node_key(node.request, inputs=node.input_keys, engine=node.engine), node.id
        for name, ref in node.inputs.items():
            refs = ref if isinstance(ref, tuple) else (ref,)
            keys = node.input_keys[name]
            keys = keys if isinstance(keys, tuple) else (keys,)
            assert keys == tuple(plan.nodes[r].key if r else None for r in refs), (node.id, name)
