"""The final audio of a video: brought to its loudness, held under its true-peak ceiling, and encoded
as AAC in chunks that a cache keeps, so that a rerun encodes only what changed.

Gain. The loudness gain is searched over the whole mix (BS.1770 integrated loudness through the
limiter, `loudness.loudness_gain`) on a 0.1 dB grid, so a small edit keeps it. It is cached under a
digest of the mix, so a rerun of an unchanged mix does no loudness work at all, and the measures of
each of the mix's chunks are cached too, so an edit measures only the chunks from it on.

Chunks. The track is cut on a fixed grid of `CHUNK_FRAMES` AAC frames from sample 0, so an edit
late in an episode leaves every earlier chunk as it was. A chunk is encoded from `PREROLL_FRAMES`
before its start to `OVERRUN_FRAMES` past its end (see `video.aac`), after the limiter, which is
local (`limiter.limiter_reach`), so its packets depend only on the samples of that window widened
by the limiter's reach. Its key is a digest of exactly that: those samples, the gain, the ceiling,
the grid, the encoder and `VERSION`. Splice points are chosen when chunks are joined.

Headroom. An AAC encode reshapes the waveform and overshoots the PCM's true peak (about 0.2-0.3 dB
on speech at 192 kb/s, 2 dB on full-band clipped material), so the limiter holds the PCM
`AAC_HEADROOM_DB` under the ceiling, and each chunk is decoded once encoded and, while over the
ceiling, limited again lower and encoded again. Two things only the whole stream shows remain: the
seams, and the bands the encoder leaves to noise substitution, which a decoder fills from a random
generator whose state depends on all it decoded before. So the joined stream is decoded from the
start, as a player or ffmpeg's ebur128 does, and a chunk still over gets `STEP_DB` more limiting
per step (its steps are part of its key) until none is. The steps are kept as the track's plan,
under the mix's digest, with the peak found, so an unchanged rerun decodes nothing. Each chunk's
region of the decoded stream is measured on its own and kept under the digest of every packet up to
it (all that the decoder's state and those samples depend on), so after an edit only the regions
from the first changed packet on are measured again; the stream is still decoded from its start.

Stored chunks, gains and plans are self-checking (see `chunk_store`), so a damaged file is found,
encoded again and never muxed.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from zray.media import chunk_store
from zray.media.chunk_store import ChunkCache, MemoryCache
from zray.media.constants import AAC_FRAME
from zray.media.levels import AudioError, check_peak_dbfs, check_target_lufs
from zray.media.limiter import TRUE_PEAK_REACH, TruePeaks, limit, limiter_reach
from zray.media.loudness import ChunkLoudness, loudness_gain
from zray.media.video import aac
from zray.media.video.settings import check_sample_rate

__all__ = ["CHUNK_FRAMES", "ChunkCache", "EncodedTrack", "MemoryCache", "encode_track"]

# Bump when anything that shapes the packets changes, so no cached chunk from before is reused.
VERSION = 2  # 2: the gain searched on its 0.1 dB grid, from cached chunk measures
# 720 AAC frames, 15.36 s at 48 kHz: the pre-roll costs 13 % more encoding, and an edit that keeps
# the track's length re-encodes the one or two chunks whose windows hold it.
CHUNK_FRAMES = 720
AAC_HEADROOM_DB = 0.5
# Chunks are held this far under the ceiling, for meters that interpolate a little differently.
_PEAK_MARGIN_DB = 0.05
# Each retry lowers a chunk's ceiling by its excess plus this; a few always sufficed.
_RETRY_STEP_DB = 0.1
_ATTEMPTS = 6
# What one step of a chunk's plan takes off its ceiling, and how many rounds of whole-stream checks.
STEP_DB = 0.25
_ROUNDS = 4


@dataclass(frozen=True)
class EncodedTrack:
    """The final audio, encoded: what `video.assemble` muxes, and what it cost."""

    audio: aac.EncodedAudio
    gain_db: float
    gain_reused: bool
    chunks_reused: int
    chunks_encoded: int
    true_peak_dbtp: float  # of the whole stream decoded from its start


@dataclass(frozen=True)
class _Chunk:
    start: int  # the samples it owns: start .. stop - 1
    stop: int
    encode_from: int  # what its encoder is fed
    encode_to: int
    read_from: int  # what the limiter reads: the encoder's window and the limiter's reach
    read_to: int


def _grid(samples: int, *, sample_rate: int) -> list[_Chunk]:
    size, reach = CHUNK_FRAMES * AAC_FRAME, limiter_reach(sample_rate)
    chunks = []
    for start in range(0, samples, size):
        stop = min(samples, start + size)
        encode_from = max(0, start - aac.PREROLL_FRAMES * AAC_FRAME)
        encode_to = min(samples, stop + aac.OVERRUN_FRAMES * AAC_FRAME)
        read_from, read_to = max(0, encode_from - reach), min(samples, encode_to + reach)
        chunks.append(_Chunk(start, stop, encode_from, encode_to, read_from, read_to))
    return chunks


# ------------------------------------------------------------------------------------------------ keys


def _digests(track: np.ndarray, chunks: list[_Chunk]) -> Iterator[bytes]:
    """SHA-256 of the samples each chunk reads (its channels' bytes in turn)."""
    for chunk in chunks:
        digest = hashlib.sha256()
        for channel in track:
            digest.update(memoryview(channel[chunk.read_from : chunk.read_to]))
        yield digest.digest()


def _key(kind: str, settings: Mapping[str, Any], content: bytes) -> str:
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    digest.update(content)
    return f"{kind}-{digest.hexdigest()}"


class _LoudnessMemo:
    """The loudness measures of a mix's chunks (`loudness.LoudnessMemo`), kept in the chunk cache."""

    def __init__(self, cache: ChunkCache) -> None:
        self.cache = cache
        self.keys: list[str] = []

    def get(self, key: str) -> ChunkLoudness | None:
        self.keys.append(key)
        return chunk_store.read_loudness(key, self.cache.get(key))

    def put(self, key: str, value: ChunkLoudness) -> None:
        self.cache.put(key, chunk_store.loudness_record(key, value))


# --------------------------------------------------------------------------------------------- encoding


def _decoded_peak(packets: Mapping[int, aac.AacPacket], chunk: _Chunk, *, sample_rate: int) -> float:
    """The true peak (dBTP) of a chunk's decoded audio, over the samples it owns and the seams
    either side where a splice may hand over to its neighbours."""
    seam = (aac.OVERRUN_FRAMES + 1) * AAC_FRAME
    lo = max(chunk.encode_from, chunk.start - 2 * AAC_FRAME)
    hi = min(chunk.encode_to, chunk.stop + seam)
    # Decoded from two frames before the region: the first frame a decoder puts out is half made.
    ordered = [packets[pts] for pts in sorted(packets) if pts >= lo - 2 * AAC_FRAME]
    first = ordered[0].pts  # decoded[:, j] is track sample first + j
    decoded = aac.decode(ordered, sample_rate=sample_rate)
    return _dbtp(TruePeaks(decoded[:, lo - first : hi - first]).maximum())


def _dbtp(peak: float) -> float:
    return 20 * float(np.log10(peak)) if peak > 0 else -200.0


def _encode_chunk(
    track: np.ndarray, chunk: _Chunk, *, gain_db: float, peak_dbfs: float, steps: int, sample_rate: int
) -> dict[int, aac.AacPacket]:
    window = track[:, chunk.read_from : chunk.read_to] * np.float32(10 ** (gain_db / 20))
    ceiling_db = peak_dbfs - AAC_HEADROOM_DB - steps * STEP_DB
    target_db = peak_dbfs - _PEAK_MARGIN_DB
    for _ in range(_ATTEMPTS):
        limited = limit(window, ceiling=10 ** (ceiling_db / 20), sample_rate=sample_rate)
        fed = limited[:, chunk.encode_from - chunk.read_from : chunk.encode_to - chunk.read_from]
        packets = aac.encode_span(fed, first=chunk.encode_from, sample_rate=sample_rate)
        peak_db = _decoded_peak(packets, chunk, sample_rate=sample_rate)
        if peak_db <= target_db:
            break
        ceiling_db -= peak_db - target_db + _RETRY_STEP_DB
    # Kept: from the frame before the chunk's start (the splice reads its window shape) to the end.
    return {pts: packet for pts, packet in packets.items() if pts >= chunk.start - AAC_FRAME}


def _as_track(track: np.ndarray) -> np.ndarray:
    audio = np.asarray(track, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[np.newaxis]
    if audio.ndim != 2 or audio.shape[0] not in (1, 2) or audio.shape[1] == 0:
        raise AudioError(
            f"the final audio must be a (channels, samples) array with 1 or 2 channels and at least "
            f"one sample, got shape {np.shape(track)}"
        )
    if not np.isfinite(audio).all():
        raise AudioError("the final audio contains NaN or infinite samples")
    if audio.shape[0] == 1:
        audio = np.repeat(audio, 2, axis=0)
    return np.ascontiguousarray(audio)


def encode_track(
    track: np.ndarray,
    *,
    sample_rate: int,
    target_lufs: float,
    peak_dbfs: float,
    cache: ChunkCache,
    workers: int = 0,
) -> EncodedTrack:
    """Master a mixed track and encode it to AAC, reusing every chunk the cache already holds.

    `track` is float32 (channels, samples), mono or stereo (mono is duplicated), already exactly as
    long as the video. Its integrated loudness is brought to `target_lufs` (unless that would take
    more than 9 dB of make-up gain through the limiter) and the true peak of the encoded audio,
    decoded from its start as ffmpeg's ebur128 measures it, is at most `peak_dbfs`. Up to `workers` chunks are encoded at once (0: one per core). Records are
    read from and written to `cache`; one that fails its check is encoded again and replaced.
    """
    check_sample_rate(sample_rate)
    target_lufs, peak_dbfs = check_target_lufs(target_lufs), check_peak_dbfs(peak_dbfs)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise AudioError(f"workers must be 0 (one per core) or a positive number, got {workers!r}")
    audio = _as_track(track)
    samples = audio.shape[1]
    chunks = _grid(samples, sample_rate=sample_rate)
    digests = list(_digests(audio, chunks))
    settings = {
        "version": VERSION,
        "sample_rate": sample_rate,
        "peak_dbfs": peak_dbfs,
        "headroom_db": AAC_HEADROOM_DB,
    }

    # The chunks' read windows cover the whole track, so their digests name the mix.
    mix = hashlib.sha256(samples.to_bytes(8, "big") + b"".join(digests)).digest()
    gain_key = _key("gain", {**settings, "target_lufs": target_lufs}, mix)
    stored_gain = chunk_store.read_gain(gain_key, cache.get(gain_key))
    gain_reused = stored_gain is not None
    if stored_gain is not None:
        gain_db, measures = stored_gain
        # Not needed now, but kept: a cache drops what an encode did not read, and an edit to a
        # later part of the mix will want the chunks' loudness measures before it.
        for key in measures:
            cache.get(key)
    else:
        ceiling = 10 ** ((peak_dbfs - AAC_HEADROOM_DB) / 20)
        memo = _LoudnessMemo(cache)
        gain_db = loudness_gain(
            audio, sample_rate=sample_rate, target_lufs=target_lufs, ceiling=ceiling, memo=memo
        )
        cache.put(gain_key, chunk_store.gain_record(gain_key, gain_db, tuple(memo.keys)))

    chunk_settings = {
        **settings,
        "gain_db": gain_db,
        "encoder": aac.encoder_identity(),
        "grid": [CHUNK_FRAMES, aac.PREROLL_FRAMES, aac.OVERRUN_FRAMES, AAC_FRAME],
        "margin_db": _PEAK_MARGIN_DB,
        "step_db": STEP_DB,
    }
    plan_key = _key("plan", chunk_settings, mix)
    plan = chunk_store.read_plan(plan_key, cache.get(plan_key), chunks=len(chunks))
    steps = list(plan.steps) if plan is not None else [0] * len(chunks)
    parts: list[dict[int, aac.AacPacket]] = [{} for _ in chunks]
    keys = [""] * len(chunks)
    encoded: set[int] = set()

    def key_of(index: int) -> str:
        chunk = chunks[index]
        window = [chunk.start, chunk.stop, chunk.encode_from, chunk.encode_to, chunk.read_from, chunk.read_to]
        return _key("aac", {**chunk_settings, "window": window, "steps": steps[index]}, digests[index])

    def resolve(indices: list[int]) -> None:
        """Read these chunks from the cache, or encode and store those it lacks or holds damaged."""
        missing = []
        for index in indices:
            keys[index] = key_of(index)
            stored = chunk_store.read_chunk(keys[index], cache.get(keys[index]))
            if stored is None:
                missing.append(index)
            else:
                parts[index] = stored

        def encode(index: int) -> dict[int, aac.AacPacket]:
            return _encode_chunk(
                audio,
                chunks[index],
                gain_db=gain_db,
                peak_dbfs=peak_dbfs,
                steps=steps[index],
                sample_rate=sample_rate,
            )

        pool_size = max(1, min(len(missing), workers or os.cpu_count() or 1))
        with ThreadPoolExecutor(max_workers=pool_size) as pool:
            for index, packets in zip(missing, pool.map(encode, missing), strict=True):
                parts[index] = packets
                encoded.add(index)
                cache.put(keys[index], chunk_store.chunk_record(keys[index], packets))

    resolve(list(range(len(chunks))))
    packets = aac.join(parts, [chunk.start for chunk in chunks[1:]])
    stream = hashlib.sha256("".join(keys).encode()).hexdigest()
    check_settings = {**settings, "decoder": aac.encoder_identity(), "grid": chunk_settings["grid"]}
    if plan is not None and plan.keys == stream:
        true_peak_dbtp = plan.true_peak_dbtp
        # Not needed now, but kept: a cache drops what an encode did not read, and an edit to a
        # later part of the mix will want these regions' measures.
        for key in _check_keys(packets, chunks, {**check_settings, "margin_db": _PEAK_MARGIN_DB}):
            cache.get(key)
    else:
        for done in range(_ROUNDS + 1):
            true_peak_dbtp, over = _check_stream(
                packets,
                chunks,
                peak_dbfs=peak_dbfs,
                sample_rate=sample_rate,
                cache=cache,
                settings=check_settings,
            )
            if not over or done == _ROUNDS:
                break
            for index, excess_db in over.items():
                steps[index] += max(1, math.ceil(excess_db / STEP_DB))
            resolve(sorted(over))
            packets = aac.join(parts, [chunk.start for chunk in chunks[1:]])
        stream = hashlib.sha256("".join(keys).encode()).hexdigest()
        plan_now = chunk_store.Plan(tuple(steps), stream, true_peak_dbtp)
        cache.put(plan_key, chunk_store.plan_record(plan_key, plan_now))
    return EncodedTrack(
        audio=aac.EncodedAudio(tuple(packets), sample_rate, samples),
        gain_db=gain_db,
        gain_reused=gain_reused,
        chunks_reused=len(chunks) - len(encoded),
        chunks_encoded=len(encoded),
        true_peak_dbtp=true_peak_dbtp,
    )


def _check_bounds(chunks: list[_Chunk]) -> list[int]:
    """For each chunk, the first pts from which no packet can change its region's decoded samples or
    the true peaks there: its stop, the true peak's reach, a decoder frame's delay and one spare."""
    return [chunk.stop + TRUE_PEAK_REACH + 2 * AAC_FRAME for chunk in chunks]


def _prefix_digests(packets: list[aac.AacPacket], bounds: list[int]) -> list[bytes]:
    """For each (ascending) bound, SHA-256 of every packet before it, from the stream's first: what a
    region's decoded samples depend on, since a decoder's state carries everything it decoded."""
    digest, out, at = hashlib.sha256(), [], 0
    for bound in bounds:
        while at < len(packets) and packets[at].pts < bound:
            packet = packets[at]
            digest.update(packet.pts.to_bytes(8, "big", signed=True) + packet.duration.to_bytes(4, "big"))
            digest.update(len(packet.data).to_bytes(4, "big") + packet.data)
            at += 1
        out.append(digest.copy().digest())
    return out


def _check_keys(packets: list[aac.AacPacket], chunks: list[_Chunk], settings: Mapping[str, Any]) -> list[str]:
    samples = chunks[-1].stop
    # A region reads the stream up to the track's end at most: only there does its length count.
    return [
        _key(
            "check",
            {**settings, "region": [chunk.start, chunk.stop, min(samples, chunk.stop + TRUE_PEAK_REACH)]},
            digest,
        )
        for chunk, digest in zip(chunks, _prefix_digests(packets, _check_bounds(chunks)), strict=True)
    ]


def _check_region(decoded: np.ndarray, chunk: _Chunk, *, level: float) -> chunk_store.Check:
    """The true peaks of one chunk's region of the decoded stream, read with the samples on either
    side that they depend on: exactly those of oversampling the whole stream there."""
    lo, hi = chunk.start, chunk.stop
    read_from, read_to = max(0, lo - TRUE_PEAK_REACH), min(decoded.shape[1], hi + TRUE_PEAK_REACH)
    peaks = TruePeaks(decoded[:, read_from:read_to])
    largest = float(np.abs(decoded[:, lo:hi]).max())
    # The phase on a sample reproduces it (times 1.0006), so the region's maximum is over 0.99 of its
    # largest sample: only samples near it, and those over the level, need oversampling.
    index, values = peaks.over(min(level, 0.99 * largest) if largest > 0 else level)
    inside = (index >= lo - read_from) & (index < hi - read_from)
    index, values = index[inside] + read_from, values[inside]
    peak = max(float(values.max()) if values.size else 0.0, largest)
    over = values > level
    seam = over & (index - lo < (aac.OVERRUN_FRAMES + 1) * AAC_FRAME)
    return chunk_store.Check(
        peak=peak,
        over=float(values[over].max()) if over.any() else None,
        seam_over=float(values[seam].max()) if seam.any() else None,
    )


def _check_stream(
    packets: list[aac.AacPacket],
    chunks: list[_Chunk],
    *,
    peak_dbfs: float,
    sample_rate: int,
    cache: ChunkCache,
    settings: Mapping[str, Any],
) -> tuple[float, dict[int, float]]:
    """The true peak (dBTP) of the joined stream decoded from its start, and by how many dB each
    chunk whose samples (or seam) go over the ceiling, less the margin, is over.

    Measured per chunk's region and kept in `cache` under the digest of every packet up to it, so a
    region whose packets and all before are unchanged is not measured again. The stream is still
    decoded from its start up to the last region measured: the decoder's state carries it all."""
    samples = chunks[-1].stop
    target_db = peak_dbfs - _PEAK_MARGIN_DB
    level = 10 ** (target_db / 20)
    keys = _check_keys(packets, chunks, {**settings, "margin_db": _PEAK_MARGIN_DB})
    checks = [chunk_store.read_check(key, cache.get(key)) for key in keys]
    missing = [index for index, check in enumerate(checks) if check is None]
    if missing:
        until = _check_bounds(chunks)[missing[-1]]
        decoded = aac.decode([p for p in packets if p.pts < until], sample_rate=sample_rate)
        decoded = decoded[:, AAC_FRAME : AAC_FRAME + samples]
        for index in missing:
            checks[index] = _check_region(decoded, chunks[index], level=level)
            cache.put(keys[index], chunk_store.check_record(keys[index], checks[index]))
    over: dict[int, float] = {}
    for index, check in enumerate(checks):
        assert check is not None
        if check.over is not None:
            over[index] = max(over.get(index, 0.0), _dbtp(check.over) - target_db)
        # Past a boundary, up to the splice, the samples may still come from the chunk before.
        if check.seam_over is not None and index > 0:
            over[index - 1] = max(over.get(index - 1, 0.0), _dbtp(check.seam_over) - target_db)
    return _dbtp(max(check.peak for check in checks if check is not None)), over
