"""YouTube's metadata limits, shared by script validation (warnings) and the uploader (refusals)."""

from __future__ import annotations

from collections.abc import Sequence

TITLE_MAX_CHARS = 100
DESCRIPTION_MAX_BYTES = 5000
TAGS_MAX_CHARS = 500
FORBIDDEN_TITLE_CHARS = "<>"


def tags_length(tags: Sequence[str]) -> int:
    """Length of a tag list as YouTube counts it.

    YouTube joins tags with commas and wraps a tag that contains a space in quotes, and
    the 500-character limit applies to that joined text.
    """
    total = 0
    for tag in tags:
        total += len(tag) + (2 if " " in tag else 0)
    return total + max(len(tags) - 1, 0)


def title_problems(title: str) -> list[str]:
    problems = []
    if len(title) > TITLE_MAX_CHARS:
        problems.append(f"title is {len(title)} characters, YouTube allows {TITLE_MAX_CHARS}")
    bad = sorted({c for c in title if c in FORBIDDEN_TITLE_CHARS})
    if bad:
        problems.append(f"title contains {' and '.join(repr(c) for c in bad)}, which YouTube refuses")
    return problems


def description_problems(description: str) -> list[str]:
    size = len(description.encode("utf-8"))
    if size > DESCRIPTION_MAX_BYTES:
        return [f"description is {size} bytes, YouTube allows {DESCRIPTION_MAX_BYTES}"]
    if any(c in description for c in FORBIDDEN_TITLE_CHARS):
        return ["description contains '<' or '>', which YouTube refuses"]
    return []


def tags_problems(tags: Sequence[str]) -> list[str]:
    size = tags_length(tags)
    if size > TAGS_MAX_CHARS:
        return [f"tags add up to {size} characters as YouTube counts them, YouTube allows {TAGS_MAX_CHARS}"]
    return []
