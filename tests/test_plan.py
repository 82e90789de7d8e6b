from conftest import FAST_VIDEO, small_script

from zray.config import load_config
from zray.engines.registry import choose_engines
from zray.pipeline.plan import Intro, build_plan
from zray.script import check_data

IDENTITIES = {
    "storyboard": {"engine": "storyboard"},
    "espeak": {"engine": "espeak"},
    "ambient": {"engine": "a"},
}


def plan_for(data, intro=None, **config):
    script = check_data(data, filename="SAGA_01_Episode_02.json").script
    cfg = load_config(None, **config)
    engines = choose_engines(cfg, script.languages, profile="draft")
    return build_plan(
        script,
        episode="p/e",
        languages=script.languages,
        engines=engines,
        identities=IDENTITIES,
        config=cfg,
        intro=intro,
    )


def keys(plan):
    return {node_id: node.key for node_id, node in plan.nodes.items()}


def test_plan_has_the_seed_layout():
    plan = plan_for(small_script())
    outputs = {o for n in plan.nodes.values() for o in n.outputs}
    assert "p/e/S01E02-ES-Título_de_prueba.mp4" in outputs
    assert "p/e/S01E02-CA-Prueba_de_zray.mp4" in outputs  # no SEO variant: project title
    assert {
        "p/e/assets/common/img_0.png",
        "p/e/thumbnail_es.png",
        "p/e/subtitles_ca.srt",
        "p/e/subtitles_ca.vtt",
        "p/e/chapters_es.txt",
        "p/e/assets/thumbnails/thumbnail_raw_ca.png",
        "p/e/assets/thumbnails/thumbnail_es_v1.png",
    } <= outputs
    assert any(o.startswith("p/e/assets/es/padding/audio_es_1_") for o in outputs)
    assert any(o.startswith("p/e/assets/common/bg_music_common_") for o in outputs)
    assert sorted(n.id for n in plan.targets()) == sorted(
        f"{kind}:{lang}" for kind in ("thumbs", "subs", "video") for lang in ("es", "ca")
    )


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
    assert after.nodes["video:es"].outputs == ("p/e/S01E02-ES-Otro_título.mp4",)


def test_video_settings_and_intro_change_video_keys_not_narration():
    base = plan_for(small_script())
    other = plan_for(small_script(), video=FAST_VIDEO)
    with_intro = plan_for(small_script(), intro=Intro(key="intros/x.mp4", digest="abc"))
    assert base.nodes["video:es"].key != other.nodes["video:es"].key
    assert base.nodes["tts:es:0"].key == other.nodes["tts:es:0"].key
    assert base.nodes["segment:0"].key != other.nodes["segment:0"].key
    assert "intro" in with_intro.nodes and "intro" in with_intro.nodes["video:es"].deps
    assert with_intro.nodes["subs:es"].key != base.nodes["subs:es"].key


def test_seeds_are_stable_and_per_scene():
    plan = plan_for(small_script())
    seeds = [plan.nodes[f"image:{i}"].params["seed"] for i in range(3)]
    assert len(set(seeds)) == 3 and seeds == [
        plan_for(small_script()).nodes[f"image:{i}"].params["seed"] for i in range(3)
    ]


def test_colliding_scene_labels_are_disambiguated():
    data = small_script()
    data["scenes"][0]["scene_id"] = "a/b"
    data["scenes"][1]["scene_id"] = "a_b"
    plan = plan_for(data)
    assert "image:000_a_b" in plan.nodes and "image:001_a_b" in plan.nodes


def test_plan_sample_rate_is_the_audio_modules():
    from zray.media import audio
    from zray.pipeline import plan

    assert plan.SAMPLE_RATE == audio.SAMPLE_RATE
