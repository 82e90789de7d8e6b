"""A video slot: one video of an episode on YouTube, the unit that is uploaded exactly once.

A language's long video is a slot; so is each of its Shorts. A slot names its file and content
key in the episode folder, its metadata, its record entry (`es`, `es/short-01`) and its slot tag
(`Identity.slot`), which never changes with a rebuild, a title edit or an upgrade of zray. Every
step of the uploader (planning, the never-twice insert, thumbnail, captions) works on slots, so
a new kind of video is one more function here that builds them.
"""

from __future__ import annotations

from dataclasses import dataclass

from zray import limits
from zray.episode import Episode, node_id, scene_labels
from zray.nodes import ShortFile


@dataclass(frozen=True)
class ShortThumbnail:
    """What a Short's 9:16 thumbnail is made from (see zray.publish.youtube.short_thumbnails)."""

    picture: str  # its first scene's picture, relative to the episode folder
    text: str  # its chapter


@dataclass(frozen=True)
class VideoSlot:
    name: str  # its entry in published.json and upload_state.json
    lang: str
    tag: str  # the slot tag: `identity.slot(lang, part)`
    video: str  # the file, relative to the episode folder
    content_key: str  # what the file was made from (run.json); changes whenever its picture or sound would
    title: str
    description: str  # the SEO text; the chapter list and hashtags follow it
    tags: tuple[str, ...] = ()
    chapters: str = ""  # "0:00 Title" lines, long videos only
    thumbnail: str | None = None  # None: no thumbnails.set
    subtitles: str | None = None  # an SRT; None: no captions track (a Short's captions are burned in)
    # A Short's thumbnail, set once YouTube has processed the Short; None: none.
    short_thumbnail: ShortThumbnail | None = None


def long_video(episode: Episode, lang: str) -> VideoSlot:
    """A language's long video, with its chapters, thumbnail and captions."""
    script = episode.script
    seo = script.seo_for(lang)
    return VideoSlot(
        name=lang,
        lang=lang,
        tag=episode.identity.slot(lang),
        video=episode.video(lang),
        content_key=episode.content_key(lang),
        title=script.title(lang).strip(),
        description=seo.description,
        tags=_tags(seo.tags),
        chapters=episode.chapters(lang),
        thumbnail=episode.thumbnail(lang),
        subtitles=episode.subtitles(lang),
    )


def short_name(lang: str, number: int) -> str:
    return f"{lang}/{short_part(number)}"


def short_part(number: int) -> str:
    return f"short-{number:02d}"


def short_video(
    episode: Episode,
    lang: str,
    number: int,
    *,
    video: str,
    content_key: str,
    title: str,
    description: str,
    tags: tuple[str, ...] = (),
    thumbnail: ShortThumbnail | None = None,
) -> VideoSlot:
    """One of a language's Shorts: its own file, metadata and slot tag; no chapter list and no
    captions calls (its captions are burned in; each call would cost 450 units); its thumbnail is
    set once YouTube has processed it."""
    return VideoSlot(
        name=short_name(lang, number),
        lang=lang,
        tag=episode.identity.slot(lang, short_part(number)),
        video=video,
        content_key=content_key,
        title=title.strip(),
        description=description,
        tags=_tags(tags),
        short_thumbnail=thumbnail,
    )


def short_thumbnail_for(episode: Episode, short: ShortFile) -> ShortThumbnail | None:
    """A Short's thumbnail: the picture of its first scene that has one (a studio clip has none; with
    `shorts.images = "generate"` the vertical picture) and its chapter; None when no scene of it
    has a picture in the episode's record."""
    labels = scene_labels(episode.script)
    for index in short.scenes:
        if not 0 <= index < len(labels):
            continue
        for node in (node_id("image_v", labels[index]), node_id("image", labels[index])):
            outputs = episode.nodes.get(node, {}).get("outputs") or []
            if outputs and isinstance(outputs[0], str):
                return ShortThumbnail(picture=outputs[0], text=short.title)
    return None


# "Full video" in the languages zray's demo and users' scripts speak; others get English.
FULL_VIDEO = {
    "es": "Vídeo completo",
    "ca": "Vídeo complet",
    "en": "Full video",
    "pt": "Vídeo completo",
    "fr": "Vidéo complète",
    "it": "Video completo",
    "de": "Ganzes Video",
}


def short_title(chapter: str, episode_title: str, *, number: int, count: int) -> str:
    """A Short's title: its chapter and the episode's title, within YouTube's 100 characters (the
    episode's title shortened first); a Short without a chapter of its own is numbered instead."""
    chapter, episode_title = " ".join(chapter.split()), " ".join(episode_title.split())
    if chapter == episode_title:
        return _fit(episode_title, f" ({number}/{count})")
    return _fit(chapter, f" · {episode_title}")


def _fit(head: str, tail: str, limit: int = limits.TITLE_MAX_CHARS) -> str:
    if len(head) + len(tail) <= limit:
        return head + tail
    if len(head) + 4 <= limit and tail.startswith(" · "):
        return head + tail[: limit - len(head) - 1].rstrip() + "…"
    return head[: limit - 1].rstrip() + "…"


def short_description(description: str, lang: str, long_video_id: str | None) -> str:
    """The language's description, the long video's address as text (links in a Short's description
    are not clickable), and #Shorts."""
    parts = [description.strip()]
    if long_video_id:
        label = FULL_VIDEO.get(lang.split("-")[0].lower(), FULL_VIDEO["en"])
        parts.append(f"{label}: https://www.youtube.com/watch?v={long_video_id}")
    parts.append("#Shorts")
    return "\n\n".join(part for part in parts if part)


def episode_shorts(episode: Episode, lang: str, *, long_video_id: str | None) -> list[VideoSlot]:
    """A language's Shorts as the last run made them, one slot each (`<lang>/short-<nn>`); the long
    video's id, when it is on YouTube, goes into their descriptions."""
    script = episode.script
    seo = script.seo_for(lang)
    made = episode.shorts(lang)
    return [
        short_video(
            episode,
            lang,
            short.number,
            video=short.path,
            content_key=short.key,
            title=short_title(short.title, script.title(lang), number=short.number, count=len(made)),
            description=short_description(seo.description, lang, long_video_id),
            tags=tuple(seo.tags),
            thumbnail=short_thumbnail_for(episode, short),
        )
        for short in made
    ]


def _tags(tags: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(t.strip() for t in tags if t.strip()))
