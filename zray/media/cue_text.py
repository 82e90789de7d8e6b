"""Where subtitle text breaks: narration into cues of at most `max_lines` lines of `max_chars` characters.

What a reader wants, best first, priced by the costs below: a cue ends at a sentence end, else at clause
punctuation, else between words, and not after a word that leans on the next one (an article, a
preposition: "de una | estrella"); no piece of a sentence of one or two words is cut off from the rest
(an orphan), on its own line or cue; a cue that ends one sentence and starts the next without finishing
it ("roja? Hoy viajamos a") costs extra; cues are evenly full; where word times are known, a cue shows
at most `max_cps` characters a second if another split allows it (the times themselves never move).
Lines inside a cue are balanced and break at punctuation the same way. Every way of cutting the text is
weighed (dynamic programming), so a good break later is never lost to a greedy choice now.

A cue's words are the text's words, in order and unchanged. Stdlib only.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum


class Break(IntEnum):
    """How good the gap before a word is as a place to end a cue or a line."""

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

# Words that lean on the next one (articles, prepositions, conjunctions, determiners, auxiliary verbs) in
# the languages zray narrates most (es, en, ca, fr, it, pt, de): a break right after one splits a phrase.
_LEANING_WORDS = """
a an the of to in on at by for with from into onto about as and or but nor that which who whose this these
those my your his her its our their not than
el la los las un una unos unas lo al del de en con por para sin sobre entre hacia hasta desde según y e
o u ni que pero su sus mi mis tu tus nuestro nuestra nuestros nuestras este esta estos estas ese esa esos
esas se le les me te nos muy cuando donde como
els les uns unes dels als amb per pel pels sense fins des i però seu seva seus seves aquest aquesta
aquests aquestes hi quan on com
le des du au aux dans sur sous avec pour par et ou qui mais son sa ses mon ma mes ton ta tes notre votre
leur leurs ce cet cette ces ne
il gli uno di della dei degli delle da nel nella tra fra che ma non
os as um uma do da dos das em no na nos nas com mas seu sua não
der die das den dem ein eine einen einem einer und oder mit von zu zum zur im an am auf für aus bei nach
über unter dass
is are was were be been has have had will would can could should must
ha han he has hemos había habían es son era fue
hem és són
est sont ont
è sono hanno
é são tem foi
ist sind hat haben wird
"""
_LEANING = frozenset(_LEANING_WORDS.split())

# Cutting a text into cues: each cue costs CUE, plus the kind of break it ends at, plus the rest below.
_CUE = 1.0
_CUE_END = {Break.SENTENCE: 0.0, Break.CLAUSE: 0.5, Break.SPACE: 1.2, Break.AVOID: 50.0}
_LEANS = 1.0  # ends after a leaning word
# A sentence ends inside the cue and the cue ends mid-sentence: after a whole sentence ("Sí. Claro que"),
# or worse, after the tail of one ("roja? Hoy viajamos a").
_CROSSES = 2.0
_CROSSES_FROM_TAIL = 5.0
_ORPHAN = 3.0  # one or two words of a sentence cut off from the rest of it
_FILL = 2.0  # times (1 - fill)^2: evenly full cues
_LAYOUT = 1.0  # times how much worse the cue's lines are than two perfectly balanced ones
_CPS = 2.0  # times how far over max_cps the cue reads (capped), when word times are known
_CPS_CAP = 3.0
# Breaking a cue into lines: sum of (line width / max_chars)^2, plus these.
_LINE_BREAK = {Break.SENTENCE: 0.0, Break.CLAUSE: 0.04, Break.SPACE: 0.08, Break.AVOID: 10.0}
_LINE_LEANS = 0.25
_LINE_ORPHAN = 0.5
_LINE_CROSSES = 0.3


def break_kind(before: str, after: str) -> Break:
    """The break between two consecutive words."""
    if _is_punctuation(after) and after[0] not in _OPENERS:
        return Break.AVOID
    if _is_punctuation(before) and all(ch in _OPENERS for ch in before):
        return Break.AVOID
    core = before.rstrip(_CLOSERS)
    opening = after.lstrip(_QUOTES_OPEN)
    # Spanish opens questions and exclamations with ¿ ¡: that mark begins the next piece.
    if (core and core[-1] in _SENTENCE_END) or (opening and opening[0] in _INVERTED):
        return Break.SENTENCE
    if core and core[-1] in _CLAUSE_END:
        return Break.CLAUSE
    return Break.SPACE


def _is_punctuation(word: str) -> bool:
    return not any(ch.isalnum() for ch in word)


def leans(word: str) -> bool:
    """Whether `word` leans on the next word (an article, a preposition): no line should end on it."""
    return word.strip(_OPENERS + _CLOSERS).casefold() in _LEANING


@dataclass(frozen=True)
class CueText:
    """Words `first` to `end` (exclusive) of the text, laid out on `lines`."""

    first: int
    end: int
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


class _Words:
    """The text's words with what the costs need, each in O(1) from prefix sums."""

    def __init__(self, words: Sequence[str], *, max_chars: int, max_lines: int) -> None:
        self.words = list(words)
        self.max_chars, self.max_lines = max_chars, max_lines
        n = len(self.words)
        self.lengths = [len(word) for word in self.words]
        self.prefix = list(itertools.accumulate((length + 1 for length in self.lengths), initial=0))
        # kinds[k]: the break before word k; the start and the end of the text are sentence breaks.
        self.kinds = [Break.SENTENCE, *(break_kind(a, b) for a, b in itertools.pairwise(self.words))]
        self.kinds.append(Break.SENTENCE)
        self.leaning = [leans(word) for word in self.words]
        spoken = [0 if _is_punctuation(word) else 1 for word in self.words]
        self.spoken = list(itertools.accumulate(spoken, initial=0))
        sentence = [1 if kind == Break.SENTENCE else 0 for kind in self.kinds[:n]]
        self.sentences = list(itertools.accumulate(sentence, initial=0))  # breaks before word k, k < i
        self.capacity = max_chars * max_lines

    def size(self, a: int, b: int) -> int:
        """Characters of words[a:b] on one line, spaces included."""
        return self.prefix[b] - self.prefix[a] - 1

    def spoken_words(self, a: int, b: int) -> int:
        return self.spoken[b] - self.spoken[a]

    def sentence_breaks_inside(self, a: int, b: int) -> list[int]:
        """Word indexes k, a < k < b, with a sentence break before them."""
        if self.sentences[b] - self.sentences[a + 1] <= 0:
            return []
        return [k for k in range(a + 1, b) if self.kinds[k] == Break.SENTENCE]

    def fit_end(self, first: int, lines: int) -> int:
        """One past the last word that still fits on `lines` lines from `first` (always takes one word).
        Filling lines greedily uses the fewest lines, so this is exactly the longest prefix that fits."""
        used, count, end = self.lengths[first], 1, first + 1
        while end < len(self.words):
            if used + 1 + self.lengths[end] <= self.max_chars:
                used += 1 + self.lengths[end]
            elif count < lines:
                count, used = count + 1, self.lengths[end]
            else:
                break
            end += 1
        return end

    def lines_needed(self, a: int, b: int) -> int:
        count, start = 1, a
        while (start := self.fit_end(start, 1)) < b:
            count += 1
        return count


