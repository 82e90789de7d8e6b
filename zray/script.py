"""The episode script: the seed's JSON input, validated into a typed model.

Structure is checked by pydantic; the rules that span fields (every scene narrated in every
language, unique scene ids, saga/episode from the file name) are checked afterwards so that each
problem is reported once, at its own JSON path.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from zray import limits
from zray.errors import InvalidInput
from zray.input_files import InputFileError, file_problem, json_depth, kind_problem, read_input

LANG_PATTERN = r"[a-z]{2,3}(?:-[a-z0-9]{2,8})?"
_SCRIPT_KEY = re.compile(rf"^script_({LANG_PATTERN})$")
_CHAPTER_KEY = re.compile(rf"^chapter_({LANG_PATTERN})$")
_ANY_SCRIPT_KEY = re.compile(r"^script_(.+)$")
_FILE_NUMBERS = re.compile(r"saga[\s_-]*0*(\d+).*?ep(?:isode)?[\s_-]*0*(\d+)", re.IGNORECASE)

NonEmpty = Field(min_length=1)
SCRIPT_MAX_DEPTH = 32  # a script nests five levels; deeper is not a script (and could blow a parser's stack)
THUMB_TEXT_MAX_CHARS = 100  # a thumbnail headline; longer text would be unreadable at any size
MEDIA_FIELDS = ("image_file", "clip_file")


@dataclass(frozen=True)
class ScriptLimits:
    """Caps checked before a script is read or run (config `[limits]`)."""

    narration_chars: int = 5_000  # one scene's narration in one language
    script_bytes: int = 5 * 1024 * 1024  # the script file


class Variant(BaseModel):
    model_config = ConfigDict(extra="allow")
    title: str = Field(
        min_length=1, description="A title for YouTube; the first variant's is the video's title."
    )
    thumb_text: str | None = Field(
        default=None,
        max_length=THUMB_TEXT_MAX_CHARS,
        description="Headline drawn on this thumbnail variant (default: the title).",
    )


class Seo(BaseModel):
    model_config = ConfigDict(extra="allow")
    variants: list[Variant] = Field(
        default_factory=list, description="Title and thumbnail text variants; variant 1 is the official one."
    )
    description: str = Field("", description="The YouTube description (the chapter list is appended).")
    tags: list[str] = Field(
        default_factory=list, description="YouTube tags (public; zray adds two of its own)."
    )
    thumbnail_prompt: str | None = Field(
        None, description="Image prompt for the thumbnail's base picture (default: the first scene's)."
    )
    thumbnail_file: str | None = Field(
        None, description="The studio's own thumbnail base image, relative to the script's folder."
    )


class Scene(BaseModel):
    """One scene; narration and chapter names live in `script_<lang>` / `chapter_<lang>` keys."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "patternProperties": {
                rf"^script_{LANG_PATTERN}$": {
                    "type": "string",
                    "minLength": 1,
                    "description": "The scene's narration in that language (script_es, script_en, ...).",
                },
                rf"^chapter_{LANG_PATTERN}$": {
                    "type": "string",
                    "description": "The chapter this scene belongs to, in that language (YouTube chapters).",
                },
            }
        },
    )
    scene_id: int | str = Field(description="Unique within the script; names the scene's files.")
    image_prompt: str = Field(
        min_length=1, description="What the scene's picture shows (the image model's prompt)."
    )
    image_file: str | None = Field(
        None,
        description="The studio's own picture instead of a generated one, relative to the script's folder.",
    )
    clip_file: str | None = Field(
        None, description="The studio's own video clip for this scene, relative to the script's folder."
    )
    clip_audio: float | None = Field(
        None,
        ge=0,
        le=1,
        allow_inf_nan=False,
        description="Level (0-1) of the clip's own sound; without it the clip is silent.",
    )
    gap: float | None = Field(
        None,
        ge=0,
        le=10,
        allow_inf_nan=False,
        description="Seconds of silence after this scene's narration (overrides audio.scene_gap).",
    )
    motion: Literal["none", "gentle", "generate"] | None = Field(
        None,
        description="How this scene's picture moves (overrides video.motion): still, a gentle camera move, "
        "or a clip generated from it by the video engine.",
    )
    motion_prompt: str | None = Field(
        None,
        min_length=1,
        description="How the picture should move, for motion generate (default: the image prompt).",
    )

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
    project_title: str = Field(
        min_length=1, description="The series' title; a video's title when it has no SEO variant."
    )
    saga: int | None = Field(
        default=None,
        gt=0,
        description="Saga number; if left out, taken from the file name (SAGA_01_Episode_22.json -> 1).",
    )
    episode: int | None = Field(
        default=None,
        gt=0,
        description="Episode number; if left out, taken from the file name (SAGA_01_Episode_22.json -> 22).",
    )
    date_published: datetime | None = Field(
        None,
        description="When the episode goes public (a future date schedules it on YouTube and the website).",
    )
    global_music_prompt: str | None = Field(None, description="What the background music should sound like.")
    music_file: str | None = Field(
        None, description="A track of the studio's music library (library.folder) to use as background music."
    )
    scenes: list[Scene] = Field(min_length=1, description="The scenes, in order.")
    seo: dict[str, Seo] = Field(
        default_factory=dict, description="Per language: titles, description, tags, thumbnails."
    )

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


