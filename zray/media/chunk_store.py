"""What a ChunkCache holds: self-checking records of encoded AAC chunks, loudness gains, chunks'
loudness and peak measures, and plans.

A record is a magic string, the SHA-256 of the rest, a JSON header that names the key it was
stored under, and a payload. Reading one checks all three, so a damaged or truncated file, or a
file under the wrong key, reads as missing: the caller encodes it again and never muxes it.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from zray.media.loudness import ChunkLoudness
from zray.media.video.aac import AacPacket

_MAGIC = b"ZRAYREC1"


class ChunkCache(Protocol):
    """Where encoded chunks, gains and plans are kept between runs (the pipeline implements it over
    its store). Keys are short ASCII strings: a kind, a dash and a hex digest."""

    def get(self, key: str) -> bytes | None: ...

    def put(self, key: str, data: bytes) -> None: ...


class MemoryCache:
    """A ChunkCache in a dict: for tests, benchmarks and one-off encodes."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}

    def get(self, key: str) -> bytes | None:
        return self.data.get(key)

    def put(self, key: str, data: bytes) -> None:
        self.data[key] = data


def seal(key: str, header: Mapping[str, Any], payload: bytes = b"") -> bytes:
    """A record: magic, the SHA-256 of the rest, then a JSON header (which names its key) and payload."""
    head = json.dumps({"key": key, **header}, sort_keys=True).encode()
    body = len(head).to_bytes(4, "big") + head + payload
    return _MAGIC + hashlib.sha256(body).digest() + body


def unseal(key: str, data: bytes | None) -> tuple[dict[str, Any], bytes] | None:
    """A record's header and payload, or None if it is missing, damaged or another key's."""
    if data is None or not data.startswith(_MAGIC) or len(data) < len(_MAGIC) + 36:
        return None
    digest, body = data[len(_MAGIC) : len(_MAGIC) + 32], data[len(_MAGIC) + 32 :]
    if hashlib.sha256(body).digest() != digest:
        return None
    size = int.from_bytes(body[:4], "big")
    try:
        header = json.loads(body[4 : 4 + size])
    except ValueError:
        return None
    if not isinstance(header, dict) or header.get("key") != key:
        return None
    return header, body[4 + size :]


def chunk_record(key: str, packets: Mapping[int, AacPacket]) -> bytes:
    ordered = [packets[pts] for pts in sorted(packets)]
    header = {"packets": [[packet.pts, packet.duration, len(packet.data)] for packet in ordered]}
    return seal(key, header, b"".join(packet.data for packet in ordered))


def read_chunk(key: str, data: bytes | None) -> dict[int, AacPacket] | None:
    record = unseal(key, data)
    if record is None:
        return None
    header, payload = record
    packets, at = {}, 0
    try:
        for pts, duration, size in header["packets"]:
            packets[int(pts)] = AacPacket(int(pts), int(duration), payload[at : at + size])
            at += size
    except (KeyError, TypeError, ValueError):
        return None
    if at != len(payload) or not packets:
        return None
    return packets


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def read_gain(key: str, data: bytes | None) -> tuple[float, tuple[str, ...]] | None:
    """A mix's gain, and the keys of the chunk measures it was found from."""
    record = unseal(key, data)
    if record is None:
        return None
    gain, measures = _number(record[0].get("gain_db")), record[0].get("measures", [])
    if gain is None or not isinstance(measures, list) or not all(isinstance(m, str) for m in measures):
        return None
    return gain, tuple(measures)


def gain_record(key: str, gain_db: float, measures: tuple[str, ...] = ()) -> bytes:
    return seal(key, {"gain_db": float(gain_db), "measures": list(measures)})


@dataclass(frozen=True)
class Plan:
    """Extra limiting steps per chunk, and the peak of the stream they made (named by its chunks' keys)."""

    steps: tuple[int, ...]
    keys: str
    true_peak_dbtp: float


def read_plan(key: str, data: bytes | None, *, chunks: int) -> Plan | None:
    record = unseal(key, data)
    if record is None:
        return None
    steps, keys, peak = (
        record[0].get("steps"),
        record[0].get("keys"),
        _number(record[0].get("true_peak_dbtp")),
    )
    if not isinstance(steps, list) or len(steps) != chunks or not isinstance(keys, str) or peak is None:
        return None
    if not all(isinstance(step, int) and not isinstance(step, bool) and step >= 0 for step in steps):
        return None
    return Plan(tuple(steps), keys, peak)


def plan_record(key: str, plan: Plan) -> bytes:
    return seal(key, {"steps": list(plan.steps), "keys": plan.keys, "true_peak_dbtp": plan.true_peak_dbtp})


@dataclass(frozen=True)
class Check:
    """One chunk's region of the decoded stream: its true peak, and the largest true peak over the
    ceiling (less the margin) anywhere in it and in its seam (None where none is), all linear."""

    peak: float
    over: float | None
    seam_over: float | None


def read_check(key: str, data: bytes | None) -> Check | None:
    record = unseal(key, data)
    if record is None:
        return None
    header = record[0]
    peak = _number(header.get("peak"))
    values = [header.get("over"), header.get("seam_over")]
    if peak is None or any(value is not None and _number(value) is None for value in values):
        return None
    over, seam_over = (None if value is None else float(value) for value in values)
    return Check(peak, over, seam_over)


def check_record(key: str, check: Check) -> bytes:
    return seal(key, {"peak": check.peak, "over": check.over, "seam_over": check.seam_over})


def loudness_record(key: str, measures: ChunkLoudness) -> bytes:
    """A chunk's loudness measures: float64 arrays, their shapes in the header."""
    gains = sorted(measures.changes)
    arrays = [measures.steps, measures.state, *(measures.changes[gain] for gain in gains)]
    header = {"shapes": [list(array.shape) for array in arrays], "gains": gains, "settled": measures.settled}
    return seal(key, header, b"".join(np.ascontiguousarray(a, dtype="<f8").tobytes() for a in arrays))


def read_loudness(key: str, data: bytes | None) -> ChunkLoudness | None:
    record = unseal(key, data)
    if record is None:
        return None
    header, payload = record
    try:
        shapes = [tuple(int(size) for size in shape) for shape in header["shapes"]]
        gains = [int(gain) for gain in header["gains"]]
        settled = header["settled"]
        if settled is not None and (isinstance(settled, bool) or not isinstance(settled, int)):
            return None
        arrays, at = [], 0
        for shape in shapes:
            size = 8 * math.prod(shape)
            arrays.append(np.frombuffer(payload[at : at + size], dtype="<f8").reshape(shape))
            at += size
    except (KeyError, TypeError, ValueError):
        return None
    if at != len(payload) or len(arrays) != 2 + len(gains) or len(arrays[0].shape) != 2:
        return None
    steps, state, *changes = arrays
    if any(change.shape != steps.shape for change in changes) or state.shape[:1] != steps.shape[:1]:
        return None
    return ChunkLoudness(steps, state, dict(zip(gains, changes, strict=True)), settled)