class _Layouts:
    """The best line breaks for every cue starting at word `a` (up to `limit`), from one table: for
    words[a:b] on as few lines as possible, how much worse than perfectly balanced lines the best
    layout is, and where its lines start."""

    def __init__(self, text: _Words, a: int, limit: int) -> None:
        self.text, self.a = text, a
        mc, lines_max = text.max_chars, text.max_lines
        inf = math.inf
        # cost[lines][end]: the cheapest layout of words[a:end] on exactly `lines` lines; back: its
        # last line's first word.
        self.cost = [[inf] * (limit + 1) for _ in range(lines_max + 1)]
        self.back = [[a] * (limit + 1) for _ in range(lines_max + 1)]
        self.cost[0][a] = 0.0
        for lines in range(1, lines_max + 1):
            previous, current, back = self.cost[lines - 1], self.cost[lines], self.back[lines]
            for end in range(a + lines, limit + 1):
                for begin in range(end - 1, a + lines - 2, -1):
                    if text.size(begin, end) > mc and end - begin > 1:
                        break  # a longer line from further back cannot fit either
                    if previous[begin] == inf:
                        continue
                    total = previous[begin] + self._line_cost(begin, end)
                    if total < current[end]:
                        current[end], back[end] = total, begin

    def _line_cost(self, i: int, j: int) -> float:
        text = self.text
        cost = (text.size(i, j) / text.max_chars) ** 2
        if text.spoken_words(i, j) <= 2:
            cost += _LINE_ORPHAN
        if text.kinds[j] != Break.SENTENCE and text.sentence_breaks_inside(i, j):
            cost += _LINE_CROSSES
        if i > self.a:  # the break before this line
            cost += _LINE_BREAK[text.kinds[i]]
            if text.kinds[i] == Break.SPACE and text.leaning[i - 1]:
                cost += _LINE_LEANS
        return cost

    def penalty(self, b: int) -> float:
        needed = self.text.lines_needed(self.a, b)
        if needed == 1:
            return 0.0
        ideal = (self.text.size(self.a, b) / self.text.max_chars) ** 2 / needed
        return max(0.0, self.cost[needed][b] - ideal)

    def line_starts(self, b: int) -> list[int]:
        starts = [b]
        for lines in range(self.text.lines_needed(self.a, b), 0, -1):
            starts.append(self.back[lines][starts[-1]])
        starts.reverse()
        return starts[:-1]


