"""What a video says on YouTube: title, description, tags, language, privacy and schedule.

Built from a video slot and checked against YouTube's limits before anything is sent. Every body
carries zray's two tags: the slot tag (which episode, language and part the video is) and the
content tag (which build of the file went up). They let YouTube itself answer "was this uploaded?"
when the folder's records are lost, so they are kept by every later update.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from zray import limits
from zray.episode import Episode
from zray.errors import ZrayError
from zray.keys import CONTENT_TAG_PREFIX, content_tag
from zray.publish.settings import Privacy, YouTubeConfig
from zray.publish.youtube.slots import VideoSlot, long_video

_ZRAY_TAG = re.compile(r"zray-(c-)?[0-9a-f]{16}")


class MetadataError(ZrayError, ValueError):
    """Metadata over one of YouTube's limits; refused before anything is sent."""


# --- zray's own tags -------------------------------------------------------------------------------


def is_zray_tag(tag: str) -> bool:
    return bool(_ZRAY_TAG.fullmatch(tag))


def user_tags(tags: Iterable[str]) -> list[str]:
    """The tags a person chose, without zray's."""
    return [tag for tag in tags if not is_zray_tag(tag)]


def tag_of(tags: Iterable[str], *, content: bool) -> str | None:
    """zray's slot tag (or content tag) among a video's tags."""
    for tag in tags:
        if is_zray_tag(tag) and tag.startswith(CONTENT_TAG_PREFIX) == content:
            return tag
    return None


# --- text ------------------------------------------------------------------------------------------


def youtube_language(code: str) -> str:
    """A script language code as YouTube's BCP-47 spelling: es, pt-BR, zh-Hant, es-419."""
    first, *rest = code.split("-")
    subtags = [first.lower()]
    for part in rest:
        if len(part) == 2 and part.isalpha():
            subtags.append(part.upper())  # region
        elif len(part) == 4 and part.isalpha():
            subtags.append(part.title())  # script
        else:
            subtags.append(part.lower())
    return "-".join(subtags)


def hashtags(tags: Iterable[str], count: int) -> list[str]:
    """The first `count` tags as hashtags (`deep sea` -> `#DeepSea`); a hashtag has no spaces."""
    found: list[str] = []
    for tag in tags if count > 0 else ():
        words = re.findall(r"\w+", tag)
        if not words:
            continue
        text = words[0] if len(words) == 1 else "".join(w[:1].upper() + w[1:] for w in words)
        candidate = f"#{text}"
        if candidate.lower() not in (f.lower() for f in found):
            found.append(candidate)
        if len(found) == count:
            break
    return found


def build_description(description: str, chapters: str, tags: Iterable[str], *, count: int) -> str:
    """SEO description, then the chapter list, then a few hashtags, separated by blank lines."""
    parts = [description.strip(), chapters.strip(), " ".join(hashtags(tags, count))]
    return "\n\n".join(part for part in parts if part)


def schedule_time(date_published: datetime | None, now: datetime) -> str | None:
    """`publishAt` (UTC, ISO 8601) for a date still to come; None when it has passed or is unset."""
    if date_published is None:
        return None
    moment = date_published if date_published.tzinfo else date_published.replace(tzinfo=UTC)
    if moment <= aware(now):
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- the body --------------------------------------------------------------------------------------


def slot_metadata(
    slot: VideoSlot,
    *,
    config: YouTubeConfig,
    privacy: Privacy | None,
    date_published: datetime | None,
    now: datetime,
    uploaded_tag: str | None = None,
) -> dict[str, Any]:
    """The videos.insert (or videos.update) body for one video slot.

    `uploaded_tag` is the content tag of the file already on YouTube, for an update: the content
    tag names what was uploaded, not what the folder holds now.
    """
    language = youtube_language(slot.lang)
    tags = list(slot.tags)
    snippet = {
        "title": slot.title,
        "description": build_description(slot.description, slot.chapters, tags, count=config.hashtags),
        "tags": [*tags, slot.tag, uploaded_tag or content_tag(slot.content_key)],
        "categoryId": config.category_id,
        "defaultLanguage": language,
        "defaultAudioLanguage": language,
    }
    status: dict[str, Any] = {
        "privacyStatus": privacy or config.privacy,
        "selfDeclaredMadeForKids": config.made_for_kids,
        "containsSyntheticMedia": config.synthetic_media,
    }
    publish_at = schedule_time(date_published, now)
    if publish_at:
        # YouTube publishes a scheduled video itself; until then it must be private.
        status.update(privacyStatus="private", publishAt=publish_at)
    return {"snippet": snippet, "status": status}


def build_metadata(
    episode: Episode, lang: str, *, config: YouTubeConfig, privacy: Privacy | None = None, now: datetime
) -> dict[str, Any]:
    """The videos.insert body (snippet and status) for one language's long video."""
    return slot_metadata(
        long_video(episode, lang),
        config=config,
        privacy=privacy,
        date_published=episode.script.date_published,
        now=now,
    )


def metadata_problems(body: Mapping[str, Any]) -> list[str]:
    """Everything over YouTube's limits, each naming the field and the numbers."""
    snippet = body["snippet"]
    problems = [f"snippet.title: {m}" for m in limits.title_problems(snippet["title"])]
    if not snippet["title"]:
        problems.append("snippet.title: empty")
    problems += [f"snippet.description: {m}" for m in limits.description_problems(snippet["description"])]
    problems += [f"snippet.tags: {m}" for m in limits.tags_problems(snippet["tags"], add_zray_tags=False)]
    return problems


def same_text(snippet: Mapping[str, Any], body: Mapping[str, Any]) -> bool:
    """Whether a video's snippet on YouTube says what `body` would (title, description, own tags)."""
    wanted = body["snippet"]
    return (
        snippet.get("title") == wanted["title"]
        and snippet.get("description") == wanted["description"]
        and user_tags(snippet.get("tags") or []) == user_tags(wanted["tags"])
    )


def aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def iso(moment: datetime) -> str:
    return aware(moment).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
