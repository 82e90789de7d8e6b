"""Text helpers every voice engine shares: language codes and cutting text at natural boundaries.

Stdlib only. Voice engines send text to models and services that read a bounded amount at once
(Google Cloud TTS: 5,000 bytes a request; Kokoro: 510 phonemes), so long narration is cut where a
listener would pause anyway: after a sentence, else a clause, else a word.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable


def normalize_language(lang: str) -> str:
    """zray's spelling of a language code: lower case, `-` between parts (`pt_BR` -> `pt-br`)."""
    return lang.strip().lower().replace("_", "-")


# Boundaries to split at, best first: after a sentence end, after a clause mark, at any whitespace.
# A piece ends after the mark and the whitespace that follows it, so no text is lost. CJK marks
# need no space after them.
_BOUNDARIES = (
    re.compile(r"(?<=[.!?…])[\"'”’»)\]]*\s+|(?<=[。！？])\s*|\n\s*"),
    re.compile(r"(?<=[,;:—–])\s+|(?<=[、，；：])\s*"),
    re.compile(r"\s+"),
)


def _is_word_character(character: str) -> bool:
    # Combining marks count: an accent in decomposed form, a Devanagari vowel sign.
    return character.isalnum() or unicodedata.category(character).startswith("M")


def is_spoken(token: str) -> bool:
    """Whether a whitespace-separated token is a word (has a letter or digit), not bare punctuation."""
    return any(_is_word_character(character) for character in token)


def bare_word(token: str) -> str:
    """A token without the punctuation around it: `¿Qué` -> `Qué`, `roja?` -> `roja`; `d'una` stays."""
    start, end = 0, len(token)
    while start < end and not _is_word_character(token[start]):
        start += 1
    while end > start and not _is_word_character(token[end - 1]):
        end -= 1
    return token[start:end]


def utf8_size(text: str) -> int:
    return len(text.encode("utf-8"))


def split_text(text: str, *, max_bytes: int, measure: Callable[[str], int] = utf8_size) -> list[str]:
    """Cut `text` into pieces of at most `max_bytes` whose concatenation is exactly `text`.

    A piece's size is `measure(piece)`: its UTF-8 bytes, or what the request built from it will weigh
    (Google's SSML with a mark per word and escaping). Pieces end at sentence boundaries where
    possible, then at clause marks, then at spaces; a run of text with none of those (a URL, a long
    CJK sentence) is cut between characters.
    """
    if max_bytes < 4:
        raise ValueError(f"max_bytes must be at least 4 (one UTF-8 character), got {max_bytes}")
    return _split(text, max_bytes, 0, measure)


def _split(text: str, max_bytes: int, level: int, measure: Callable[[str], int]) -> list[str]:
    if measure(text) <= max_bytes:
        return [text] if text else []
    if level == len(_BOUNDARIES):
        return _split_characters(text, max_bytes, measure)
    pieces: list[str] = []
    current = ""
    for part in _split_after(text, _BOUNDARIES[level]):
        if measure(current + part) <= max_bytes:
            current += part
            continue
        if current:
            pieces.append(current)
        if measure(part) <= max_bytes:
            current = part
        else:
            # A part too big on its own is cut at the next kind of boundary; its tail may share a
            # piece with what follows.
            *whole, current = _split(part, max_bytes, level + 1, measure)
            pieces.extend(whole)
    if current:
        pieces.append(current)
    return pieces


def _split_after(text: str, boundary: re.Pattern[str]) -> list[str]:
    parts: list[str] = []
    start = 0
    for match in boundary.finditer(text):
        if match.end() > start:
            parts.append(text[start : match.end()])
            start = match.end()
    if start < len(text):
        parts.append(text[start:])
    return parts


def _split_characters(text: str, max_bytes: int, measure: Callable[[str], int]) -> list[str]:
    pieces: list[str] = []
    current = ""
    for character in text:
        if current and measure(current + character) > max_bytes:
            pieces.append(current)
            current = ""
        current += character
    if current:
        pieces.append(current)
    return pieces
