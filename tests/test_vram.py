"""The VRAM table (zray.engines.vram) and what reads it: the actors' GPU shares and doctor's advice
on the image memory mode for a card."""

from __future__ import annotations

import pytest

from zray.config import ActorsConfig, load_config
from zray.engines.musicgen import MusicGenSettings
from zray.engines.vram import (
    CONTEXT_GIB,
    FOOTPRINTS,
    IMAGE_MODES,
    USABLE,
    advise_image_memory,
    engine_footprint,
    footprint,
    markdown_table,
    shares,
)
from zray.engines.zimage import MEMORY_MODES, ZImageSettings

MUSIC = {"music": footprint("musicgen-small", "graphs").gib, "voices": footprint("kokoro", "resident").gib}


def test_every_image_mode_is_in_the_table_fastest_first() -> None:
    assert IMAGE_MODES == MEMORY_MODES
    modes = {row.mode.split("+")[0] for row in FOOTPRINTS if row.engine == "zimage"}
    assert modes == set(MEMORY_MODES)
    assert all(row.gib > 0 and row.source for row in FOOTPRINTS)


def test_engine_settings_find_their_row() -> None:
    assert engine_footprint("zimage", ZImageSettings()).mode == "resident"
    assert engine_footprint("zimage", ZImageSettings(memory="group_offload", vae_tiling=True)).mode == (
        "group_offload+vae_tiling"
    )
    # A mode measured only with tiling on is the closest row the table has.
    assert engine_footprint("zimage", ZImageSettings(memory="model_offload", vae_tiling=True)).gib == 13.89
    assert engine_footprint("zimage", ZImageSettings(memory="model_offload")) is None
    assert engine_footprint("musicgen", MusicGenSettings()).engine == "musicgen-small"
    assert engine_footprint("musicgen", MusicGenSettings()).mode == "graphs"  # auto is graphs on a GPU
    assert engine_footprint("musicgen", MusicGenSettings(model="facebook/musicgen-medium")).engine == (
        "musicgen-medium"
    )
    assert engine_footprint("musicgen", MusicGenSettings(model="facebook/musicgen-large")) is None
    assert engine_footprint("kokoro", None).gib > 0
    assert engine_footprint("storyboard", None) is None


def test_shares_follow_memory_and_fit_one_card() -> None:
    got = shares({"image": 20.3, "tts": 1.0, "music": 2.0})
    assert sum(got.values()) <= 1
    assert got["image"] > got["music"] > got["tts"] >= 0.01
    assert got["image"] == pytest.approx(20.3 / 23.3, abs=0.01)
    tiny = shares({"image": 100.0, "tts": 0.001, "music": 0.001})
    assert tiny["tts"] == tiny["music"] == 0.01 and sum(tiny.values()) <= 1


@pytest.mark.parametrize(
    ("card", "mode"),
    [
        (15.6, "sequential_offload"),  # a 16 GB card: all three fit only with Z-Image layer by layer
        (19.6, "group_offload"),  # a 20 GB card holds all three with Z-Image in groups
        (23.6, "group_offload"),  # a 24 GB card does not hold all three resident at 1920x1072
        (40.0, "resident"),
        (79.1, "resident"),
    ],
)
def test_doctor_advice_is_the_fastest_mode_that_fits_with_music_and_voices(card: float, mode: str) -> None:
    advice = advise_image_memory(card, others=MUSIC)
    assert advice.mode == mode and advice.fits
    assert advice.needed_gib <= USABLE * card
    assert advice.parts["CUDA contexts"] == 3 * CONTEXT_GIB
    faster = IMAGE_MODES[: IMAGE_MODES.index(mode)]
    for better in faster:
        row = footprint("zimage", better) or footprint("zimage", f"{better}+vae_tiling")
        assert row.gib + sum(MUSIC.values()) + 3 * CONTEXT_GIB > USABLE * card


def test_a_card_too_small_for_any_mode_says_what_it_would_need() -> None:
    advice = advise_image_memory(4.0, others=MUSIC)
    assert advice.mode is None and not advice.fits
    lean = min(r.gib for r in FOOTPRINTS if r.engine == "zimage")
    assert advice.needed_gib == round(lean + sum(MUSIC.values()) + 1.5, 2)


def test_a_12_gb_card_holds_z_image_alone_not_all_three_models() -> None:
    """Measured on the H200: Z-Image's group offload peaks at 9.31 GiB reserved with its text
    encoder, within 11 GiB; MusicGen and Kokoro beside it do not fit a 12 GB card as well."""
    assert advise_image_memory(11.7, others={}).mode == "group_offload"
    assert footprint("zimage", "group_offload").gib <= 11.0
    assert advise_image_memory(11.7, others=MUSIC).mode is None


def test_readme_table_marks_estimates() -> None:
    table = markdown_table()
    assert table.count("\n") == len(FOOTPRINTS) + 1
    assert "| zimage | resident | 28.32 |" in table
    assert "~5 (estimate)" in table


# --- the actors' shares ------------------------------------------------------------------------------

ray = pytest.importorskip("ray")
from zray.actors.placement import GPU_SHARE, actor_plans, role_footprints  # noqa: E402

PRODUCTION = {"image": True, "tts": True, "music": True}


def production_roles(memory: str = "resident") -> dict:
    return {
        "image": [("zimage", ZImageSettings(memory=memory))],
        "tts": [("kokoro", None)],
        "music": [("musicgen", MusicGenSettings())],
    }


