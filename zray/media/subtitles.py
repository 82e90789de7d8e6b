"""Subtitles (SRT, WebVTT) from scene narration, and YouTube chapter lists.

Narration is cut into readable cues: at most `max_lines` lines of at most `max_chars` characters, broken
at sentence punctuation first, then commas, then spaces, never inside a word. A cue's words are never
changed, so joining the cues gives back the narration word for word. Cues are timed across a scene in
proportion to their length, or from per-word timings when the TTS engine reports them.
"""

from __future__ import annotations

import itertools
import math
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from difflib import SequenceMatcher
from enum import IntEnum

import srt

# The one shape of a word timing (zray.media.words); still importable from here. Cues take timings
# in seconds from the start of their scene's audio.
from zray.media.words import WordTiming

__all__ = [
    "Chapter",
    "Cue",
    "SubtitleError",
    "WordTiming",
    "build_chapters",
    "format_chapters",
    "format_timestamp",
    "parse_srt",
    "scene_cues",
    "split_cues",
    "time_cues",
    "to_srt",
    "to_vtt",
]

# YouTube only shows a chapter list with at least this many chapters, each at least this long.
MIN_CHAPTERS = 3
MIN_CHAPTER_SECONDS = 10


class SubtitleError(ValueError):
    """Subtitle or chapter input the pipeline cannot use; the message names the bad value."""


@dataclass(frozen=True)
class Cue:
    """One subtitle on screen from `start` to `end` (seconds); `text` holds its lines joined by '\\n'."""

    start: float
    end: float
    text: str


@dataclass(frozen=True)
class Chapter:
    """A YouTube chapter: where it starts in the final video (seconds) and its title."""

    start: float
    title: str


# ---------------------------------------------------------------------------------------------- splitting


class _Break(IntEnum):
    """How good the gap between two words is as a place to end a cue or a line."""

    SENTENCE = 0
    CLAUSE = 1
    SPACE = 2
    AVOID = 3  # would strand punctuation: "Quoi | ?" (French spacing), "« | Bonjour"


_SENTENCE_END = ".!?;:…。！？"
_CLAUSE_END = ",，、—–"
_INVERTED = "¿¡"
_QUOTES_OPEN = "\"'«“‘([{"
_OPENERS = _QUOTES_OPEN + _INVERTED
_CLOSERS = "\"'»”’)]}"

# Choosing where a cue ends: score = how full the cue is (0..1) minus this. A sentence end wins over
# filling the cue to a plain space when the cue is at least 40% full, so "Dr." rarely ends a cue.
_CUE_PENALTY = {_Break.SENTENCE: 0.0, _Break.CLAUSE: 0.3, _Break.SPACE: 0.6, _Break.AVOID: 2.0}
# Choosing line breaks inside a cue costs sum(line length²) + this × max_chars²: on two 42-char lines
# a sentence break beats an even split at a space if the lines differ by up to ~16 characters, a comma
# up to ~12.
_LINE_PENALTY = {_Break.SENTENCE: 0.0, _Break.CLAUSE: 0.04, _Break.SPACE: 0.08, _Break.AVOID: 10.0}


def _is_punctuation(word: str) -> bool:
    return not any(ch.isalnum() for ch in word)


def _break_kind(before: str, after: str) -> _Break:
    if _is_punctuation(after) and after[0] not in _OPENERS:
        return _Break.AVOID
    if _is_punctuation(before) and all(ch in _OPENERS for ch in before):
        return _Break.AVOID
    core = before.rstrip(_CLOSERS)
    opening = after.lstrip(_QUOTES_OPEN)
    # Spanish opens questions and exclamations with ¿ ¡: that mark begins the next piece.
    if (core and core[-1] in _SENTENCE_END) or (opening and opening[0] in _INVERTED):
        return _Break.SENTENCE
    if core and core[-1] in _CLAUSE_END:
        return _Break.CLAUSE
    return _Break.SPACE


def _fit_end(lengths: Sequence[int], first: int, *, max_chars: int, max_lines: int) -> int:
    """One past the last word that still fits in a cue starting at `first` (always takes one word).

    Filling lines greedily uses the fewest lines, so this is exactly the longest prefix that fits.
    """
    lines, used = 1, lengths[first]
    end = first + 1
    while end < len(lengths):
        if used + 1 + lengths[end] <= max_chars:
            used += 1 + lengths[end]
        elif lines < max_lines:
            lines, used = lines + 1, lengths[end]
        else:
            break
        end += 1
    return end


