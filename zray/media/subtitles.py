"""Subtitles (SRT, WebVTT) from scene narration, and YouTube chapter lists.

Narration is cut into readable cues by `cue_text` (sentence ends first, then clause punctuation, then
between words; no orphans; at most `max_lines` lines of `max_chars`). A cue's words are never changed, so
joining the cues gives back the narration word for word. With word timings from the voice engine, a cue
appears when its first word is spoken (never before) and stays until the next cue appears, but never
more than `LINGER` seconds after its last word ends: a cue left up through a scene's pause or the music
tail reads as lag; the split favours cues read at no more than `max_cps` characters a second, but the
timings always win. Without timings, cues share the scene's time
in proportion to their length. Each cue carries its words' times, for burned-in captions.

Chapters: a chapter starts where a scene's title differs from the one before; a scene without a title
keeps the previous one, and the first chapter starts at 0:00 (taking in the intro and any untitled first
scenes). YouTube ignores the whole list when it has fewer than 3 chapters or any is shorter than 10 s,
so a short chapter is merged into its shorter neighbour, which keeps its own title, until every chapter
is long enough; only if fewer than 3 remain is the list dropped. Lengths are measured on the written
(rounded down) timestamps, which are what YouTube reads.
"""

from __future__ import annotations

import itertools
import math
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from difflib import SequenceMatcher

import srt

from zray.errors import ZrayError
from zray.media.cue_text import break_cues
from zray.media.words import WordTiming

__all__ = [
    "LINGER",
    "MAX_CPS",
    "Chapter",
    "ChapterPlan",
    "ChapterRange",
    "Cue",
    "SubtitleError",
    "WordTiming",
    "build_chapters",
    "chapter_ranges",
    "format_chapters",
    "format_timestamp",
    "parse_srt",
    "plan_chapters",
    "scene_cues",
    "split_cues",
    "time_cues",
    "to_srt",
    "to_vtt",
]

# YouTube only shows a chapter list with at least this many chapters, each at least this long.
MIN_CHAPTERS = 3
MIN_CHAPTER_SECONDS = 10
# Reading speed subtitles aim for where the speech allows (characters a second, spaces included).
MAX_CPS = 20.0
# How long a cue may stay after its last word is spoken: long enough to finish reading it, short enough
# that no cue hangs over a pause between scenes or the music at the end.
LINGER = 0.7


class SubtitleError(ZrayError, ValueError):
    """Subtitle or chapter input the pipeline cannot use; the message names the bad value."""


@dataclass(frozen=True)
class Cue:
    """One subtitle on screen from `start` to `end` (seconds); `text` holds its lines joined by '\\n'.

    `words` are the cue's words as written (punctuation included, in the order of `text`), each from
    when it is spoken until the next one is (the last until the cue ends): what burned-in captions
    highlight. Empty for cues read back from a file; not part of a cue's equality.
    """

    start: float
    end: float
    text: str
    words: tuple[WordTiming, ...] = field(default=(), compare=False)


@dataclass(frozen=True)
class Chapter:
    """A YouTube chapter: where it starts in the final video (seconds) and its title."""

    start: float
    title: str


@dataclass(frozen=True)
class ChapterRange:
    """A chapter's span of the final video, its title, and the indexes of the scenes it covers."""

    start: float
    end: float
    title: str
    scenes: tuple[int, ...]


@dataclass(frozen=True)
class ChapterPlan:
    """Chapters after merging: their ranges (kept for Shorts even when the list is dropped), the list for
    the description (empty when `reason` says why), and one line per merge, for a warning."""

    ranges: list[ChapterRange]
    chapters: list[Chapter]
    merged: list[str]
    reason: str | None


# ---------------------------------------------------------------------------------------------- splitting


def _check_layout(max_chars: int, max_lines: int) -> None:
    if max_chars < 1 or max_lines < 1:
        raise SubtitleError(
            f"max_chars and max_lines must be >= 1, got max_chars={max_chars}, max_lines={max_lines}"
        )


def split_cues(text: str, *, max_chars: int = 42, max_lines: int = 2) -> list[str]:
    """Cut narration into cue texts (lines joined by '\\n'); the cues' words are the text's words, in order.

    A single word longer than `max_chars` stands alone on its line.
    """
    _check_layout(max_chars, max_lines)
    words = text.split()
    if not words:
        return []
    return [cue.text for cue in break_cues(words, max_chars=max_chars, max_lines=max_lines)]


# ------------------------------------------------------------------------------------------------ timing


def _normalize(word: str) -> str:
    return "".join(ch for ch in unicodedata.normalize("NFC", word).casefold() if ch.isalnum())


def _word_starts(words: Sequence[str], timings: Sequence[WordTiming]) -> list[float | None]:
    """The spoken start of each narration word, or None where the timings have no match for it."""
    return [span[0] if span else None for span in _word_spans(words, timings)]


