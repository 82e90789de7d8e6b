"""review.json: its shape and binding to content keys, the plan inputs it gives, the upload and
publish gate, and `zray review --approve` (no server, no browser)."""

from __future__ import annotations

import dataclasses
import getpass
import io
import json
import logging
from pathlib import Path

import pytest
from conftest import needs_extra, small_script
from PIL import Image
from typer.testing import CliRunner

from zray.cli import app
from zray.config import load_config
from zray.episode import Identity, RecordError, open_episode
from zray.nodes import ImageResult, ThumbsInputs, ThumbsRequest
from zray.pipeline.plan import Identities, build_plan
from zray.review.record import (
    ForeignReview,
    ReviewOverrides,
    ReviewRecord,
    SceneSeed,
    not_approved_line,
    plan_overrides,
    unapproved,
    update_review,
)
from zray.script import check_data
from zray.store import Store

IDENTITIES = Identities(
    image={"engine": "storyboard"},
    music={"engine": "a"},
    speech={"es": {"engine": "espeak"}, "ca": {"engine": "espeak"}},
)
ME = Identity("proj", 1, 2)


def two_variants() -> dict:
    data = small_script()
    data["seo"]["es"]["variants"] = [
        {"title": "Uno", "thumb_text": "UNO"},
        {"title": "Dos", "thumb_text": "DOS"},
    ]
    return data


def plan_keys(data: dict, review: ReviewOverrides | None = None) -> dict[str, str]:
    script = check_data(data, filename="SAGA_01_Episode_02.json").script
    plan = build_plan(
        script, languages=script.languages, identities=IDENTITIES, config=load_config(None), review=review
    )
    return {node_id: node.key for node_id, node in plan.nodes.items()}


def changed(before: dict[str, str], after: dict[str, str]) -> set[str]:
    return {node_id for node_id in before if before[node_id] != after[node_id]}


# --- what the plan takes from review.json ----------------------------------------------------------


def test_a_new_seed_changes_exactly_that_scene_picture_its_segment_and_the_videos():
    data = two_variants()
    before = plan_keys(data)
    after = plan_keys(data, ReviewOverrides(seeds={1: SceneSeed("1", 42)}))
    assert changed(before, after) == {"image:1", "segment:1", "video:es", "video:ca"}
    script = check_data(data, filename="SAGA_01_Episode_02.json").script
    plan = build_plan(
        script,
        languages=script.languages,
        identities=IDENTITIES,
        config=load_config(None),
        review=ReviewOverrides(seeds={1: SceneSeed("1", 42)}),
    )
    assert plan.nodes["image:1"].request.seed == 42
    # No overrides at all keeps every key as it was before review existed.
    assert plan_keys(data, ReviewOverrides()) == before


def test_a_seed_chosen_for_a_scene_that_moved_is_not_handed_to_its_neighbour():
    data = two_variants()
    before = plan_keys(data)
    assert plan_keys(data, ReviewOverrides(seeds={1: SceneSeed("7", 42)})) == before


def generated_plan(review: ReviewOverrides | None = None, **shorts):
    data = two_variants()
    data["scenes"][1]["motion"] = "generate"
    script = check_data(data, filename="SAGA_01_Episode_02.json").script
    identities = dataclasses.replace(IDENTITIES, video={"engine": "parallax", "max_pixels": None})
    config = load_config(None, shorts={"enabled": bool(shorts), **shorts})
    return build_plan(script, languages=script.languages, identities=identities, config=config, review=review)


def test_a_new_clip_seed_changes_the_clip_and_what_shows_it_but_not_the_picture():
    before = {n: node.key for n, node in generated_plan().nodes.items()}
    plan = generated_plan(ReviewOverrides(clip_seeds={1: SceneSeed("1", 42)}))
    after = {n: node.key for n, node in plan.nodes.items()}
    assert plan.nodes["clip:1"].request.seed == 42
    assert changed(before, after) == {"clip:1", "motion:1", "tail:es:1", "tail:ca:1", "video:es", "video:ca"}
    # With Shorts, vertical clips too: the new seed is the scene's clip's, in both shapes.
    before = {n: node.key for n, node in generated_plan(images="generate").nodes.items()}
    plan = generated_plan(ReviewOverrides(clip_seeds={1: SceneSeed("1", 42)}), images="generate")
    after = {n: node.key for n, node in plan.nodes.items()}
    assert {"clip:1", "clip_v:1", "shorts:es", "shorts:ca"} <= changed(before, after)
    assert not any(n.startswith(("image", "pad:", "tts:")) for n in changed(before, after))
    assert plan.nodes["clip_v:1"].request.seed == 42
    # A clip seed chosen for a scene that has since moved is not handed to its neighbour.
    assert {
        n: node.key
        for n, node in generated_plan(
            ReviewOverrides(clip_seeds={1: SceneSeed("7", 42)}), images="generate"
        ).nodes.items()
    } == before


