"""The command line in its own words: help without type placeholders, bad values named by their flag or
setting without the validation library's phrasing, broken JSON described where it breaks."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from zray.cli import app

COMMANDS = [
    ["validate"],
    ["schema"],
    ["run"],
    ["verify"],
    ["upload"],
    ["publish"],
    ["batch"],
    ["doctor"],
    ["review"],
    ["report"],
    ["auth", "youtube"],
    [],
]
PLACEHOLDER = re.compile(r"<(bool|str|int|float|path|list\[[^\]]*\])>|\{[a-z_]+\}")
LIBRARY_WORDS = re.compile(r"value error|input should be|invalid value for", re.IGNORECASE)


def invoke(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200", **(env or {})})


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "zray")
def test_help_shows_flags_as_flags_and_choices_as_choices(command):
    result = invoke(*command, "--help")
    assert result.exit_code == 0, result.output
    assert not PLACEHOLDER.search(result.output), PLACEHOLDER.search(result.output)
    if command == ["run"]:
        assert "auto|draft|production" in result.output
        assert re.search(r"Usage: .* run \[OPTIONS\] SCRIPT\s", result.output)
        assert re.search(r"--clean\s+Remove", result.output)  # a flag takes no value


def test_a_bad_choice_names_the_flag_and_the_choices():
    result = invoke("run", "script.json", "--profile", "fast")
    assert result.exit_code == 2
    assert result.stderr.strip() == "zray: --profile: 'fast' is not one of auto, draft, production"


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ["upload", "ep", "--privacy", "publik"],
            "zray: --privacy: 'publik' is not one of private, unlisted, public",
        ),
        (
            ["batch", "x", "--max-episodes-in-flight", "x"],
            "zray: --max-episodes-in-flight: 'x' is not a whole number",
        ),
        (
            ["batch", "x", "--max-episodes-in-flight", "0"],
            "zray: --max-episodes-in-flight: '0' is out of range: it must be at least 1",
        ),
        (["run"], "zray: missing SCRIPT"),
    ],
)
def test_bad_flags_are_one_line_in_zrays_words(args, line):
    result = invoke(*args)
    assert result.exit_code == 2
    assert result.stderr.strip() == line
    assert not LIBRARY_WORDS.search(result.output)


def test_a_bad_choice_from_the_environment_or_a_file(tmp_path):
    result = invoke("validate", str(tmp_path / "none.json"), env={"ZRAY_PROFILE": "fast"})
    assert result.stderr.strip() == (
        "zray: environment variable ZRAY_PROFILE: 'fast' is not one of auto, draft, production"
    )
    config = tmp_path / "zray.toml"
    config.write_text('[video]\npreset = "fastest"\nwidth = "wide"\n')
    result = invoke("validate", str(tmp_path / "none.json"), "--config", str(config))
    assert result.exit_code != 0
    line = result.stderr.strip()
    assert line.startswith("zray: setting video.") and str(config) in line, line
    assert "'fastest' is not one of fast, final" in line or "'wide' is not a whole number" in line
    assert not LIBRARY_WORDS.search(result.output)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('{"title": "Hola', 'at line 1, column 11: a string starts here and is never closed (a missing ")'),
        ('{\n  "title": "x",\n}', "at line 3, column 1: expected a key in double quotes"),
        ('{"title": "x" "saga": 1}', "expected ',' between two items"),
        ('{"title": "x"}}', "text after the end of the script"),
    ],
)
def test_validate_describes_broken_json(tmp_path, text, words):
    path = tmp_path / "broken.json"
    path.write_text(text)
    result = invoke("validate", str(path))
    assert result.exit_code == 2
    line = result.output.strip()
    assert line.startswith(f"{path}: not valid JSON ") and words in line, line
    assert "at at" not in line and "Expecting" not in line


def test_a_clean_dry_run_lists_files_by_folder_and_ends_with_the_total():
    from zray.cli import removal_listing

    paths = ["es/video.mp4", "images/b.png", "images/a.png", "report.html"]
    sizes = {"es/video.mp4": 2_500_000, "images/a.png": 100_000, "images/b.png": 150_000, "report.html": 1}
    assert removal_listing(paths, sizes) == [
        "es/ (1 file, 2.5 MB)",
        "  video.mp4",
        "images/ (2 files, 0.2 MB)",
        "  a.png",
        "  b.png",
        "./ (1 file, 0.0 MB)",
        "  report.html",
        "4 files (2.8 MB) would be removed; nothing deleted",
    ]


def test_the_readme_gives_commands_as_the_user_types_them():
    """After the two first-run lines, every command in a code block is typed through the venv; no line
    starts with a bare `pip install`, `zray run` or `zray review`; the rerun command is named."""
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    lines = readme.splitlines()
    bare = [line for line in lines if line.lstrip().startswith(("pip install", "zray run", "zray review"))]
    assert not bare, bare
    commands, inside = [], False
    for line in lines:
        if line.startswith("```"):
            inside = not inside
        elif inside and re.match(r"\s*(\.venv/|python3? |pip |zray |ray )", line):
            commands.append(line.strip())
    assert commands[0].startswith("python3 -m venv .venv") and commands[1].startswith("python3 -m venv .venv")
    for command in commands[2:]:
        assert command.startswith(".venv/bin/"), command
    demo = commands[0].rsplit(" && ", 1)[1]
    assert demo.startswith(".venv/bin/zray run ") and f"`{demo}`" in readme  # how to rerun, alone


def test_a_test_that_needs_an_extra_skips_naming_it():
    from conftest import EXTRA_MODULES, needs_extra

    with pytest.raises(pytest.skip.Exception) as skipped:
        needs_extra("publish", "zray_no_such_module")
    assert str(skipped.value) == (
        "needs the publish extra (zray_no_such_module): .venv/bin/pip install -e '.[publish]'"
    )
    import tomllib
    from pathlib import Path

    extras = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())
    assert set(EXTRA_MODULES) <= set(extras["project"]["optional-dependencies"])


def test_the_final_table_says_why_each_step_ran(tmp_path):
    """A run, then a rerun after one scene's Spanish narration changed: the final table of the rerun
    names the steps that ran and why, as --explain does."""
    import json as json_module

    from conftest import FAST_VIDEO, write_script

    script = write_script(tmp_path / "scripts" / "proj")
    env = {
        "ZRAY_EXECUTOR": "in-process",
        "ZRAY_VIDEO__WIDTH": str(FAST_VIDEO["width"]),
        "ZRAY_VIDEO__HEIGHT": str(FAST_VIDEO["height"]),
        "ZRAY_VIDEO__PRESET": "fast",
    }
    args = ["run", str(script), "--output", str(tmp_path / "out"), "--profile", "draft", "--quiet"]
    first = invoke(*args, env=env)
    assert first.exit_code == 0, first.output
    # A first run: everything is missing, one line says so (not one line per step that needed it).
    (first_why,) = [line for line in first.stdout.splitlines() if re.match(r"\d+ steps?: ", line)]
    ran = re.search(r": (\d+) steps run", first.stdout).group(1)
    assert first_why.startswith(f"{ran} steps: not made yet ("), first.stdout
    data = json_module.loads(script.read_text())
    data["scenes"][1]["script_es"] += " Y una frase más."
    script.write_text(json_module.dumps(data, ensure_ascii=False))
    explained = invoke(*args, "--explain", env=env).stdout
    second = invoke(*args, env=env)
    assert second.exit_code == 0, second.output
    why = [line for line in second.stdout.splitlines() if re.match(r"\d+ steps?: ", line)]
    # "N steps: REASON (node, node)": each node's reason is the one --explain gave for it.
    told = {
        line.split(": ", 1)[0]: line.split(": ", 1)[1]
        for line in explained.splitlines()
        if ": " in line and "steps would run" not in line
    }
    ran = {}
    for line in why:
        reason, nodes = re.fullmatch(r"\d+ steps?: (.*) \((.*)\)", line).groups()
        ran.update(dict.fromkeys(nodes.split(", "), reason))
    assert ran == told, (why, explained)
    assert ran["tts:es:1"] == "scenes.1.script_es changed" and "video:ca" not in ran