def _word_spans(words: Sequence[str], timings: Sequence[WordTiming]) -> list[tuple[float, float] | None]:
    """When each narration word is spoken (start of its first matched timing, end of its last), or None
    where the timings have no match for it.

    TTS engines tokenize differently ("don't" -> "do" "n't", punctuation as tokens, numbers), so
    words are matched on their letters and digits rather than one-to-one.
    """
    text_owner = [i for i, w in enumerate(words) for _ in _normalize(w)]
    timed_owner = [i for i, t in enumerate(timings) for _ in _normalize(t.word)]
    text_chars = "".join(_normalize(w) for w in words)
    timed_chars = "".join(_normalize(t.word) for t in timings)
    spans: list[tuple[float, float] | None] = [None] * len(words)
    matcher = SequenceMatcher(None, text_chars, timed_chars, autojunk=False)
    for block in matcher.get_matching_blocks():
        for k in range(block.size):
            word, timing = text_owner[block.a + k], timings[timed_owner[block.b + k]]
            found = spans[word]
            spans[word] = (
                (timing.start, timing.end) if found is None else (found[0], max(found[1], timing.end))
            )
    return spans


def _spoken_ends(
    words: Sequence[str], timings: Sequence[WordTiming], times: Sequence[float], *, start: float, end: float
) -> list[float | None]:
    """When each word stops being spoken, in the scene's clock; None where the timings do not say, or
    say something outside the word's place (before it starts, after the scene)."""
    out: list[float | None] = []
    for k, span in enumerate(_word_spans(words, timings)):
        at = start + span[1] if span is not None else None
        out.append(at if at is not None and times[k] <= at <= end else None)
    return out


def _check_span(start: float, end: float, *, what: str) -> None:
    if not (math.isfinite(start) and math.isfinite(end)) or end < start:
        raise SubtitleError(f"{what}: need finite start <= end, got start={start}, end={end}")


def _word_times(
    words: Sequence[str], timings: Sequence[WordTiming] | None, *, start: float, end: float
) -> tuple[list[float], bool]:
    """When each word starts, then `end`; and whether any of it came from the timings.

    Timings (relative to `start`) are trusted only in order and inside the scene; the other words are
    placed by their length in characters between the trusted times around them (the scene's start
    before the first, its end after the last).
    """
    offsets = list(itertools.accumulate((len(w) + 1 for w in words), initial=0))
    anchors: dict[int, float] = {}
    if timings:
        previous = start  # the first word may start with the scene; every later one strictly after
        for k, spoken in enumerate(_word_starts(words, timings)):
            if spoken is None:
                continue
            at = start + spoken
            if (previous < at or (k == 0 and at == start)) and at < end:
                anchors[k] = previous = at
    timed = bool(anchors)
    anchors.setdefault(0, start)
    anchors[len(words)] = end
    known = sorted(anchors)
    times = [0.0] * (len(words) + 1)
    for left, right in itertools.pairwise(known):
        t0, t1, span = anchors[left], anchors[right], offsets[right] - offsets[left]
        for k in range(left, right + 1):
            times[k] = t0 + (t1 - t0) * (offsets[k] - offsets[left]) / span
    times[-1] = end
    return times, timed


def time_cues(
    text: str,
    *,
    start: float,
    end: float,
    words: Sequence[WordTiming] | None = None,
    max_chars: int = 42,
    max_lines: int = 2,
    max_cps: float = MAX_CPS,
) -> list[Cue]:
    """Cue one scene's narration across [start, end]; the last cue runs to `end`, each other cue until
    the next one starts, except that with timings a cue ends `LINGER` seconds after its last word.

    Without `words`, the first cue starts at `start` and each gets time in proportion to its length in
    characters. With `words` (times relative to the scene start), a cue appears when its first word is
    spoken; words the timings miss, or time out of order or outside the scene, are placed by length
    between their timed neighbours.
    """
    _check_span(start, end, what="scene")
    _check_layout(max_chars, max_lines)
    if not max_cps > 0:
        raise SubtitleError(f"max_cps must be > 0 characters a second, got {max_cps}")
    start, end = float(start), float(end)
    tokens = text.split()
    if not tokens:
        return []
    if end == start:
        raise SubtitleError(f"scene at {start} s has narration {text[:40]!r} but no duration")
    for timing in words or ():
        _check_span(timing.start, timing.end, what=f"word timing {timing.word!r}")
    times, timed = _word_times(tokens, words, start=start, end=end)
    pieces = break_cues(
        tokens, max_chars=max_chars, max_lines=max_lines, times=times if timed else None, max_cps=max_cps
    )
    spoken_ends = _spoken_ends(tokens, words or (), times, start=start, end=end) if timed else []
    cues = []
    for piece in pieces:
        cue_end = times[piece.end]
        # The voice's end of the cue's last word (a bare "—" has no sound of its own): the cue leaves
        # LINGER after it. A last word the timings miss has no known end, and the cue keeps its time.
        sounded = [k for k in range(piece.first, piece.end) if _normalize(tokens[k])]
        last_end = spoken_ends[sounded[-1]] if spoken_ends and sounded else None
        if last_end is not None:
            cue_end = min(cue_end, max(last_end, times[piece.end - 1]) + LINGER)
        spoken = tuple(
            WordTiming(tokens[k], times[k], times[k + 1] if k + 1 < piece.end else cue_end)
            for k in range(piece.first, piece.end)
        )
        cues.append(Cue(start=times[piece.first], end=cue_end, text=piece.text, words=spoken))
    return cues