def test_actor_shares_come_from_the_vram_table() -> None:
    footprints = role_footprints(production_roles())
    table = {
        "image": footprint("zimage", "resident").gib,
        "tts": footprint("kokoro", "resident").gib,
        "music": footprint("musicgen-small", "graphs").gib,
    }
    assert footprints == table
    plans = actor_plans(ActorsConfig(), PRODUCTION, 2, footprints=footprints)
    got = {role: share for role, (share, _, _) in plans.items()}
    assert got == shares(table)
    assert [count for _, count, _ in plans.values()] == [2, 2, 2]
    # The 12 GB mode leaves music and voices a larger part of the card.
    lean = actor_plans(
        ActorsConfig(), PRODUCTION, 1, footprints=role_footprints(production_roles("group_offload"))
    )
    assert lean["image"][0] < got["image"] and lean["music"][0] > got["music"]


def test_configured_shares_win_and_unknown_engines_keep_the_fixed_ones() -> None:
    actors = ActorsConfig.model_validate({"music": {"num_gpus": 0.25}})
    plans = actor_plans(actors, PRODUCTION, 1, footprints=role_footprints(production_roles()))
    assert plans["music"][0] == 0.25
    custom = role_footprints({**production_roles(), "image": [("my.module:Engine", None)]})
    assert custom["image"] is None
    plans = actor_plans(ActorsConfig(), PRODUCTION, 1, footprints=custom)
    assert {role: share for role, (share, _, _) in plans.items()} == {role: GPU_SHARE[role] for role in plans}
    assert actor_plans(ActorsConfig(), PRODUCTION, 0, footprints=custom)["image"][0] == 0.0  # no GPUs
    # With a video actor too, the fixed shares would add up to more than a card: scaled to fit one.
    with_video = actor_plans(ActorsConfig(), {**PRODUCTION, "video": True}, 1, footprints=custom)
    assert sum(share for share, _, _ in with_video.values()) <= 1.0
    assert with_video["video"][0] > with_video["tts"][0] > 0


def test_the_video_model_is_in_the_memory_table() -> None:
    from zray.engines.wan import WanSettings

    resident = engine_footprint("wan", WanSettings())
    offloaded = engine_footprint("wan", WanSettings(memory="group_offload"))
    assert resident is not None and offloaded is not None
    assert offloaded.gib < resident.gib
    assert "wan" in markdown_table()


# --- doctor ------------------------------------------------------------------------------------------


def doctor_checks(card: float, **models):
    from zray.doctor import memory_checks
    from zray.pipeline.engine_setup import choose_engines

    config = load_config(None, profile="production", quiet=True, models=models)
    return memory_checks(choose_engines(config, ["es"], profile="production"), [card])


def test_doctor_turns_red_when_the_configured_mode_does_not_fit_and_names_the_one_that_does() -> None:
    (check,) = doctor_checks(23.6)
    assert not check.ok
    assert "models.image_memory = 'resident' needs about" in check.what
    assert check.fix.startswith("set models.image_memory = 'group_offload'")
    (check,) = doctor_checks(23.6, image_memory="group_offload")
    assert check.ok and "'group_offload' fits" in check.what
    # A 12 GB card holds Z-Image (group offload, 9.3 GiB measured) but not music and voices beside it.
    (check,) = doctor_checks(11.7, image_memory="group_offload")
    assert not check.ok and "cannot hold Z-Image, music and voices together" in check.what
    (check,) = doctor_checks(79.1, image_memory="group_offload")
    assert check.ok and "'resident' is recommended for this card" in check.what
    (check,) = doctor_checks(3.0, image_memory="sequential_offload")
    assert not check.ok and "cannot hold Z-Image" in check.what


def test_doctor_says_nothing_of_image_memory_without_z_image_or_a_gpu() -> None:
    from zray.doctor import memory_checks
    from zray.pipeline.engine_setup import choose_engines

    draft = choose_engines(load_config(None, profile="draft", quiet=True), ["es"], profile="draft")
    assert memory_checks(draft, [11.7]) == []
    assert doctor_checks(11.7)  # production on a card: advice
    production = choose_engines(
        load_config(None, profile="production", quiet=True), ["es"], profile="production"
    )
    assert memory_checks(production, []) == []


def test_doctor_says_per_card_whether_clips_fit_beside_the_other_models() -> None:
    from zray.doctor import video_checks
    from zray.pipeline.engine_setup import choose_engines

    def checks(card: float, **models):
        config = load_config(None, profile="production", quiet=True, models=models)
        return video_checks(choose_engines(config, ["es"], profile="production"), [card])

    (big,) = checks(79.1)
    assert big.ok and big.note and "clips with wan resident fit" in big.what and "estimate" in big.what
    (small,) = checks(23.6, image_memory="group_offload")
    assert small.note and "set models.video_memory" in small.what
    # Wan offloaded (about 14 GiB) and Z-Image offloaded (9.3) with music and voices: more than 24 GB.
    (offloaded,) = checks(23.6, image_memory="group_offload", video_memory="group_offload")
    assert "give the clips their own GPU" in offloaded.what
    (roomy,) = checks(47.5, image_memory="group_offload", video_memory="group_offload")
    assert "fit beside the other models" in roomy.what
    draft = choose_engines(load_config(None, profile="draft", quiet=True), ["es"], profile="draft")
    assert video_checks(draft, [79.1]) == []  # parallax runs on the CPU
