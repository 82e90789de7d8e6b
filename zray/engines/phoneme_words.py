"""Word timings from a phoneme model's predicted durations: which word each phoneme belongs to.

Kokoro predicts how many 25 ms frames each input phoneme lasts, but outside English its G2P (espeak-ng)
returns one phoneme string for a whole piece of text, not phonemes per word. Phonemizing the piece
word by word gives each word's phonemes out of context; they differ from the piece's in places (stress,
voicing across word boundaries, a number read as several words, "C'est" as one group), so the two are
aligned character by character, as a diff does, and every phoneme of the piece takes the word of the
character it matches. Phonemes that match nothing take their neighbours' word, so every phoneme
belongs to exactly one word and words never go backwards.

Pure Python: no torch, no kokoro. Durations are plain integers.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from difflib import SequenceMatcher

from zray.media.words import WordTiming

# Ignored when matching: stress and the space between words move with context, the sounds do not.
_IGNORED = frozenset(" ˈˌ")
_SPACE = " "


def phoneme_owners(phonemes: str, word_phonemes: Sequence[str]) -> list[int]:
    """For each character of `phonemes` (a piece's phonemes, as the model reads them), the index of the
    word it belongs to; `word_phonemes[k]` is word k phonemized alone.

    The result never decreases and every index is in range. A space belongs to the word before it (it
    is that word's pause); a group of phonemes that matches no word goes to the first word between its
    neighbours that got none, else to the word before it.
    """
    count = len(word_phonemes)
    if count == 0:
        raise ValueError("phoneme_owners needs at least one word")
    if not phonemes:
        return []
    owners: list[int | None] = [None] * len(phonemes)
    _match(phonemes, word_phonemes, owners)
    groups = _groups(phonemes)
    group_owners = [_fill_within(group, owners) for group in groups]
    _fill_groups(group_owners, count)
    for group, first in zip(groups, group_owners, strict=True):
        assert first is not None
        carry = first
        for index in group:
            carry = owners[index] if owners[index] is not None else carry
            owners[index] = carry
    # Spaces (and anything else left) trail the word before them; leading ones join the first word.
    previous: int | None = None
    for index, owner in enumerate(owners):
        if owner is None:
            owners[index] = previous
        previous = owners[index]
    # Only spaces (a piece whose sounds were all dropped): they are the first word's pause.
    first_owner = next((owner for owner in owners if owner is not None), 0)
    result = [first_owner if owner is None else owner for owner in owners]
    return list(itertools.accumulate(result, max))  # a guard: matches are monotonic by construction


def _match(phonemes: str, word_phonemes: Sequence[str], owners: list[int | None]) -> None:
    positions = [i for i, character in enumerate(phonemes) if character not in _IGNORED]
    spoken = "".join(phonemes[i] for i in positions)
    reference_owner = [k for k, word in enumerate(word_phonemes) for c in word if c not in _IGNORED]
    reference = "".join(c for word in word_phonemes for c in word if c not in _IGNORED)
    matcher = SequenceMatcher(None, spoken, reference, autojunk=False)
    for block in matcher.get_matching_blocks():
        for offset in range(block.size):
            owners[positions[block.a + offset]] = reference_owner[block.b + offset]


def _groups(phonemes: str) -> list[list[int]]:
    """Indexes of each run of characters between spaces."""
    groups: list[list[int]] = []
    current: list[int] = []
    for index, character in enumerate(phonemes):
        if character == _SPACE:
            if current:
                groups.append(current)
                current = []
        else:
            current.append(index)
    if current:
        groups.append(current)
    return groups


def _fill_within(group: list[int], owners: list[int | None]) -> int | None:
    """The group's first owner (unmatched characters before it take it), or None if nothing matched."""
    return next((owners[index] for index in group if owners[index] is not None), None)


def _fill_groups(group_owners: list[int | None], count: int) -> None:
    """Give each unmatched group a word: runs of them share out the words their neighbours left free."""
    index = 0
    while index < len(group_owners):
        if group_owners[index] is not None:
            index += 1
            continue
        end = index
        while end < len(group_owners) and group_owners[end] is None:
            end += 1
        before = group_owners[index - 1] if index > 0 else None
        after = group_owners[end] if end < len(group_owners) else None
        low = 0 if before is None else before + 1  # the first word nobody has taken
        high = count if after is None else after  # one past the last free word
        run = end - index
        for offset in range(run):
            if high > low:
                group_owners[index + offset] = low + offset * (high - low) // run
            else:  # no free word: the run continues the word before it (or starts the one after)
                group_owners[index + offset] = before if before is not None else after
        index = end


def word_timings(
    words: Sequence[str], owners: Sequence[int], durations: Sequence[int], *, frame_seconds: float
) -> list[WordTiming]:
    """Words timed by their phonemes' durations, tiling from the first word's start to the audio's end.

    `durations` are frames per model input position: the boundary token before the phonemes, one per
    character of the phonemes (`owners` names its word), and the boundary token after. A word starts at
    its first phoneme and ends where the next word starts; the last ends with the audio. A word that got
    no phoneme (text the G2P dropped) lasts no time, where the next word starts.
    """
    if len(durations) != len(owners) + 2:
        raise ValueError(f"{len(durations)} durations for {len(owners)} phonemes (expected phonemes + 2)")
    starts: list[int | None] = [None] * len(words)
    frame = durations[0]
    for owner, duration in zip(owners, durations[1:-1], strict=True):
        if starts[owner] is None:
            starts[owner] = frame
        frame += duration
    total = frame + durations[-1]
    following = total
    for k in range(len(words) - 1, -1, -1):  # an untimed word starts where the next one does
        if starts[k] is None:
            starts[k] = following
        following = starts[k]  # type: ignore[assignment]
    timings = []
    for k, word in enumerate(words):
        begin = starts[k]
        until = starts[k + 1] if k + 1 < len(words) else total
        assert begin is not None and until is not None
        timings.append(WordTiming(word, begin * frame_seconds, until * frame_seconds))
    return timings
