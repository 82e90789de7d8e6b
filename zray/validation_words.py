"""Validation errors in zray's own words: one pydantic error (from a setting, or a flag parsed by typer)
as a short sentence naming the bad value, without the library's phrasing ("Value error, ...",
"Input should be ...")."""

from __future__ import annotations

import re
from typing import Any

_QUOTED = re.compile(r"'([^']*)'")


def _choices(text: str) -> str:
    """`'a', 'b' or 'c'` -> `a, b, c`."""
    return ", ".join(_QUOTED.findall(text)) or text


def plain_message(err: Any) -> str:
    """A sentence for one error of `ValidationError.errors()` (a dict with type, msg, input, ctx)."""
    kind = str(err.get("type", ""))
    msg = str(err.get("msg", ""))
    value = err.get("input")
    ctx = err.get("ctx") or {}
    shown = repr(value)
    if kind in {"literal_error", "enum"}:
        return f"{shown} is not one of {_choices(str(ctx.get('expected', '')))}"
    if kind == "extra_forbidden":
        return "unknown setting"
    if kind == "missing":
        return "missing"
    if kind in {"int_parsing", "int_type", "int_from_float"}:
        return f"{shown} is not a whole number"
    if kind in {"float_parsing", "float_type"}:
        return f"{shown} is not a number"
    if kind in {"bool_parsing", "bool_type"}:
        return f"{shown} is not true or false"
    if kind in {"string_type"}:
        return f"{shown} is not text"
    if kind in {"list_type", "tuple_type"}:
        return f"{shown} is not a list"
    if kind in {"dict_type", "model_type", "model_attributes_type"}:
        return f"{shown} is not a table of settings"
    bounds = {
        "greater_than": "more than {gt}",
        "greater_than_equal": "at least {ge}",
        "less_than": "less than {lt}",
        "less_than_equal": "at most {le}",
    }
    if kind in bounds:
        return f"{shown} is out of range: it must be " + bounds[kind].format(**ctx)
    for prefix in ("Value error, ", "Assertion failed, "):
        msg = msg.removeprefix(prefix)
    # typer's choice check: "'fast' is not one of 'auto', 'draft', 'production'."
    found = re.fullmatch(r"(.*) is not one of (.*?)\.?", msg)
    if found:
        return f"{found.group(1)} is not one of {_choices(found.group(2))}"
    if msg.startswith("Input should be "):
        return f"{shown} must be {msg.removeprefix('Input should be ')}"
    return msg