def _cue_cost(
    text: _Words, layouts: _Layouts, b: int, times: Sequence[float] | None, max_cps: float
) -> float:
    a = layouts.a
    kind = text.kinds[b]
    cost = _CUE + _CUE_END[kind]
    if kind == Break.SPACE and text.leaning[b - 1]:
        cost += _LEANS
    inside = text.sentence_breaks_inside(a, b)
    if inside and kind != Break.SENTENCE:
        cost += _CROSSES if text.kinds[a] == Break.SENTENCE else _CROSSES_FROM_TAIL
    bounds = [a, *inside, b]
    for s, e in itertools.pairwise(bounds):
        partial = (s == a and text.kinds[a] != Break.SENTENCE) or (e == b and kind != Break.SENTENCE)
        if partial and text.spoken_words(s, e) <= 2:
            cost += _ORPHAN
    size = text.size(a, b)
    cost += _FILL * (1 - min(1.0, size / text.capacity)) ** 2
    cost += _LAYOUT * layouts.penalty(b)
    if times is not None:
        duration = times[b] - times[a]
        cps = size / duration if duration > 0 else math.inf
        if cps > max_cps:
            cost += _CPS * min(cps / max_cps - 1, _CPS_CAP)
    return cost


def break_cues(
    words: Sequence[str],
    *,
    max_chars: int,
    max_lines: int,
    times: Sequence[float] | None = None,
    max_cps: float = 20.0,
) -> list[CueText]:
    """The best way to cut `words` into cues (see the module docstring for what "best" weighs).

    `times`, when known, holds when each word starts and then when the text's time ends (one more than
    the words): a cue lasts from its first word's time to the next cue's. A single word longer than
    `max_chars` stands alone on its line.
    """
    text = _Words(words, max_chars=max_chars, max_lines=max_lines)
    n = len(text.words)
    if times is not None and len(times) != n + 1:
        raise ValueError(
            f"times must hold {n + 1} values (each word's start, then the end), got {len(times)}"
        )
    best = [math.inf] * n + [0.0]
    choice = [n] * (n + 1)
    layouts: list[_Layouts | None] = [None] * n
    for a in range(n - 1, -1, -1):
        limit = text.fit_end(a, max_lines)
        layouts[a] = table = _Layouts(text, a, limit)
        for b in range(a + 1, limit + 1):
            total = _cue_cost(text, table, b, times, max_cps) + best[b]
            if total < best[a]:
                best[a], choice[a] = total, b
    cues: list[CueText] = []
    a = 0
    while a < n:
        b, table = choice[a], layouts[a]
        assert table is not None
        starts = table.line_starts(b)
        lines = tuple(" ".join(text.words[i:j]) for i, j in itertools.pairwise([*starts, b]))
        cues.append(CueText(first=a, end=b, lines=lines))
        a = b
    return cues
