import json

import pytest
from typer.testing import CliRunner

from zray.cli import app
from zray.script import check_data, check_text, json_schema, load_script, numbers_from_filename


def scene(i, **extra):
    return {
        "scene_id": i,
        "image_prompt": f"prompt {i}",
        "script_es": f"Hola {i}.",
        "script_en": f"Hi {i}.",
        **extra,
    }


def script(**overrides):
    data = {
        "project_title": "El Bosque",
        "saga": 1,
        "episode": 22,
        "date_published": "2025-01-15T18:00:00Z",
        "global_music_prompt": "ambient",
        "scenes": [scene(0), scene(1)],
        "seo": {"es": {"variants": [{"title": "Título", "thumb_text": "¡SÍ!"}], "tags": ["a"]}},
    }
    data.update(overrides)
    return data


def errors(data, filename="x.json"):
    return [f"{p.path}: {p.message}" for p in check_data(data, filename=filename).errors]


def test_valid_script_exposes_languages_titles_and_narration():
    checked = check_data(script(), filename="SAGA_01_Episode_22.json")
    assert checked.ok, checked.errors
    s = checked.script
    assert s.languages == ["es", "en"]
    assert s.title("es") == "Título" and s.title("en") == "El Bosque"
    assert s.scenes[1].narration("en") == "Hi 1."
    assert s.code == "S01E22"
    assert s.date_published.year == 2025


def test_missing_narration_names_scene_and_key():
    data = script(
        scenes=[scene(0), scene(1), scene(2), {"scene_id": 3, "image_prompt": "p", "script_es": "x"}]
    )
    assert errors(data) == ["scenes.3.script_en: missing narration"]


def test_empty_and_wrong_typed_fields():
    data = script(scenes=[scene(0, script_es="  "), scene(1, image_prompt=""), scene(2, script_en=5)])
    assert errors(data) == [
        "scenes.0.script_es: empty narration",
        "scenes.1.image_prompt: must not be empty",
        "scenes.2.script_en: must be a string, not a number",
    ]


def test_duplicate_scene_ids_and_missing_fields():
    data = script(scenes=[scene(0), scene(0)])
    del data["project_title"]
    assert errors(data) == [
        "project_title: missing",
        "scenes.1.scene_id: duplicate scene_id '0' (also scenes.0)",
    ]


def test_scene_order_is_list_order_and_ids_are_labels():
    s = check_data(script(scenes=[scene("b"), scene("a")])).script
    assert [sc.scene_id for sc in s.scenes] == ["b", "a"]


def test_saga_episode_from_file_name_and_json_wins_with_warning():
    data = script()
    del data["saga"], data["episode"]
    checked = check_data(data, filename="SAGA_03_Episode_07.json")
    assert checked.ok and (checked.script.saga, checked.script.episode) == (3, 7)
    checked = check_data(script(), filename="SAGA_01_Episode_23.json")
    assert checked.ok and checked.script.episode == 22
    assert [w.path for w in checked.warnings] == ["episode"]
    assert errors(data, filename="notes.json") == [
        "episode: missing, and the file name does not say it (like SAGA_01_Episode_22.json)",
        "saga: missing, and the file name does not say it (like SAGA_01_Episode_22.json)",
    ]
    assert errors(script(saga=0)) == ["saga: input should be greater than 0"]
    assert numbers_from_filename("saga-2_ep5.json") == (2, 5)


def test_bad_date_and_unknown_keys_kept():
    assert errors(script(date_published="15/01/2025"))[0].startswith("date_published: ")
    s = check_data(script(extra_field={"x": 1})).script
    assert s.model_extra["extra_field"] == {"x": 1}


def test_youtube_limit_warnings():
    seo = {
        "es": {
            "variants": [{"title": "x" * 101}, {"title": "a <b>"}],
            "description": "é" * 2501,
            "tags": ["tag with spaces"] * 30,
        }
    }
    checked = check_data(script(seo=seo))
    assert checked.ok
    paths = [w.path for w in checked.warnings]
    assert paths == [
        "seo.es.variants.0.title",
        "seo.es.variants.1.title",
        "seo.es.description",
        "seo.es.tags",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the file is empty"),
        ("[1, 2]", "the root must be a JSON object, not an array"),
        ("{oops", "not valid JSON"),
    ],
)
def test_not_a_script(text, message):
    checked = check_text(text)
    assert not checked.ok and checked.errors[0].message.startswith(message)


def test_schema_describes_narration_keys():
    schema = json_schema()
    scene_schema = schema["$defs"]["Scene"]
    assert any(k.startswith("^script_") for k in scene_schema["patternProperties"])
    assert "scenes" in schema["required"]


def test_load_script_raises_with_every_problem(tmp_path):
    path = tmp_path / "SAGA_01_Episode_01.json"
    path.write_text(
        json.dumps(script(scenes=[scene(0), {"scene_id": 1, "image_prompt": "p", "script_es": "x"}]))
    )
    with pytest.raises(ValueError, match=r"scenes\.1\.script_en: missing narration"):
        load_script(path)


class TestCli:
    runner = CliRunner()

    def test_validate_ok_and_bad_files(self, tmp_path):
        good = tmp_path / "SAGA_01_Episode_01.json"
        good.write_text(json.dumps(script()))
        (tmp_path / "empty.json").write_text("")
        (tmp_path / "list.json").write_text("[]")
        (tmp_path / "broken.json").write_text("{")
        (tmp_path / "latin1.json").write_bytes('{"a": "T\xedtulo"}'.encode("latin-1"))
        gap = tmp_path / "gap.json"
        gap.write_text(
            json.dumps(script(scenes=[scene(0), {"scene_id": 1, "image_prompt": "p", "script_en": "x"}]))
        )
        names = [
            "SAGA_01_Episode_01.json",
            "empty.json",
            "list.json",
            "broken.json",
            "latin1.json",
            "gap.json",
            "missing.json",
        ]
        result = self.runner.invoke(app, ["validate", *[str(tmp_path / n) for n in names]])
        assert result.exit_code == 2
        out = result.output
        assert f"{good}: OK" in out
        assert f"{tmp_path / 'empty.json'}: the file is empty" in out
        assert f"{tmp_path / 'list.json'}: the root must be a JSON object" in out
        assert f"{tmp_path / 'broken.json'}: not valid JSON" in out
        assert f"{tmp_path / 'latin1.json'}: not UTF-8 text" in out
        assert f"{gap}: scenes.1.script_es: missing narration" in out
        assert f"{tmp_path / 'missing.json'}: cannot read the file" in out
        assert "Traceback" not in out

    def test_validate_all_ok_exits_zero(self, tmp_path):
        good = tmp_path / "SAGA_01_Episode_01.json"
        good.write_text(json.dumps(script()))
        assert self.runner.invoke(app, ["validate", str(good)]).exit_code == 0

    def test_schema_is_json(self):
        result = self.runner.invoke(app, ["schema"])
        assert result.exit_code == 0 and json.loads(result.output)["title"] == "zray episode script"


def test_the_tag_warning_counts_the_two_tags_zray_adds_on_upload():
    # Nine tags of 50 characters: 458 as YouTube counts them, 504 with zray's slot and content tags.
    near = [f"{n:02d}" + "x" * 48 for n in range(9)]
    [warning] = check_data(script(seo={"es": {"tags": near}})).warnings
    assert warning.path == "seo.es.tags"
    assert "504 characters" in warning.message and "zray's own two tags" in warning.message
    assert not check_data(script(seo={"es": {"tags": near[:8]}})).warnings
