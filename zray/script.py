"""The episode script: the seed's JSON input, validated into a typed model.

Structure is checked by pydantic; the rules that span fields (every scene narrated in every
language, unique scene ids, saga/episode from the file name) are checked afterwards so that each
problem is reported once, at its own JSON path.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from zray import limits
from zray.errors import InvalidInput

LANG_PATTERN = r"[a-z]{2,3}(?:-[a-z0-9]{2,8})?"
_SCRIPT_KEY = re.compile(rf"^script_({LANG_PATTERN})$")
_CHAPTER_KEY = re.compile(rf"^chapter_({LANG_PATTERN})$")
_ANY_SCRIPT_KEY = re.compile(r"^script_(.+)$")
_FILE_NUMBERS = re.compile(r"saga[\s_-]*0*(\d+).*?ep(?:isode)?[\s_-]*0*(\d+)", re.IGNORECASE)

NonEmpty = Field(min_length=1)


class Variant(BaseModel):
    model_config = ConfigDict(extra="allow")
    title: str = Field(min_length=1)
    thumb_text: str | None = None


class Seo(BaseModel):
    model_config = ConfigDict(extra="allow")
    variants: list[Variant] = Field(default_factory=list)
    description: str = ""
    tags: list[str] = Field(default_factory=list)
    thumbnail_prompt: str | None = None


class Scene(BaseModel):
    """One scene; narration and chapter names live in `script_<lang>` / `chapter_<lang>` keys."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "patternProperties": {
                rf"^script_{LANG_PATTERN}$": {"type": "string", "minLength": 1},
                rf"^chapter_{LANG_PATTERN}$": {"type": "string"},
            }
        },
    )
    scene_id: int | str
    image_prompt: str = Field(min_length=1)

    def narration(self, lang: str) -> str:
        return str((self.model_extra or {})[f"script_{lang}"])

    def chapter(self, lang: str) -> str | None:
        value = (self.model_extra or {}).get(f"chapter_{lang}")
        return value.strip() or None if isinstance(value, str) else None

    def languages(self) -> list[str]:
        return [m.group(1) for key in (self.model_extra or {}) if (m := _SCRIPT_KEY.match(key))]


class Script(BaseModel):
    """An episode script. `saga`/`episode` are resolved (JSON or file name) by `load_script`."""

    model_config = ConfigDict(extra="allow")
    project_title: str = Field(min_length=1)
    saga: int | None = Field(default=None, gt=0)
    episode: int | None = Field(default=None, gt=0)
    date_published: datetime | None = None
    global_music_prompt: str | None = None
    scenes: list[Scene] = Field(min_length=1)
    seo: dict[str, Seo] = Field(default_factory=dict)

    @property
    def languages(self) -> list[str]:
        """Languages in order of first appearance in the scenes."""
        seen: dict[str, None] = {}
        for scene in self.scenes:
            for lang in scene.languages():
                seen.setdefault(lang)
        return list(seen)

    def seo_for(self, lang: str) -> Seo:
        return self.seo.get(lang) or Seo()

    def title(self, lang: str) -> str:
        """The language's first SEO variant title, else the project title (the seed's rule)."""
        variants = self.seo_for(lang).variants
        return variants[0].title if variants else self.project_title

    @property
    def code(self) -> str:
        return f"S{self.saga or 0:02d}E{self.episode or 0:02d}"


@dataclass(frozen=True)
class Problem:
    """One thing wrong (or worth a warning) in a script, at a dotted JSON path."""

    path: str
    message: str

    def render(self, file: str) -> str:
        return f"{file}: {self.path}: {self.message}" if self.path else f"{file}: {self.message}"


@dataclass
class Checked:
    script: Script | None
    errors: list[Problem]
    warnings: list[Problem]

    @property
    def ok(self) -> bool:
        return self.script is not None and not self.errors


class ScriptError(InvalidInput, ValueError):
    """A script that cannot be used; `problems` holds every reason, one line each."""

    def __init__(self, file: str, problems: list[Problem]):
        self.file = file
        self.problems = problems
        super().__init__("\n".join(p.render(file) for p in problems))

    def lines(self) -> list[str]:
        return [p.render(self.file) for p in self.problems]


def numbers_from_filename(name: str) -> tuple[int, int] | None:
    match = _FILE_NUMBERS.search(Path(name).stem)
    return (int(match.group(1)), int(match.group(2))) if match else None


def check_data(data: Any, *, filename: str = "") -> Checked:
    """Validate parsed JSON; never raises for bad input."""
    if not isinstance(data, dict):
        return Checked(None, [Problem("", f"the root must be a JSON object, not {_json_type(data)}")], [])
    errors: list[Problem] = []
    warnings: list[Problem] = []
    errors += _check_scene_keys(data)
    scenes = (
        [s for s in data.get("scenes") or [] if isinstance(s, dict)]
        if isinstance(data.get("scenes"), list)
        else []
    )
    errors += _check_languages(scenes)
    errors += _check_scene_ids(scenes)
    try:
        script = Script.model_validate(data)
    except ValidationError as exc:
        errors += [_from_pydantic(err) for err in exc.errors()]
        return Checked(None, _sorted(errors), warnings)
    _resolve_numbers(script, filename, errors, warnings)
    warnings += _youtube_warnings(script)
    return Checked(script if not errors else None, _sorted(errors), warnings)