def test_a_new_picture_gives_a_new_clip_too():
    before = generated_plan().nodes
    after = generated_plan(ReviewOverrides(seeds={1: SceneSeed("1", 42)})).nodes
    assert after["image:1"].key != before["image:1"].key
    assert after["clip:1"].key != before["clip:1"].key
    assert after["clip:1"].request.seed != before["clip:1"].request.seed  # derived from the picture's
    # A clip seed chosen in review stays the clip's when the picture changes (its picture is new).
    both = generated_plan(ReviewOverrides(seeds={1: SceneSeed("1", 42)}, clip_seeds={1: SceneSeed("1", 7)}))
    assert both.nodes["clip:1"].request.seed == 7 and both.nodes["clip:1"].key != after["clip:1"].key


def test_the_chosen_thumbnail_variant_changes_only_that_languages_thumbnail_key():
    data = two_variants()
    before = plan_keys(data)
    after = plan_keys(data, ReviewOverrides(thumbnails={"es": 2}))
    assert changed(before, after) == {"thumbs:es"}
    # A variant the script no longer has falls back to the first: nothing changes.
    assert plan_keys(data, ReviewOverrides(thumbnails={"es": 9})) == before


def test_the_thumbnail_step_copies_the_chosen_variant_as_the_official_thumbnail(tmp_path: Path):
    from zray.pipeline.steps import thumbs

    store = Store(str(tmp_path))
    buffer = io.BytesIO()
    Image.new("RGB", (1280, 720), (30, 90, 160)).save(buffer, format="PNG")
    store.write_bytes("base.png", buffer.getvalue())
    request = ThumbsRequest(
        texts=("UNO", "DOS"),
        lang="es",
        official="thumbnail_es.png",
        variants=("v1.png", "v2.png"),
        official_variant=2,
    )
    thumbs(store, request, ThumbsInputs(base=ImageResult(path="base.png")))
    assert store.read_bytes("thumbnail_es.png") == store.read_bytes("v2.png")
    assert store.read_bytes("v1.png") != store.read_bytes("v2.png")


# --- the record ------------------------------------------------------------------------------------


def test_approvals_are_bound_to_content_keys_and_say_who_and_when(tmp_path: Path):
    store = Store(str(tmp_path))
    record = update_review(store, ME, lambda r: r.approve("es", {"video:es": "k1"}), command="test")
    assert record.approved("es", {"video:es": "k1"})
    again = ReviewRecord(store, ME)
    assert again.approved("es", {"video:es": "k1"})
    assert again.state("es", {"video:es": "k2"}) == "outdated"  # rebuilt since: withdrawn by itself
    assert not again.approved("es", {"video:es": "k2"})
    assert again.state("ca", {"video:ca": "k"}) == "none"
    data = json.loads((tmp_path / "review.json").read_text())
    assert data["identity"] == ME.to_json()
    entry = data["approvals"]["es"]
    assert entry["keys"] == {"video:es": "k1"} and entry["by"] == getpass.getuser() and entry["at"]
    update_review(store, ME, lambda r: r.withdraw("es"), command="test")
    data = json.loads((tmp_path / "review.json").read_text())
    assert data["approvals"] == {}
    assert [h["action"] for h in data["history"]] == ["approve", "withdraw"]


def test_seeds_and_thumbnail_choices_round_trip_into_plan_overrides(tmp_path: Path):
    store = Store(str(tmp_path))

    def edit(record: ReviewRecord) -> None:
        record.set_seed(2, "2", 123)
        record.set_thumbnail("es", 2)
        record.set_thumbnail("ca", 1)  # the default: recorded as no entry

    update_review(store, ME, edit, command="test")
    overrides = plan_overrides(store, ME)
    assert overrides.seed_for(2, "2") == 123 and overrides.seed_for(1, "1") is None
    assert overrides.thumbnail_for("es", 2) == 2 and overrides.thumbnail_for("ca", 2) == 1
    update_review(store, ME, lambda r: r.set_seed(2, "2", None), command="test")
    assert plan_overrides(store, ME).seed_for(2, "2") is None