def check_data(
    data: Any, *, filename: str = "", limits: ScriptLimits = ScriptLimits(), folder: Path | None = None
) -> Checked:
    """Validate parsed JSON; never raises for bad input. With `folder` (the script's), files the
    script names (image_file, clip_file, thumbnail_file) must exist there."""
    if not isinstance(data, dict):
        return Checked(None, [Problem("", f"the root must be a JSON object, not {_json_type(data)}")], [])
    errors: list[Problem] = []
    warnings: list[Problem] = _unknown_keys(data)
    errors += _check_scene_keys(data, limits)
    errors += _check_media(data, folder)
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


def check_text(
    text: str, *, filename: str = "", limits: ScriptLimits = ScriptLimits(), folder: Path | None = None
) -> Checked:
    if not text.strip():
        return Checked(None, [Problem("", "the file is empty")], [])
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return Checked(None, [Problem("", json_problem(exc))], [])
    except RecursionError:
        data = None
    if (data is None and text.strip() != "null") or json_depth(data) > SCRIPT_MAX_DEPTH:
        return Checked(
            None, [Problem("", f"nested more than {SCRIPT_MAX_DEPTH} levels deep; a script has a few")], []
        )
    return check_data(data, filename=filename, limits=limits, folder=folder)


# The json module's messages, as a person fixing the file by hand would put them.
_JSON_MESSAGES = {
    "Unterminated string starting at": 'a string starts here and is never closed (a missing ")',
    "Expecting property name enclosed in double quotes": (
        "expected a key in double quotes (a comma before '}', or a key in single quotes?)"
    ),
    "Expecting ':' delimiter": "expected ':' after the key",
    "Expecting ',' delimiter": "expected ',' between two items (or a missing closing bracket)",
    "Expecting value": "expected a value (a string, number, true/false/null, list or object)",
    "Extra data": "text after the end of the script (one closing bracket too many?)",
    "Invalid control character at": "a line break or tab inside a string (write \\n or \\t)",
    "Invalid \\escape": "a backslash that starts no known escape (write \\\\ for a backslash)",
}


def json_problem(exc: json.JSONDecodeError) -> str:
    """One line for a broken JSON file: where, what in plain words, and the text around it."""
    message = _JSON_MESSAGES.get(exc.msg, exc.msg[:1].lower() + exc.msg[1:])
    line = exc.doc.splitlines()[exc.lineno - 1] if exc.doc.strip() else ""
    start = max(0, exc.colno - 1 - 30)
    excerpt = line[start : exc.colno - 1 + 10].strip()
    near = f" near {excerpt!r}" if excerpt else ""
    return f"not valid JSON at line {exc.lineno}, column {exc.colno}: {message}{near}"


def check_file(path: str | Path, *, limits: ScriptLimits = ScriptLimits()) -> Checked:
    path = Path(path)
    try:
        info = path.stat()
        problem = kind_problem(info.st_mode)
        if problem:
            return Checked(None, [Problem("", f"not a regular file ({problem})")], [])
        if info.st_size > limits.script_bytes:
            return Checked(
                None,
                [
                    Problem(
                        "",
                        f"the file is {info.st_size:,} bytes; scripts are limited to {limits.script_bytes:,} "
                        "(limits.script_bytes)",
                    )
                ],
                [],
            )
        raw = read_input(path, limit=limits.script_bytes)
    except InputFileError as exc:
        return Checked(None, [Problem("", f"cannot read the file: {exc}")], [])
    except OSError as exc:
        return Checked(None, [Problem("", f"cannot read the file: {exc.strerror or exc}")], [])
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return Checked(None, [Problem("", f"not UTF-8 text (byte {exc.start})")], [])
    return check_text(text, filename=path.name, limits=limits, folder=path.resolve().parent)


def load_script(path: str | Path, *, limits: ScriptLimits = ScriptLimits()) -> tuple[Script, list[Problem]]:
    """Load a script or raise ScriptError; returns the script and its warnings."""
    checked = check_file(path, limits=limits)
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
    elif kind == "finite_number":
        message = f"{err.get('input')!r} is not a number; give a finite number"
    elif kind == "string_too_short":
        message = "must not be empty"
    elif kind == "too_short" and err["loc"] == ("scenes",):
        message = "needs at least one scene"
    else:
        message = err["msg"][0].lower() + err["msg"][1:]
    return Problem(path, message)


def speakable(text: str) -> bool:
    """Whether a voice can say something: at least one letter or digit once invisible format
    characters (zero-width spaces and joiners) are left out."""
    return any(unicodedata.category(c)[0] in "LN" for c in text if unicodedata.category(c) != "Cf")