def scene_cues(
    scenes: Sequence[tuple[str, float, float]],
    *,
    offset: float = 0.0,
    words: Sequence[Sequence[WordTiming] | None] | None = None,
    max_chars: int = 42,
    max_lines: int = 2,
    max_cps: float = MAX_CPS,
) -> list[Cue]:
    """Cues for consecutive scenes given as (narration, start, end), all shifted by `offset` (the intro).

    `words`, when given, holds one word-timing list (or None) per scene, in seconds from the scene's start.
    """
    if words is not None and len(words) != len(scenes):
        raise SubtitleError(f"got word timings for {len(words)} scenes but {len(scenes)} scenes")
    cues: list[Cue] = []
    previous_end = -math.inf
    for index, (text, start, end) in enumerate(scenes):
        _check_span(start, end, what=f"scene {index}")
        # Scene times are sums of float durations: forgive rounding noise, not real overlap.
        if start < previous_end - 1e-6:
            raise SubtitleError(
                f"scene {index} starts at {start} s, before scene {index - 1} ends ({previous_end} s)"
            )
        begin = max(start, previous_end)
        previous_end = end
        scene_words = words[index] if words is not None else None
        if scene_words and begin > start:  # the scene's clock starts at its own start
            scene_words = [timing.shifted(start - begin) for timing in scene_words]
        cues.extend(
            time_cues(
                text,
                start=offset + begin,
                end=offset + max(end, begin),
                words=scene_words,
                max_chars=max_chars,
                max_lines=max_lines,
                max_cps=max_cps,
            )
        )
    return cues


# ------------------------------------------------------------------------------------------------ output


def _milliseconds(seconds: float) -> int:
    # Round once, here, so SRT and VTT agree and rounding keeps cue order (it is monotonic).
    return round(seconds * 1000)


def to_srt(cues: Sequence[Cue]) -> str:
    """SubRip text: numbered cues, HH:MM:SS,mmm times."""
    subtitles = [
        srt.Subtitle(
            index=i,
            start=timedelta(milliseconds=_milliseconds(cue.start)),
            end=timedelta(milliseconds=_milliseconds(cue.end)),
            content=cue.text,
        )
        for i, cue in enumerate(cues, start=1)
    ]
    # reindex=False: srt's reindexing silently drops cues it dislikes; we number them ourselves.
    return srt.compose(subtitles, reindex=False)


def _vtt_time(seconds: float) -> str:
    hours, rest = divmod(_milliseconds(seconds), 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}"


def to_vtt(cues: Sequence[Cue]) -> str:
    """WebVTT text: a "WEBVTT" header, then HH:MM:SS.mmm cues (& < > escaped, as the format requires)."""
    parts = ["WEBVTT\n"]
    for cue in cues:
        body = cue.text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        parts.append(f"\n{_vtt_time(cue.start)} --> {_vtt_time(cue.end)}\n{body}\n")
    return "".join(parts)


def parse_srt(text: str) -> list[Cue]:
    """Read SubRip text back into cues (a leading byte-order mark is allowed)."""
    try:
        return [
            Cue(start=sub.start.total_seconds(), end=sub.end.total_seconds(), text=sub.content)
            for sub in srt.parse(text.removeprefix("\ufeff"))
        ]
    except srt.SRTParseError as error:
        raise SubtitleError(f"not valid SRT: {error}") from None


# ---------------------------------------------------------------------------------------------- chapters


def _whole_seconds(seconds: float) -> int:
    # Scene starts are sums of float durations: 64.99999999 means 65, not 1:04.
    return math.floor(seconds + 1e-6)