def test_a_clip_seed_round_trips_apart_from_the_picture_seed(tmp_path: Path):
    store = Store(str(tmp_path))
    update_review(store, ME, lambda r: r.set_clip_seed(1, "1", 99), command="test")
    overrides = plan_overrides(store, ME)
    assert overrides.clip_seed_for(1, "1") == 99 and overrides.seed_for(1, "1") is None
    assert overrides.clip_seed_for(1, "7") is None  # the scene there has another id now
    record = json.loads((tmp_path / "review.json").read_text())
    assert record["clips"]["1"]["seed"] == 99 and record["history"][-1]["action"] == "clip seed"
    with pytest.raises(ValueError, match="seed 4294967296"):
        update_review(store, ME, lambda r: r.set_clip_seed(1, "1", 2**32), command="test")
    update_review(store, ME, lambda r: r.set_clip_seed(1, "1", None), command="test")
    assert plan_overrides(store, ME).clip_seed_for(1, "1") is None
    assert "clips" not in json.loads((tmp_path / "review.json").read_text())


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("not json", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('{"identity": {"project": 1}}', "identity is malformed"),
        ('{"identity": IDENT, "approvals": {"es": {"keys": "k"}}}', "approvals entry 'es'"),
        ('{"identity": IDENT, "scenes": {"1": {"seed": -1, "scene_id": "1"}}}', "scenes entry '1'"),
        ('{"identity": IDENT, "scenes": {"one": {"seed": 1, "scene_id": "1"}}}', "scene's position"),
        ('{"identity": IDENT, "clips": {"1": {"seed": "x", "scene_id": "1"}}}', "clips entry '1'"),
        ('{"identity": IDENT, "clips": {"one": {"seed": 1, "scene_id": "1"}}}', "scene's position"),
        ('{"identity": IDENT, "thumbnails": {"es": {"variant": 0}}}', "thumbnails entry 'es'"),
        ('{"identity": IDENT, "approvals": []}', "`approvals` must be a JSON object"),
    ],
)
def test_a_review_record_of_the_wrong_shape_is_one_line_naming_the_file(tmp_path: Path, content, problem):
    (tmp_path / "review.json").write_text(content.replace("IDENT", json.dumps(ME.to_json())))
    with pytest.raises(RecordError) as caught:
        ReviewRecord(Store(str(tmp_path)), ME)
    message = str(caught.value)
    assert problem in message and "review.json" in message and "\n" not in message
    with pytest.raises(RecordError):  # the plan refuses it too: a run would lose the chosen seeds
        plan_overrides(Store(str(tmp_path)), ME)


def test_a_hand_written_record_without_identity_is_this_episodes(tmp_path: Path):
    (tmp_path / "review.json").write_text('{"thumbnails": {"es": {"variant": 2}}}')
    assert plan_overrides(Store(str(tmp_path)), ME).thumbnail_for("es", 2) == 2
    (tmp_path / "review.json").write_text("{}")
    assert plan_overrides(Store(str(tmp_path)), ME) == ReviewOverrides()


def test_another_episodes_review_record_is_refused_and_ignored_by_the_plan(tmp_path: Path, caplog):
    other = Identity("proj", 1, 1)
    update_review(Store(str(tmp_path)), other, lambda r: r.set_seed(0, "0", 5), command="test")
    with pytest.raises(ForeignReview, match="belongs to episode proj/S01E01"):
        ReviewRecord(Store(str(tmp_path)), ME)
    with caplog.at_level(logging.WARNING, logger="zray"):
        assert plan_overrides(Store(str(tmp_path)), ME) == ReviewOverrides()
    assert "ignored" in caplog.text


# --- the gate --------------------------------------------------------------------------------------


@pytest.fixture
def youtube_folder(tmp_path: Path) -> Path:
    needs_extra("publish")  # the fake server's client is httplib2's
    from youtube_episode import noise_mp4, write_episode

    video = noise_mp4(tmp_path / "noise.mp4")
    buffer = io.BytesIO()
    Image.new("RGB", (1280, 720), (0, 80, 0)).save(buffer, format="PNG")
    return write_episode(tmp_path, video, buffer.getvalue())


