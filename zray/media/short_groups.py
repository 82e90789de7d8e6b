"""Which scenes make which Short: a language's chapters grouped into vertical videos of bounded length.

Lengths are whole frames, known only once narration is padded. A Short is a run of consecutive
scenes: a lead of silence before its first word (if its first scene has none of its own), the
scenes' padded narration, and a tail after its last word (the picture holds and the music fades).

The grouping is the best partition of the scenes, compared in this order:
1. no Short shorter than `min_seconds` (a short chapter joins a neighbour, taking scenes from a long
   one if it must);
2. as few chapters as possible cut between two Shorts (a chapter longer than `max_seconds` is split
   at scene boundaries);
3. as few Shorts as possible (consecutive chapters are grouped up to `max_seconds`);
4. Shorts of even length.
No Short is longer than `max_seconds`. A single scene longer than that is cut after the last
sentence whose end fits (its own Short), or left out with a note. Without chapters, the scenes are
grouped the same way as one untitled run.

Stdlib only: a pure function of lengths, tested on its own.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = ["Grouping", "SceneSpan", "ShortGroup", "group_shorts"]


@dataclass(frozen=True)
class SceneSpan:
    """One scene's padded narration as a Short sees it, in frames."""

    frames: int
    lead: int = 0  # silence before its first word
    trailing: int = 0  # silence after its last word
    chapter: int | None = None  # which (merged) chapter it belongs to; None: no chapters
    # Frames from the scene's start by which each of its sentences has been spoken, in order.
    sentence_ends: tuple[int, ...] = ()


@dataclass(frozen=True)
class ShortGroup:
    """One Short: its scenes, the frames of silence added before and after them, its length."""

    scenes: tuple[int, ...]
    lead: int
    tail: int
    frames: int
    cut: int | None = None  # frames kept of its one scene, cut after a sentence; None: whole scenes


@dataclass
class Grouping:
    shorts: list[ShortGroup]
    notes: list[str]  # scenes left out, and why


def group_shorts(
    scenes: Sequence[SceneSpan],
    *,
    fps: int,
    max_seconds: float,
    min_seconds: float,
    lead_seconds: float = 0.0,
    tail_seconds: float = 0.0,
) -> Grouping:
    """The Shorts of one language, in scene order (see the module docstring)."""
    if fps <= 0 or max_seconds <= 0 or min_seconds < 0:
        raise ValueError(
            f"need fps > 0, max_seconds > 0, min_seconds >= 0; got {fps}, {max_seconds}, {min_seconds}"
        )
    most = math.floor(max_seconds * fps + 1e-9)
    least = math.ceil(min_seconds * fps - 1e-9)
    lead = math.ceil(lead_seconds * fps - 1e-9)
    tail = math.ceil(tail_seconds * fps - 1e-9)

    def extra_lead(first: int) -> int:
        return max(0, lead - scenes[first].lead)

    def extra_tail(last: int) -> int:
        return max(0, tail - scenes[last].trailing)

    def length(first: int, last: int) -> int:
        body = sum(s.frames for s in scenes[first : last + 1])
        return extra_lead(first) + body + extra_tail(last)

    shorts: list[ShortGroup] = []
    notes: list[str] = []
    run: list[int] = []
    for index in range(len(scenes)):
        if length(index, index) <= most:
            run.append(index)
            continue
        # A scene too long for any Short: its own Short, cut after a sentence, or none.
        shorts += _partition(run, scenes, length, extra_lead, extra_tail, most=most, least=least)
        run = []
        span = scenes[index]
        room = most - extra_lead(index) - tail
        fitting = [end for end in span.sentence_ends if 0 < end <= min(room, span.frames)]
        if fitting:
            cut = fitting[-1]
            shorts.append(
                ShortGroup(
                    scenes=(index,),
                    lead=extra_lead(index),
                    tail=tail,
                    frames=extra_lead(index) + cut + tail,
                    cut=cut,
                )
            )
            notes.append(
                f"scene {index + 1} lasts {span.frames / fps:.1f} s, more than a Short's {max_seconds:g} s: "
                f"its Short ends after the sentence that ends at {cut / fps:.1f} s"
            )
        else:
            notes.append(
                f"scene {index + 1} lasts {span.frames / fps:.1f} s, more than a Short's {max_seconds:g} s, "
                "and no sentence of it ends in time: left out of the Shorts"
            )
    shorts += _partition(run, scenes, length, extra_lead, extra_tail, most=most, least=least)
    return Grouping(shorts=shorts, notes=notes)


def _partition(
    run: list[int],
    scenes: Sequence[SceneSpan],
    length: Callable[[int, int], int],
    extra_lead: Callable[[int], int],
    extra_tail: Callable[[int], int],
    *,
    most: int,
    least: int,
) -> list[ShortGroup]:
    """The best partition of consecutive scenes (each fits a Short alone) into Shorts."""
    if not run:
        return []
    n = len(run)
    # best[j]: the cost of the best partition of run[:j], and where its last Short starts.
    Cost = tuple[int, int, int, int]
    best: list[tuple[Cost, int] | None] = [None] * (n + 1)
    best[0] = ((0, 0, 0, 0), 0)
    for j in range(1, n + 1):
        for i in range(j - 1, -1, -1):
            frames = length(run[i], run[j - 1])
            if frames > most:
                break  # longer still for every earlier start
            before = best[i]
            if before is None:
                continue
            splits = 1 if j < n and _same_chapter(scenes, run[j - 1], run[j]) else 0
            cost = before[0]
            total = (cost[0] + (frames < least), cost[1] + splits, cost[2] + 1, cost[3] + frames * frames)
            current = best[j]
            if current is None or total < current[0]:
                best[j] = (total, i)
    groups: list[ShortGroup] = []
    j = n
    while j > 0:
        entry = best[j]
        assert entry is not None  # every scene fits alone, so every prefix has a partition
        i = entry[1]
        first, last = run[i], run[j - 1]
        groups.append(
            ShortGroup(
                scenes=tuple(run[i:j]),
                lead=extra_lead(first),
                tail=extra_tail(last),
                frames=length(first, last),
            )
        )
        j = i
    return groups[::-1]


def _same_chapter(scenes: Sequence[SceneSpan], a: int, b: int) -> bool:
    chapter = scenes[a].chapter
    return chapter is not None and chapter == scenes[b].chapter