def _choose_cue_end(
    lengths: Sequence[int],
    prefix: Sequence[int],
    kinds: Sequence[_Break],
    first: int,
    *,
    max_chars: int,
    max_lines: int,
) -> int:
    """Where the cue starting at word `first` should end: the best-scoring break among those that fit."""
    n = len(lengths)
    limit = _fit_end(lengths, first, max_chars=max_chars, max_lines=max_lines)
    if limit == n:
        return n

    def size(a: int, b: int) -> int:  # characters of words[a:b], spaces included
        return prefix[b] - prefix[a] - 1

    best, best_score = limit, -math.inf
    for end in range(first + 1, limit + 1):
        if _fit_end(lengths, end, max_chars=max_chars, max_lines=max_lines) == n:
            # Only one cue would follow: judge the pair by how evenly it splits, so the text never ends
            # on a short orphan cue.
            left, right = size(first, end), size(end, n)
            fill = 2 * min(left, right) / (left + right)
        else:
            fill = size(first, end) / size(first, limit)
        score = fill - _CUE_PENALTY[kinds[end]]
        if score >= best_score:
            best, best_score = end, score
    return best


def _layout_lines(words: Sequence[str], kinds: Sequence[_Break], *, max_chars: int, max_lines: int) -> str:
    """Lay a cue's words on as few lines as possible, balanced, breaking at punctuation where it can.

    `kinds[k]` is the break before `words[k]`.
    """
    lengths = [len(w) for w in words]
    n = len(words)
    needed = 1
    start = 0
    while (start := _fit_end(lengths, start, max_chars=max_chars, max_lines=1)) < n:
        needed += 1
    if needed == 1:
        return " ".join(words)
    assert needed <= max_lines

    prefix = list(itertools.accumulate((length + 1 for length in lengths), initial=0))

    def line_cost(a: int, b: int) -> float | None:
        width = prefix[b] - prefix[a] - 1
        return float(width * width) if width <= max_chars or b - a == 1 else None

    # cost[lines][end]: cheapest layout of words[:end] on exactly `lines` lines; back[...] its last break.
    inf = math.inf
    cost = [[inf] * (n + 1) for _ in range(needed + 1)]
    back = [[0] * (n + 1) for _ in range(needed + 1)]
    cost[0][0] = 0.0
    for lines in range(1, needed + 1):
        for end in range(lines, n + 1):
            for begin in range(lines - 1, end):
                if cost[lines - 1][begin] == inf or (this := line_cost(begin, end)) is None:
                    continue
                penalty = _LINE_PENALTY[kinds[begin]] * max_chars * max_chars if begin else 0.0
                total = cost[lines - 1][begin] + this + penalty
                if total < cost[lines][end]:
                    cost[lines][end], back[lines][end] = total, begin
    breaks = [n]
    for lines in range(needed, 0, -1):
        breaks.append(back[lines][breaks[-1]])
    breaks.reverse()
    return "\n".join(" ".join(words[a:b]) for a, b in itertools.pairwise(breaks))


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
    lengths = [len(w) for w in words]
    prefix = list(itertools.accumulate((length + 1 for length in lengths), initial=0))
    # kinds[k] describes the gap before words[k]; the end of the text is the best break of all.
    kinds = [_Break.SENTENCE] + [_break_kind(a, b) for a, b in itertools.pairwise(words)]
    kinds.append(_Break.SENTENCE)
    cues: list[str] = []
    first = 0
    while first < len(words):
        end = _choose_cue_end(lengths, prefix, kinds, first, max_chars=max_chars, max_lines=max_lines)
        cues.append(
            _layout_lines(words[first:end], kinds[first:end], max_chars=max_chars, max_lines=max_lines)
        )
        first = end
    return cues


# ------------------------------------------------------------------------------------------------ timing


def _normalize(word: str) -> str:
    return "".join(ch for ch in unicodedata.normalize("NFC", word).casefold() if ch.isalnum())


def _word_starts(words: Sequence[str], timings: Sequence[WordTiming]) -> list[float | None]:
    """The spoken start of each narration word, or None where the timings have no match for it.

    TTS engines tokenize differently ("don't" -> "do" "n't", punctuation as tokens, numbers), so
    words are matched on their letters and digits rather than one-to-one.
    """
    text_owner = [i for i, w in enumerate(words) for _ in _normalize(w)]
    timed_owner = [i for i, t in enumerate(timings) for _ in _normalize(t.word)]
    text_chars = "".join(_normalize(w) for w in words)
    timed_chars = "".join(_normalize(t.word) for t in timings)
    starts: list[float | None] = [None] * len(words)
    matcher = SequenceMatcher(None, text_chars, timed_chars, autojunk=False)
    for block in matcher.get_matching_blocks():
        for k in range(block.size):
            word = text_owner[block.a + k]
            if starts[word] is None:
                starts[word] = timings[timed_owner[block.b + k]].start
    return starts


def _check_span(start: float, end: float, *, what: str) -> None:
    if not (math.isfinite(start) and math.isfinite(end)) or end < start:
        raise SubtitleError(f"{what}: need finite start <= end, got start={start}, end={end}")