def test_upload_skips_every_unapproved_language_with_one_line_and_fails(tmp_path: Path, youtube_folder: Path):
    needs_extra("publish")
    from fake_youtube import FakeYouTube
    from youtube_episode import change_video_key, fake_options, youtube_settings

    from zray.publish.settings import YouTubeConfig
    from zray.publish.youtube import upload_episode

    cert = tmp_path / "cert"
    cert.mkdir()
    with FakeYouTube(cert) as fake:
        config = YouTubeConfig(**youtube_settings(tmp_path, fake))

        def upload(**options):
            return upload_episode(
                open_episode(str(youtube_folder)),
                fake_options(config, fake, **options),
                require_review=True,
            )

        folder = open_episode(str(youtube_folder)).url
        report = upload()
        assert report.lines() == [not_approved_line(lang, folder) for lang in ("es", "pt-br")]
        assert report.lines()[0] == f"es: not approved in review (zray review {folder})"
        assert not report.ok and fake.videos == {}

        result = CliRunner().invoke(app, ["review", str(youtube_folder), "--approve", "ES"])
        assert result.exit_code == 0, result.output
        assert result.output.strip() == "es: approved (video:es video-es-1)"
        report = upload()
        assert [r.action for r in report.results] == ["uploaded", "unapproved"]
        assert not report.ok and len(fake.videos) == 1

        # A rebuild that changes the video's key withdraws the approval by itself.
        change_video_key(youtube_folder, "es")
        assert unapproved(open_episode(str(youtube_folder)), ["es"]) == ["es"]
        report = upload(force=True)
        assert [r.action for r in report.results] == ["unapproved", "unapproved"]
        assert len(fake.videos) == 1
        # Without the setting, nothing is held back.
        assert upload_episode(
            open_episode(str(youtube_folder)),
            fake_options(config, fake),
            langs=["pt-br"],
        ).ok


def test_upload_and_publish_commands_obey_review_required(tmp_path: Path, youtube_folder: Path, monkeypatch):
    needs_extra("publish")
    monkeypatch.setenv("ZRAY_REVIEW__REQUIRED", "true")
    monkeypatch.setenv("ZRAY_YOUTUBE__TOKEN_DIR", str(tmp_path / "no-tokens"))
    folder = open_episode(str(youtube_folder)).url
    runner = CliRunner()
    result = runner.invoke(app, ["upload", str(youtube_folder)])
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        f"es: not approved in review (zray review {folder})",
        f"pt-br: not approved in review (zray review {folder})",
    ]
    assert runner.invoke(app, ["review", str(youtube_folder), "--approve", "pt-br"]).exit_code == 0
    site = tmp_path / "site"
    result = runner.invoke(app, ["publish", str(youtube_folder), "--site", str(site)])
    assert result.exit_code == 1
    assert result.stdout.splitlines()[0] == f"es: not approved in review (zray review {folder})"
    published = sorted(p.name for p in site.rglob("*") if p.is_file())
    assert "video.pt-br.mp4" in published and "video.es.mp4" not in published
    monkeypatch.setenv("ZRAY_REVIEW__REQUIRED", "false")
    assert runner.invoke(app, ["publish", str(youtube_folder), "--site", str(site)]).exit_code == 0
    assert (site / "saga-01" / "episode-01" / "video.es.mp4").exists()


def test_review_approve_refuses_an_unknown_language_in_one_line(youtube_folder: Path):
    result = CliRunner().invoke(app, ["review", str(youtube_folder), "--approve", "xx"])
    assert result.exit_code == 2
    assert result.stderr.strip().startswith("zray: --approve xx: the episode has no such language")
    assert not (youtube_folder / "review.json").exists()
    result = CliRunner().invoke(app, ["review", str(youtube_folder), "--approve", "es", "--shorts"])
    assert result.exit_code == 1 and "has no Shorts" in result.stderr


def test_review_refuses_a_non_loopback_host_without_allow_remote(youtube_folder: Path):
    result = CliRunner().invoke(app, ["review", str(youtube_folder), "--host", "0.0.0.0", "--no-browser"])
    assert result.exit_code == 2
    assert "--allow-remote" in result.stderr and result.stdout == ""