def format_timestamp(seconds: float) -> str:
    """YouTube's chapter time: 0:00, 1:05, 12:34, 1:02:03 (whole seconds, rounded down)."""
    if not math.isfinite(seconds) or seconds < 0:
        raise SubtitleError(f"timestamp must be a finite number of seconds >= 0, got {seconds}")
    minutes, secs = divmod(_whole_seconds(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _titled_ranges(scenes: Sequence[tuple[float, str | None]], total: float) -> list[ChapterRange]:
    ranges: list[ChapterRange] = []
    untitled: list[int] = []  # scenes before the first title: they open the first chapter
    previous_start = 0.0
    for index, (start, raw_title) in enumerate(scenes):
        if not math.isfinite(start) or not previous_start <= start <= total:
            raise SubtitleError(
                f"scene {index} starts at {start} s: scene starts must be in order and within 0..{total} s"
            )
        previous_start = start
        title = " ".join(raw_title.split()) if raw_title else ""
        if not ranges and not title:
            untitled.append(index)
        elif title and (not ranges or title != ranges[-1].title):
            at = float(start) if ranges else 0.0
            if ranges:
                ranges[-1] = replace(ranges[-1], end=at)
            ranges.append(ChapterRange(start=at, end=total, title=title, scenes=(*untitled, index)))
            untitled = []
        else:
            ranges[-1] = replace(ranges[-1], scenes=(*ranges[-1].scenes, index))
    return ranges


def _written_length(chapter: ChapterRange) -> int:
    return _whole_seconds(chapter.end) - _whole_seconds(chapter.start)


def _merge_short(ranges: list[ChapterRange], min_seconds: int) -> list[str]:
    """Merge chapters shorter than `min_seconds` (as written) into their shorter neighbour, shortest
    first, in place; returns one line per merge."""
    notes: list[str] = []
    while len(ranges) > 1:
        lengths = [_written_length(chapter) for chapter in ranges]
        shortest = min(range(len(ranges)), key=lambda i: (lengths[i], i))
        if lengths[shortest] >= min_seconds:
            break
        short = ranges[shortest]
        neighbours = [i for i in (shortest - 1, shortest + 1) if 0 <= i < len(ranges)]
        # The shorter neighbour takes it; on a tie, the one before (what the short part follows on from).
        into = min(neighbours, key=lambda i: (lengths[i], i))
        keeper = ranges[into]
        if into < shortest:
            merged = replace(keeper, end=short.end, scenes=keeper.scenes + short.scenes)
        else:
            merged = replace(keeper, start=short.start, scenes=short.scenes + keeper.scenes)
        notes.append(
            f"chapter {short.title!r} at {format_timestamp(short.start)} lasts {lengths[shortest]} s "
            f"(YouTube needs {min_seconds} s): merged into {keeper.title!r}"
        )
        low = min(into, shortest)
        ranges[low : low + 2] = [merged]
        # Merging may bring two parts of one title together again: they are one chapter.
        for i in (low - 1, low):
            if 0 <= i < len(ranges) - 1 and ranges[i].title == ranges[i + 1].title:
                first, second = ranges[i], ranges[i + 1]
                ranges[i : i + 2] = [replace(first, end=second.end, scenes=first.scenes + second.scenes)]
                break
    return notes


def plan_chapters(
    scenes: Sequence[tuple[float, str | None]], *, total: float, min_seconds: int = MIN_CHAPTER_SECONDS
) -> ChapterPlan:
    """Chapters from (start in the final video, title or None) per scene; see the module docstring."""
    if not math.isfinite(total) or total <= 0:
        raise SubtitleError(f"video length must be > 0 seconds, got {total}")
    ranges = _titled_ranges(scenes, total)
    merged = _merge_short(ranges, min_seconds)
    if len(ranges) < MIN_CHAPTERS:
        after = f" after merging chapters shorter than {min_seconds} s" if merged else ""
        reason = (
            f"only {len(ranges)} chapter(s){after}; YouTube shows chapters only if there are "
            f"{MIN_CHAPTERS} or more"
        )
        return ChapterPlan(ranges=ranges, chapters=[], merged=merged, reason=reason)
    chapters = [Chapter(start=chapter.start, title=chapter.title) for chapter in ranges]
    return ChapterPlan(ranges=ranges, chapters=chapters, merged=merged, reason=None)


def chapter_ranges(scenes: Sequence[tuple[float, str | None]], *, total: float) -> list[ChapterRange]:
    """The chapters' spans after merging, each with the scenes it covers (what Shorts are grouped from)."""
    return plan_chapters(scenes, total=total).ranges


def build_chapters(
    scenes: Sequence[tuple[float, str | None]], *, total: float
) -> tuple[list[Chapter], str | None]:
    """The chapter list for the description, or ([], why there is none). `plan_chapters` also says
    what was merged, which callers should log as a warning."""
    plan = plan_chapters(scenes, total=total)
    return plan.chapters, plan.reason


def format_chapters(chapters: Sequence[Chapter]) -> str:
    """The chapter list for a YouTube description: one "0:00 Title" line per chapter."""
    return "".join(f"{format_timestamp(c.start)} {c.title}\n" for c in chapters)