def check_text(text: str, *, filename: str = "") -> Checked:
    if not text.strip():
        return Checked(None, [Problem("", "the file is empty")], [])
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return Checked(
            None, [Problem("", f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")], []
        )
    return check_data(data, filename=filename)


def check_file(path: str | Path) -> Checked:
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return Checked(None, [Problem("", f"cannot read the file: {exc.strerror or exc}")], [])
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return Checked(None, [Problem("", f"not UTF-8 text (byte {exc.start})")], [])
    return check_text(text, filename=path.name)


def load_script(path: str | Path) -> tuple[Script, list[Problem]]:
    """Load a script or raise ScriptError; returns the script and its warnings."""
    checked = check_file(path)
    if not checked.ok:
        raise ScriptError(str(path), checked.errors)
    assert checked.script is not None
    return checked.script, checked.warnings


def json_schema() -> dict[str, Any]:
    schema = Script.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "zray episode script"
    return schema


# --- checks ----------------------------------------------------------------------------------


def _json_type(value: Any) -> str:
    return {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )


def _from_pydantic(err: Any) -> Problem:
    path = ".".join(str(part) for part in err["loc"])
    kind = err["type"]
    if kind == "missing":
        message = "missing"
    elif kind == "string_too_short":
        message = "must not be empty"
    elif kind == "too_short" and err["loc"] == ("scenes",):
        message = "needs at least one scene"
    else:
        message = err["msg"][0].lower() + err["msg"][1:]
    return Problem(path, message)


def _check_scene_keys(data: dict[str, Any]) -> list[Problem]:
    """Narration keys are free-form (`script_<lang>`), so pydantic cannot type them."""
    problems: list[Problem] = []
    scenes = data.get("scenes")
    if not isinstance(scenes, list):
        return problems
    for i, scene in enumerate(scenes):
        if not isinstance(scene, dict):
            continue
        for key, value in scene.items():
            if not key.startswith(("script_", "chapter_")):
                continue
            is_script = key.startswith("script_")
            if is_script and not _SCRIPT_KEY.match(key):
                problems.append(
                    Problem(f"scenes.{i}.{key}", "language code must be lowercase, like script_es")
                )
            elif not isinstance(value, str):
                problems.append(Problem(f"scenes.{i}.{key}", f"must be a string, not {_json_type(value)}"))
            elif is_script and not value.strip():
                problems.append(Problem(f"scenes.{i}.{key}", "empty narration"))
    return problems


def _scene_languages(scene: dict[str, Any]) -> list[str]:
    return [m.group(1) for key in scene if (m := _SCRIPT_KEY.match(key))]


def _check_languages(scenes: list[dict[str, Any]]) -> list[Problem]:
    if not scenes:
        return []
    languages = list(dict.fromkeys(lang for scene in scenes for lang in _scene_languages(scene)))
    if not languages:
        return [Problem("scenes", "no narration: add script_<lang> keys (script_es, script_en, ...)")]
    problems = []
    for i, scene in enumerate(scenes):
        have = set(_scene_languages(scene))
        problems += [
            Problem(f"scenes.{i}.script_{lang}", "missing narration")
            for lang in languages
            if lang not in have
        ]
    return problems


def _check_scene_ids(scenes: list[dict[str, Any]]) -> list[Problem]:
    first: dict[str, int] = {}
    problems = []
    for i, scene in enumerate(scenes):
        if "scene_id" not in scene or isinstance(scene["scene_id"], (dict, list, bool)):
            continue
        key = str(scene["scene_id"])
        if key in first:
            problems.append(
                Problem(f"scenes.{i}.scene_id", f"duplicate scene_id {key!r} (also scenes.{first[key]})")
            )
        elif not key.strip():
            problems.append(Problem(f"scenes.{i}.scene_id", "must not be empty"))
        else:
            first[key] = i
    return problems


def _resolve_numbers(script: Script, filename: str, errors: list[Problem], warnings: list[Problem]) -> None:
    from_name = numbers_from_filename(filename) if filename else None
    for index, field in enumerate(("saga", "episode")):
        value = getattr(script, field)
        named = from_name[index] if from_name else None
        if value is None and named is None:
            errors.append(
                Problem(field, "missing, and the file name does not say it (like SAGA_01_Episode_22.json)")
            )
        elif value is None:
            if named is not None and named <= 0:
                errors.append(Problem(field, f"the file name gives {named}; must be a positive integer"))
            setattr(script, field, named)
        elif named is not None and named != value:
            warnings.append(Problem(field, f"JSON says {value}, file name says {named}; using {value}"))


def _youtube_warnings(script: Script) -> list[Problem]:
    warnings = []
    for lang, seo in script.seo.items():
        for i, variant in enumerate(seo.variants):
            warnings += [
                Problem(f"seo.{lang}.variants.{i}.title", m) for m in limits.title_problems(variant.title)
            ]
        warnings += [
            Problem(f"seo.{lang}.description", m) for m in limits.description_problems(seo.description)
        ]
        # The two tags zray adds to every upload count toward the limit too.
        tags = limits.tags_problems(seo.tags, add_zray_tags=True)
        warnings += [Problem(f"seo.{lang}.tags", m) for m in tags]
    return warnings


def _sorted(problems: list[Problem]) -> list[Problem]:
    """Unique problems in document order (scenes.2 before scenes.10)."""

    def order(problem: Problem) -> list[tuple[int, int | str]]:
        return [(0, int(p)) if p.isdigit() else (1, p) for p in problem.path.split(".")]

    return sorted(dict.fromkeys(problems), key=order)
