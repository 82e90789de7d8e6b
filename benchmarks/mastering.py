"""Benchmark: the final audio of a 4-minute episode, mastered and encoded, first and after edits.

    python benchmarks/mastering.py                  # 12 scenes, 240 s, stereo 48 kHz
    python benchmarks/mastering.py --seconds 60

The track is built as the pipeline builds it: per-scene narration (a speech-like stand-in with a
TTS voice's peak-to-loudness ratio, tests/speech_like.py) padded to whole frames and joined, mixed
with the draft profile's ambient music bed at 8 %. Printed, each with wall and CPU seconds:

- the true-peak limiter alone, on the track at its final gain: the old path (4x oversampling of
  every sample, benchmarks/old_loudness.py) against the new (zray.media.limiter.limit);
- loudness normalization as the assembly step did it (old_loudness.normalize_loudness) against the
  new gain search plus limiter;
- the old audio path of assembly (normalize, then AAC in parallel chunks) against
  mastering.encode_track with an empty cache;
- encode_track again: with nothing changed; after a sentence appended to a late scene (10 of 12),
  which moves the music under every later chunk; after a same-length change inside scene 6.

Every encode_track result is decoded and its loudness and true peak measured.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "benchmarks"))

import old_loudness  # noqa: E402
from speech_like import narration  # noqa: E402

from zray.engines.ambient import AmbientMusicEngine  # noqa: E402
from zray.media import audio, mastering  # noqa: E402
from zray.media.constants import AAC_FRAME, SAMPLE_RATE  # noqa: E402
from zray.media.limiter import TruePeaks, limit  # noqa: E402
from zray.media.loudness import integrated_loudness, loudness_gain  # noqa: E402
from zray.media.video import aac  # noqa: E402

FPS = 24
TARGET, PEAK = -14.0, -1.0


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed(what: Callable[[], Any]) -> tuple[Any, float, float]:
    cpu, wall = cpu_seconds(), time.perf_counter()
    result = what()
    return result, time.perf_counter() - wall, cpu_seconds() - cpu


def scene_seconds(scenes: int, seconds: float, seed: int = 7) -> list[float]:
    weights = np.random.default_rng(seed).uniform(0.5, 1.5, scenes)
    return [float(s) for s in weights / weights.sum() * seconds]


def episode(lengths: list[float], music: np.ndarray) -> np.ndarray:
    """The pipeline's mix: each scene's narration faded and padded to whole frames, then the bed."""
    pads = [
        audio.pad_to_frames(audio.apply_fades(narration(length, seed=index)[None]), fps=FPS)
        for index, length in enumerate(lengths)
    ]
    return audio.mix_music(np.concatenate(pads, axis=1), music, level=0.08, channels=2)


def report(name: str, wall: float, cpu: float, extra: str = "") -> None:
    print(f"{name:<52} {wall:7.2f} s wall {cpu:7.2f} s CPU  {extra}")


def measured(encoded: mastering.EncodedTrack) -> str:
    decoded = aac.decode(list(encoded.audio.packets), sample_rate=SAMPLE_RATE)
    decoded = decoded[:, AAC_FRAME : AAC_FRAME + encoded.audio.samples]
    peak = 20 * np.log10(TruePeaks(decoded).maximum())
    return (
        f"gain {encoded.gain_db:+.1f} dB ({'cached' if encoded.gain_reused else 'searched'}), "
        f"chunks {encoded.chunks_encoded} encoded / {encoded.chunks_reused} reused; decoded: "
        f"{integrated_loudness(decoded, sample_rate=SAMPLE_RATE):.2f} LUFS, {peak:.2f} dBTP"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scenes", type=int, default=12)
    parser.add_argument("--seconds", type=float, default=240.0)
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    args = parser.parse_args()

    lengths = scene_seconds(args.scenes, args.seconds)
    music = AmbientMusicEngine().generate("calm ambient", seconds=60.0)
    track = episode(lengths, music)
    print(
        f"track: {track.shape[1] / SAMPLE_RATE:.1f} s stereo at {SAMPLE_RATE} Hz, {args.scenes} scenes, "
        f"{integrated_loudness(track, sample_rate=SAMPLE_RATE):.1f} LUFS before mastering; "
        f"{args.workers} workers, {os.cpu_count()} cores"
    )

    ceiling = 10 ** ((PEAK - mastering.AAC_HEADROOM_DB) / 20)
    gain_db = loudness_gain(track, sample_rate=SAMPLE_RATE, target_lufs=TARGET, ceiling=ceiling)
    gained = track * np.float32(10 ** (gain_db / 20))

    def old_limiter() -> np.ndarray:
        peaks = old_loudness._true_peak(gained)
        curve = old_loudness._limiter_gain(peaks, ceiling=ceiling, sample_rate=SAMPLE_RATE)
        return gained if curve is None else gained * curve

    _, old_wall, old_cpu = timed(old_limiter)
    report("limiter, old (4x oversampling everywhere)", old_wall, old_cpu)
    _, new_wall, new_cpu = timed(lambda: limit(gained, ceiling=ceiling, sample_rate=SAMPLE_RATE))
    report("limiter, new (oversampling near the ceiling)", new_wall, new_cpu, f"{old_wall / new_wall:.1f}x")

    _, old_norm_wall, old_norm_cpu = timed(
        lambda: old_loudness.normalize_loudness(track, target_lufs=TARGET, peak_dbfs=PEAK)
    )
    report("loudness normalization, old", old_norm_wall, old_norm_cpu)

    def new_normalize() -> np.ndarray:
        gain = loudness_gain(track, sample_rate=SAMPLE_RATE, target_lufs=TARGET, ceiling=ceiling)
        return limit(track * np.float32(10 ** (gain / 20)), ceiling=ceiling, sample_rate=SAMPLE_RATE)

    _, norm_wall, norm_cpu = timed(new_normalize)
    report(
        "loudness normalization, new (gain search + limiter)",
        norm_wall,
        norm_cpu,
        f"{old_norm_wall / norm_wall:.1f}x",
    )

    def old_audio_path() -> aac.EncodedAudio:
        normalized = old_loudness.normalize_loudness(track, target_lufs=TARGET, peak_dbfs=PEAK)
        return aac.encode_audio(normalized, SAMPLE_RATE, workers=args.workers)

    _, old_path_wall, old_path_cpu = timed(old_audio_path)
    report("assembly's audio, old (normalize + parallel AAC)", old_path_wall, old_path_cpu)

    cache = mastering.MemoryCache()

    def master(mix: np.ndarray) -> mastering.EncodedTrack:
        return mastering.encode_track(
            mix,
            sample_rate=SAMPLE_RATE,
            target_lufs=TARGET,
            peak_dbfs=PEAK,
            cache=cache,
            workers=args.workers,
        )

    first, wall, cpu = timed(lambda: master(track))
    report("encode_track, empty cache", wall, cpu, measured(first))
    again, wall, cpu = timed(lambda: master(track))
    report("encode_track, nothing changed", wall, cpu, measured(again))

    late = args.scenes - 3
    longer = list(lengths)
    longer[late] += 2.0  # a sentence appended: this scene and every later one shift the music under them
    appended = episode(longer, music)
    edited, wall, cpu = timed(lambda: master(appended))
    report(f"encode_track, a sentence appended to scene {late + 1}", wall, cpu, measured(edited))

    # The same length, different words in scene 6: only the chunks over it change.
    starts = np.cumsum([0] + [audio.target_frames(round(s * SAMPLE_RATE), fps=FPS) for s in lengths])
    middle = (starts[5] + starts[6]) // 2 * (SAMPLE_RATE // FPS)
    reworded = track.copy()
    reworded[:, middle : middle + SAMPLE_RATE] *= np.float32(0.8)
    same_length, wall, cpu = timed(lambda: master(reworded))
    report("encode_track, one second of scene 6 reworded", wall, cpu, measured(same_length))
    print(
        f"re-encoded after the late edit: {edited.chunks_encoded} of {first.chunks_encoded} chunks; "
        f"after the same-length edit: {same_length.chunks_encoded}"
    )


if __name__ == "__main__":
    main()
