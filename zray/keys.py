"""Content keys and safe file names: pure functions, no I/O."""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from typing import Any

KEY_LENGTH = 16
# Part of every node's key (see `zray.nodes.node_key`): bumped when the way keys are made changes, so
# no key made one way can ever equal one made another. Format 1 was zray 0.1's hand-written keys
# (recognised only by `zray.pipeline.migrate_keys`); format 2 derives each key from its typed request.
KEY_FORMAT = 2
# Reserved and control characters, and the bidirectional controls (U+202A-U+202E, U+2066-U+2069)
# that make a name read differently from what it is (`evil\u202egnp.mp4` shows as `evilmp4.png`).
_UNSAFE = re.compile(r'[<>:"/\\|?*\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]')
_WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL"} | {f"{p}{n}" for p in ("COM", "LPT") for n in range(1, 10)}
_MAX_NAME_BYTES = 120
# The YouTube tag that names which build of a video went up (see `zray.publish.youtube.metadata`).
CONTENT_TAG_PREFIX = "zray-c-"
_HEX16 = re.compile(r"[0-9a-f]{16}")


def content_key(*parts: Any, **fields: Any) -> str:
    """A short hex digest of everything that determines an artifact.

    Parts are serialized as canonical JSON so that dict order, tuples vs lists and float repr
    never change a key; anything not JSON-native must be turned into a string by the caller.
    """
    payload = json.dumps([list(parts), fields], sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:KEY_LENGTH]


def content_tag(content_key: str) -> str:
    """The tag naming the content a video was made from: the run's 16-hex key itself, or (for a key
    of another shape) its digest, so every content tag has the length `limits` reserves for it."""
    digest = (
        content_key if _HEX16.fullmatch(content_key) else hashlib.sha256(content_key.encode()).hexdigest()
    )
    return CONTENT_TAG_PREFIX + digest[:16]


def bytes_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def safe_name(text: str, *, fallback: str = "untitled", max_bytes: int = _MAX_NAME_BYTES) -> str:
    """A file-name component made from script text, safe on Linux, macOS and Windows.

    Letters of any script stay readable (`Título`); separators, reserved characters and control
    characters go, so the result can never name another folder. NFC keeps macOS (which stores
    NFD) and Linux agreeing on one spelling.
    """
    name = unicodedata.normalize("NFC", text)
    name = _UNSAFE.sub(" ", name)
    name = "_".join(name.split())
    # Leading dots would hide the file or spell "..", trailing dots and spaces are dropped by Windows.
    name = name.strip("._ ")
    name = _truncate_utf8(name, max_bytes).rstrip("._ ")
    if not name:
        return fallback
    if name.split(".")[0].upper() in _WINDOWS_RESERVED:
        name = f"_{name}"
    return name


def _truncate_utf8(text: str, max_bytes: int) -> str:
    encoded = text.encode("utf-8")
    if len(encoded) <= max_bytes:
        return text
    return encoded[:max_bytes].decode("utf-8", errors="ignore")
