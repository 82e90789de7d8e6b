"""YouTube's metadata limits, shared by script validation (warnings) and the uploader (refusals)."""

from __future__ import annotations

from collections.abc import Sequence

TITLE_MAX_CHARS = 100
DESCRIPTION_MAX_BYTES = 5000
TAGS_MAX_CHARS = 500
FORBIDDEN_TITLE_CHARS = "<>"
# zray tags every upload with two tags of its own (`zray.publish.youtube.metadata.zray_tags`): the
# video's slot, `zray-<16 hex>`, and the content it was made from, `zray-c-<16 hex>`. Their lengths
# are fixed, so a script's tags can be checked against the limit before its episode is known.
ZRAY_TAG_LENGTHS = (21, 23)


def tags_length(tags: Sequence[str], *, add_zray_tags: bool = False) -> int:
    """Length of a tag list as YouTube counts it (with zray's own two tags when asked).

    YouTube joins tags with commas and wraps a tag that contains a space in quotes, and
    the 500-character limit applies to that joined text.
    """
    if add_zray_tags:
        tags = [*tags, *("z" * n for n in ZRAY_TAG_LENGTHS)]
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


def tags_problems(tags: Sequence[str], *, add_zray_tags: bool) -> list[str]:
    """`add_zray_tags`: the list is a script's, without the two tags zray adds on upload (they count)."""
    size = tags_length(tags, add_zray_tags=add_zray_tags)
    if size > TAGS_MAX_CHARS:
        ours = sum(ZRAY_TAG_LENGTHS) + len(ZRAY_TAG_LENGTHS)
        return [
            f"tags add up to {size} characters as YouTube counts them, {ours} of them zray's own two tags "
            f"(they keep a video from being uploaded twice), YouTube allows {TAGS_MAX_CHARS}"
        ]
    return []