def time_cues(
    text: str,
    *,
    start: float,
    end: float,
    words: Sequence[WordTiming] | None = None,
    max_chars: int = 42,
    max_lines: int = 2,
) -> list[Cue]:
    """Cue one scene's narration across [start, end]; the cues tile it, first at `start`, last to `end`.

    Without `words`, each cue gets time in proportion to its length in characters. With `words` (times
    relative to the scene start), a cue appears when its first word is spoken and stays up until the next
    cue appears, so pauses never leave the screen blank mid-scene. Cues whose words the timings do not
    cover, or whose timing falls out of order or outside the scene, are placed by length between their
    timed neighbours.
    """
    _check_span(start, end, what="scene")
    start, end = float(start), float(end)
    texts = split_cues(text, max_chars=max_chars, max_lines=max_lines)
    if not texts:
        return []
    if end == start:
        raise SubtitleError(f"scene at {start} s has narration {text[:40]!r} but no duration")

    # Boundary k is where cue k starts; boundary len(texts) is the end of the scene.
    offsets = [0]
    for cue in texts:
        offsets.append(offsets[-1] + len(cue) + 1)
    anchors: list[float | None] = [start] + [None] * (len(texts) - 1) + [end]
    if words:
        for timing in words:
            _check_span(timing.start, timing.end, what=f"word timing {timing.word!r}")
        starts = _word_starts(text.split(), words)
        first_word = 0
        previous = start
        for k, cue in enumerate(texts):
            count = len(cue.split())
            if k > 0:
                spoken = next((s for s in starts[first_word : first_word + count] if s is not None), None)
                # Only timings strictly inside the scene and after the previous anchor can be trusted;
                # the rest would give a cue no time at all.
                if spoken is not None and previous < start + spoken < end:
                    anchors[k] = previous = start + spoken
            first_word += count

    # Fill each run of unknown boundaries by length between the known ones around it.
    known = [k for k, t in enumerate(anchors) if t is not None]
    times = [0.0] * len(anchors)
    for left, right in itertools.pairwise(known):
        t0, t1 = anchors[left], anchors[right]
        assert t0 is not None and t1 is not None
        span = offsets[right] - offsets[left]
        for k in range(left, right + 1):
            times[k] = t0 + (t1 - t0) * (offsets[k] - offsets[left]) / span
    times[-1] = end
    return [Cue(start=times[k], end=times[k + 1], text=cue) for k, cue in enumerate(texts)]


def scene_cues(
    scenes: Sequence[tuple[str, float, float]],
    *,
    offset: float = 0.0,
    words: Sequence[Sequence[WordTiming] | None] | None = None,
    max_chars: int = 42,
    max_lines: int = 2,
) -> list[Cue]:
    """Cues for consecutive scenes given as (narration, start, end), all shifted by `offset` (the intro).

    `words`, when given, holds one word-timing list (or None) per scene.
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
        cues.extend(
            time_cues(
                text,
                start=offset + begin,
                end=offset + max(end, begin),
                words=words[index] if words is not None else None,
                max_chars=max_chars,
                max_lines=max_lines,
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


def build_chapters(
    scenes: Sequence[tuple[float, str | None]], *, total: float
) -> tuple[list[Chapter], str | None]:
    """Chapters from (start in the final video, chapter title or None) per scene, and why there are none.

    A chapter starts where a scene's title differs from the one before; None keeps the previous title.
    The first chapter starts at 0:00, taking in the intro. YouTube ignores the whole list if it has fewer
    than 3 chapters or any chapter is shorter than 10 s, so then this returns ([], reason). Lengths are
    checked on the written (rounded down) timestamps, which are what YouTube reads.
    """
    if not math.isfinite(total) or total <= 0:
        raise SubtitleError(f"video length must be > 0 seconds, got {total}")
    chapters: list[Chapter] = []
    previous_start = 0.0
    for index, (start, raw_title) in enumerate(scenes):
        if not math.isfinite(start) or not previous_start <= start <= total:
            raise SubtitleError(
                f"scene {index} starts at {start} s: scene starts must be in order and within 0..{total} s"
            )
        previous_start = start
        title = " ".join(raw_title.split()) if raw_title else ""
        if title and (not chapters or title != chapters[-1].title):
            chapters.append(Chapter(start=float(start) if chapters else 0.0, title=title))

    if len(chapters) < MIN_CHAPTERS:
        return (
            [],
            f"only {len(chapters)} chapter(s); YouTube shows chapters only if there are {MIN_CHAPTERS} or more",
        )
    marks = [_whole_seconds(c.start) for c in chapters] + [_whole_seconds(total)]
    for chapter, begin, finish in zip(chapters, marks, marks[1:], strict=False):
        if finish - begin < MIN_CHAPTER_SECONDS:
            return [], (
                f"chapter {chapter.title!r} at {format_timestamp(begin)} lasts {finish - begin} s;"
                f" YouTube needs every chapter to last at least {MIN_CHAPTER_SECONDS} s"
            )
    return chapters, None


def format_chapters(chapters: Sequence[Chapter]) -> str:
    """The chapter list for a YouTube description: one "0:00 Title" line per chapter."""
    return "".join(f"{format_timestamp(c.start)} {c.title}\n" for c in chapters)
