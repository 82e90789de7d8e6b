"""Kokoro's phonemes mapped to words (pure: no model), and word timings from predicted durations."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zray.engines.phoneme_words import phoneme_owners, word_timings
from zray.engines.text import bare_word, is_spoken
from zray.media.words import WordTiming

quick = settings(max_examples=150, deadline=None)
_PHONEMES = "abdeiklmnoprstuðβɣɾʎθˈˌː.,?!¡¿"


def by_word(phonemes: str, owners: list[int], count: int) -> list[str]:
    groups = [""] * count
    for character, owner in zip(phonemes, owners, strict=True):
        groups[owner] += character
    return [group.strip() for group in groups]


def test_phonemes_joined_word_by_word_map_back_exactly() -> None:
    words = ["ˈola,", "bwˈenos", "ðˈias."]
    phonemes = " ".join(words)
    owners = phoneme_owners(phonemes, words)
    assert by_word(phonemes, owners, 3) == words
    # A space is the pause after the word before it.
    assert owners[phonemes.index(" ")] == 0


def test_context_changes_numbers_and_merged_words_still_map_in_order() -> None:
    # What espeak-ng's Spanish gives for the whole piece, against each word phonemized alone.
    words = ["ˈen", "mˈil ðosθjˈentos tɾˌAntaikwˈatɾo", "aβˈia", "sjˈete", "kˌaˈɛme."]
    piece = "en mˈil ðosθjˈentos tɾˌAntaikwˈatɾo aβˈia sjˈete kˌaˈɛme."
    assert by_word(piece, phoneme_owners(piece, words), 5) == [
        "en",
        "mˈil ðosθjˈentos tɾˌAntaikwˈatɾo",  # one text word read as three
        "aβˈia",
        "sjˈete",
        "kˌaˈɛme.",
    ]
    # French: "C'est" and "n'est-ce" are one group each, and the lone "?" joins the word before it.
    words = ["lˈe", "amˈi", "sˈɔ̃", "aʁivˈe", "nɛs", "pˈa", "sˈɛ", "ɛ̃kʁwajˈabl."]
    piece = "lez amˈi sˈɔ̃t aʁivˈez nˈɛs pˈa ? sɛt ɛ̃kʁwajˈabl."
    assert by_word(piece, phoneme_owners(piece, words), 8) == [
        "lez",
        "amˈi",
        "sˈɔ̃t",
        "aʁivˈez",
        "nˈɛs",
        "pˈa ?",
        "sɛt",
        "ɛ̃kʁwajˈabl.",
    ]


def test_a_group_that_matches_nothing_takes_a_free_word_between_its_neighbours() -> None:
    words = ["ˈuno", "xxx", "tɾˈes"]
    piece = "ˈuno ðˈos tɾˈes"  # the middle word's phonemes share nothing with what was said
    assert by_word(piece, phoneme_owners(piece, words), 3) == ["ˈuno", "ðˈos", "tɾˈes"]
    # With no word left free, it continues the word before it.
    assert by_word("ˈuno ðˈos tɾˈes", phoneme_owners("ˈuno ðˈos tɾˈes", ["ˈuno", "tɾˈes"]), 2) == [
        "ˈuno ðˈos",
        "tɾˈes",
    ]
    # Nothing matches at all: the groups share the words out in order.
    assert phoneme_owners("ab cd", ["xy", "zw"]) == [0, 0, 0, 1, 1]


@quick
@given(
    words=st.lists(st.text(alphabet=_PHONEMES, min_size=1, max_size=8), min_size=1, max_size=12),
    data=st.data(),
)
def test_every_phoneme_belongs_to_exactly_one_word_in_order(words: list[str], data: st.DataObject) -> None:
    # The piece: the words joined, then edited as context edits them (dropped, changed, inserted
    # characters, words merged or split by spaces).
    piece = list(" ".join(words))
    for _ in range(data.draw(st.integers(0, 8))):
        if not piece:
            break
        at = data.draw(st.integers(0, len(piece) - 1))
        action = data.draw(st.sampled_from(["drop", "change", "insert", "space"]))
        if action == "drop":
            del piece[at]
        elif action == "change":
            piece[at] = data.draw(st.sampled_from(_PHONEMES))
        elif action == "insert":
            piece.insert(at, data.draw(st.sampled_from(_PHONEMES + " ")))
        else:
            piece[at] = " " if piece[at] != " " else "a"
    phonemes = "".join(piece)
    owners = phoneme_owners(phonemes, words)
    assert len(owners) == len(phonemes)
    assert all(0 <= owner < len(words) for owner in owners)
    assert owners == sorted(owners)


def test_no_words_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="at least one word"):
        phoneme_owners("abc", [])
    assert phoneme_owners("", ["a"]) == []


def test_word_timings_follow_the_durations_and_tile_to_the_end() -> None:
    # boundary 2 frames, "ab c" -> a(1) b(3) space(2) c(4), boundary 1: 13 frames of 25 ms.
    timings = word_timings(["ab", "c"], [0, 0, 0, 1], [2, 1, 3, 2, 4, 1], frame_seconds=0.025)
    assert timings == [
        WordTiming("ab", 2 * 0.025, 8 * 0.025),
        WordTiming("c", 8 * 0.025, 13 * 0.025),
    ]
    # A word without phonemes lasts no time, where the next word starts.
    timings = word_timings(["a", "lost", "c"], [0, 2], [1, 2, 3, 1], frame_seconds=0.5)
    assert timings == [WordTiming("a", 0.5, 1.5), WordTiming("lost", 1.5, 1.5), WordTiming("c", 1.5, 3.5)]
    with pytest.raises(ValueError, match="expected phonemes \\+ 2"):
        word_timings(["a"], [0, 0], [1, 1, 1], frame_seconds=0.025)


@quick
@given(
    count=st.integers(1, 10),
    data=st.data(),
)
def test_word_timings_cover_every_frame_after_the_first_boundary(count: int, data: st.DataObject) -> None:
    length = data.draw(st.integers(1, 40))
    owners = sorted(data.draw(st.lists(st.integers(0, count - 1), min_size=length, max_size=length)))
    durations = data.draw(st.lists(st.integers(1, 6), min_size=length + 2, max_size=length + 2))
    timings = word_timings([f"w{k}" for k in range(count)], owners, durations, frame_seconds=0.025)
    assert len(timings) == count
    assert all(a.end == b.start for a, b in itertools.pairwise(timings))
    assert timings[-1].end == pytest.approx(sum(durations) * 0.025)
    assert timings[0].start >= durations[0] * 0.025 - 1e-9
    assert all(t.end >= t.start for t in timings)


def test_spoken_tokens_are_words_and_bare_punctuation_is_not() -> None:
    tokens = ["¿Qué", "—", "«tal»?", "25", "%", "हैं?", "d'una", "e\u0301."]
    assert [bare_word(t) for t in tokens if is_spoken(t)] == ["Qué", "tal", "25", "हैं", "d'una", "e\u0301"]


def test_a_piece_of_only_spaces_belongs_to_the_first_word() -> None:
    # Found by the property test: the model may read a piece whose sounds G2P dropped as bare spaces.
    assert phoneme_owners("  ", ["ab", "cd"]) == [0, 0]