def _check_scene_keys(data: dict[str, Any], limits: ScriptLimits) -> list[Problem]:
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
                code = key.removeprefix("script_")
                message = (
                    "language code must be lowercase, like script_es"
                    if re.fullmatch(LANG_PATTERN, code.lower())
                    else f"{_short(code)} is not a language code (like es or pt-br): only letters, "
                    "digits and one hyphen, no path characters"
                )
                problems.append(Problem(f"scenes.{i}.{key}", message))
            elif not isinstance(value, str):
                problems.append(Problem(f"scenes.{i}.{key}", f"must be a string, not {_json_type(value)}"))
            elif is_script and not value.strip():
                problems.append(Problem(f"scenes.{i}.{key}", "empty narration"))
            elif is_script and not speakable(value):
                problems.append(
                    Problem(
                        f"scenes.{i}.{key}",
                        "nothing to say: only punctuation, spaces or invisible characters",
                    )
                )
            elif is_script and len(value) > limits.narration_chars:
                problems.append(
                    Problem(
                        f"scenes.{i}.{key}",
                        f"narration is {len(value):,} characters; a scene's is limited to "
                        f"{limits.narration_chars:,} (limits.narration_chars): split the scene",
                    )
                )
    return problems


def _check_media(data: dict[str, Any], folder: Path | None) -> list[Problem]:
    """The studio's own files: a relative path inside the script's folder tree, never a URL; one of
    image_file or clip_file per scene; present on disk when the script's folder is known."""
    problems: list[Problem] = []
    named: list[tuple[str, Any]] = []
    for i, scene in enumerate(data.get("scenes") or [] if isinstance(data.get("scenes"), list) else []):
        if not isinstance(scene, dict):
            continue
        if scene.get("image_file") is not None and scene.get("clip_file") is not None:
            problems.append(Problem(f"scenes.{i}", "give image_file or clip_file, not both"))
        if scene.get("clip_file") is not None and scene.get("motion") == "generate":
            problems.append(
                Problem(f"scenes.{i}.motion", "a clip_file moves already: motion generate needs a picture")
            )
        named += [(f"scenes.{i}.{field}", scene.get(field)) for field in MEDIA_FIELDS]
    seo = data.get("seo")
    if isinstance(seo, dict):
        named += [
            (f"seo.{lang}.thumbnail_file", v.get("thumbnail_file"))
            for lang, v in seo.items()
            if isinstance(v, dict)
        ]
    for where, value in named:
        if not isinstance(value, str):
            continue  # absent, or the wrong type (pydantic says so)
        if "://" in value:
            problems.append(
                Problem(where, f"{_short(value)} is a URL; give a file path relative to the script")
            )
        elif Path(value).is_absolute() or ".." in Path(value).parts:
            problems.append(Problem(where, f"{_short(value)} must be a path inside the script's folder"))
        elif folder is not None and (problem := file_problem(folder / value)):
            problems.append(Problem(where, f"{_short(value)}: {problem} next to the script"))
    return problems


def _short(value: str, limit: int = 80) -> str:
    """A value as messages show it: quoted and cut, so a huge value never floods the console."""
    return repr(value) if len(value) <= limit else repr(value[: limit - 3] + "...")


# Every key a script may hold, by where it sits: unknown keys are warned about with the nearest one.
_TOP_KEYS = tuple(Script.model_fields)
_SCENE_KEYS = tuple(Scene.model_fields)
_SEO_KEYS = tuple(Seo.model_fields)
_VARIANT_KEYS = tuple(Variant.model_fields)


def _unknown_keys(data: dict[str, Any]) -> list[Problem]:
    import difflib

    def check(where: str, keys: Any, known: tuple[str, ...]) -> list[Problem]:
        out = []
        for key in keys:
            if not isinstance(key, str) or key in known:
                continue
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            if (
                not close
                and known is _SEO_KEYS
                and difflib.get_close_matches(key, ["title", "titles"], cutoff=0.6)
            ):
                hint = '; titles go in variants: [{"title": ...}]'

            out.append(Problem(f"{where}{key}", f"unknown key, ignored{hint}"))
        return out

    problems = check("", data, _TOP_KEYS)
    scenes = data.get("scenes") if isinstance(data.get("scenes"), list) else []
    languages = sorted(
        {m.group(1) for s in scenes if isinstance(s, dict) for k in s if (m := _SCRIPT_KEY.match(k))}
    )
    per_language = tuple(f"{prefix}_{lang}" for lang in languages for prefix in ("script", "chapter"))
    for i, scene in enumerate(scenes):
        if isinstance(scene, dict):
            keys = [k for k in scene if not (_SCRIPT_KEY.match(k) or _CHAPTER_KEY.match(k))]
            problems += check(f"scenes.{i}.", keys, _SCENE_KEYS + per_language)
    seo = data.get("seo") if isinstance(data.get("seo"), dict) else {}
    for lang, entry in seo.items():
        if isinstance(entry, dict):
            problems += check(f"seo.{lang}.", entry, _SEO_KEYS)
            variants = entry.get("variants") if isinstance(entry.get("variants"), list) else []
            for j, variant in enumerate(variants):
                if isinstance(variant, dict):
                    problems += check(f"seo.{lang}.variants.{j}.", variant, _VARIANT_KEYS)
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
