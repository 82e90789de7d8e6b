"""A video slot: one video of an episode on YouTube, the unit that is uploaded exactly once.

A language's long video is a slot; so is each of its Shorts. A slot names its file and content
key in the episode folder, its metadata, its record entry (`es`, `es/short-01`) and its slot tag
(`Identity.slot`), which never changes with a rebuild, a title edit or an upgrade of zray. Every
step of the uploader (planning, the never-twice insert, thumbnail, captions) works on slots, so
a new kind of video is one more function here that builds them.
"""

from __future__ import annotations

from dataclasses import dataclass

from zray.episode import Episode


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
) -> VideoSlot:
    """One of a language's Shorts: its own file, metadata and slot tag; no chapter list, and no
    thumbnail or captions calls (its captions are burned in; each call would cost 450 units)."""
    return VideoSlot(
        name=short_name(lang, number),
        lang=lang,
        tag=episode.identity.slot(lang, short_part(number)),
        video=video,
        content_key=content_key,
        title=title.strip(),
        description=description,
        tags=_tags(tags),
    )


def _tags(tags: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(t.strip() for t in tags if t.strip()))
