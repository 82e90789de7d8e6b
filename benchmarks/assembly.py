"""Benchmark: zray's GOP-repeating assembly against moviepy 2 on one synthetic episode.

    python benchmarks/assembly.py                       # 12 scenes, 240 s, 1920x1072
    python benchmarks/assembly.py --scenes 4 --seconds 20

Both sides get the same scene images (PNG files), the same scene lengths in whole frames and the
same stereo 48 kHz track, and write H.264 (x264 medium, CRF 18, 24 fps) with AAC at 192 kb/s
(ffmpeg's native encoder, default coder, on both sides). zray encodes every still in a process
pool over this machine's cores (x264 codes each still's IDR picture; the rest of its 2-second GOP
are skip pictures), then assembles; moviepy renders every frame. Image and audio synthesis are
not timed. Both files are then decoded in full with PyAV and their pictures compared with the
source images.
"""

from __future__ import annotations

import argparse
import functools
import os
import resource
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from zray.media.video import MediaInfo, Segment, VideoSettings, assemble, encode_still, probe

FPS = 24
SAMPLE_RATE = 48_000


def make_image(seed: int, path: Path, width: int, height: int) -> None:
    """A storyboard-like picture: a gradient, soft shapes and a little grain, different per seed."""
    rng = np.random.default_rng(seed)
    x = np.linspace(0, 1, width, dtype=np.float32)[None, :, None]
    y = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
    top, bottom = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    mix = np.clip(y * rng.uniform(0.6, 1.0) + x * rng.uniform(0.0, 0.4), 0, 1)
    picture = Image.fromarray((top * (1 - mix) + bottom * mix).astype(np.uint8))
    draw = ImageDraw.Draw(picture)
    for _ in range(30):
        cx, cy, r = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(20, height / 3)
        colour = tuple(int(c) for c in rng.uniform(0, 255, 3))
        if rng.random() < 0.5:
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)
        else:
            draw.rectangle([cx - r, cy - r / 2, cx + r, cy + r / 2], fill=colour)
    picture = picture.filter(ImageFilter.GaussianBlur(2))
    grain = rng.normal(0, 3, (height, width, 1)).astype(np.float32)
    noisy = np.clip(np.asarray(picture, dtype=np.float32) + grain, 0, 255).astype(np.uint8)
    Image.fromarray(noisy).save(path)


def make_audio(samples: int) -> np.ndarray:
    """Stereo narration stand-in: a slowly swelling chord with a little noise, float32 (2, samples)."""
    t = np.arange(samples, dtype=np.float64) / SAMPLE_RATE
    swell = 0.5 + 0.5 * np.sin(2 * np.pi * 0.1 * t)
    left = swell * (np.sin(2 * np.pi * 220 * t) + 0.5 * np.sin(2 * np.pi * 277.2 * t))
    right = swell * (np.sin(2 * np.pi * 329.6 * t) + 0.5 * np.sin(2 * np.pi * 220 * t))
    noise = np.random.default_rng(0).normal(0, 0.01, (2, samples))
    return (0.2 * np.stack([left, right]) + noise).astype(np.float32)


def scene_lengths(scenes: int, seconds: float, seed: int = 7) -> list[int]:
    """Scene lengths in frames, uneven like narration, summing to seconds * FPS."""
    weights = np.random.default_rng(seed).uniform(0.5, 1.5, scenes)
    total = round(seconds * FPS)
    frames = np.maximum(1, np.floor(weights / weights.sum() * total)).astype(int)
    frames[-1] += total - frames.sum()
    return [int(f) for f in frames]


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (pool workers, moviepy's ffmpeg)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run_zray(
    images: list[Path], frames: list[int], audio: np.ndarray, work: Path, workers: int
) -> tuple[float, float, float, float, Path]:
    settings = VideoSettings(width=1920, height=1072, fps=FPS, preset="final")
    segments = [work / f"scene{index:03d}.h264" for index in range(len(images))]
    cpu = cpu_seconds()
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=workers) as pool:
        # One x264 thread per worker: a pool that fills every core gains nothing from more.
        threads = max(1, len(os.sched_getaffinity(0)) // workers)
        list(pool.map(functools.partial(encode_still, settings=settings, threads=threads), images, segments))
    encoded, encode_cpu = time.perf_counter(), cpu_seconds() - cpu
    out = work / "zray.mp4"
    assemble(
        [Segment(str(path), count) for path, count in zip(segments, frames, strict=True)],
        audio,
        out,
        settings=settings,
    )
    done = time.perf_counter()
    return encoded - started, done - encoded, encode_cpu, cpu_seconds() - cpu, out


def run_moviepy(
    images: list[Path], frames: list[int], audio: np.ndarray, work: Path
) -> tuple[float, float, Path]:
    from moviepy import ImageClip, concatenate_videoclips
    from moviepy.audio.AudioClip import AudioArrayClip

    out = work / "moviepy.mp4"
    cpu = cpu_seconds()
    started = time.perf_counter()
    clips = [ImageClip(str(path), duration=count / FPS) for path, count in zip(images, frames, strict=True)]
    video = concatenate_videoclips(clips).with_audio(AudioArrayClip(audio.T, fps=SAMPLE_RATE))
    write_like_zray(video, out)
    return time.perf_counter() - started, cpu_seconds() - cpu, out


def write_like_zray(video, out: Path) -> None:
    """moviepy's encode at zray's `final` settings: x264 medium CRF 18, AAC 192 kb/s at 48 kHz."""
    video.write_videofile(
        str(out),
        fps=FPS,
        codec="libx264",
        preset="medium",
        ffmpeg_params=["-crf", "18"],
        audio_codec="aac",
        audio_fps=SAMPLE_RATE,
        audio_bitrate="192k",
        logger=None,
    )
    video.close()


def count_frames(path: Path) -> int:
    """Frames that decode."""
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def verify(path: Path, images: list[Path], frames: list[int]) -> tuple[int, float]:
    """Decode every frame; return the count and the worst PSNR of each scene's middle frame vs its image."""
    middles = {}
    first = 0
    for scene, count in enumerate(frames):
        middles[first + count // 2] = scene
        first += count
    worst = float("inf")
    decoded = 0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            if decoded in middles:
                source = np.asarray(Image.open(images[middles[decoded]]).convert("RGB"), dtype=np.float64)
                error = np.mean((frame.to_ndarray(format="rgb24").astype(np.float64) - source) ** 2)
                worst = min(worst, 10 * np.log10(255**2 / max(error, 1e-9)))
            decoded += 1
    return decoded, worst


def completeness(info: MediaInfo, decoded: int, total: int) -> str:
    """'ok', or what is missing: every frame must decode and the audio must last as long as the video."""
    problems = []
    if decoded != total or info.frames != total:
        problems.append(f"{decoded} frames decoded, {info.frames} in the file, expected {total}")
    if abs(info.audio_duration - total / FPS) >= 1 / FPS:
        problems.append(f"audio lasts {info.audio_duration:.3f} s, expected {total / FPS:.3f} s")
    return "; ".join(problems) or "ok"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scenes", type=int, default=12, help="number of distinct scene images (default 12)")
    parser.add_argument(
        "--seconds", type=float, default=240.0, help="episode length in seconds (default 240)"
    )
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)), help="encode processes")
    parser.add_argument("--skip-moviepy", action="store_true", help="time zray only")
    parser.add_argument("--workdir", type=Path, help="keep the files here instead of a temporary folder")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        work = args.workdir or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        frames = scene_lengths(args.scenes, args.seconds)
        images = [work / f"scene{index:03d}.png" for index in range(args.scenes)]
        for index, path in enumerate(images):
            make_image(index, path, 1920, 1072)
        audio = make_audio(sum(frames) * SAMPLE_RATE // FPS)
        print(
            f"episode: {args.scenes} scenes, {sum(frames)} frames ({sum(frames) / FPS:.1f} s), "
            f"1920x1072 @ {FPS} fps, scenes {min(frames)}-{max(frames)} frames; {args.workers} encode workers"
        )

        encode_s, assemble_s, encode_cpu, zray_cpu, zray_out = run_zray(
            images, frames, audio, work, args.workers
        )
        zray_s = encode_s + assemble_s
        info = probe(zray_out)
        print(
            f"zray:    {zray_s:7.2f} s wall, {zray_cpu:7.2f} s CPU "
            f"(encode stills {encode_s:.2f} s wall, {encode_cpu:.2f} s CPU + "
            f"assemble {assemble_s:.2f} s wall, {zray_cpu - encode_cpu:.2f} s CPU)  "
            f"{zray_out.stat().st_size / 1e6:.1f} MB, {info.frames} frames, "
            f"video {info.video_duration:.3f} s, audio {info.audio_duration:.3f} s"
        )
        decoded, psnr = verify(zray_out, images, frames)
        status = completeness(info, decoded, sum(frames))
        print(
            f"         decoded {decoded} frames with PyAV ({status}); worst scene PSNR vs image {psnr:.1f} dB"
        )

        if not args.skip_moviepy:
            moviepy_s, moviepy_cpu, moviepy_out = run_moviepy(images, frames, audio, work)
            other = probe(moviepy_out)
            moviepy_decoded, moviepy_psnr = verify(moviepy_out, images, frames)
            moviepy_status = completeness(other, moviepy_decoded, sum(frames))
            print(
                f"moviepy: {moviepy_s:7.2f} s wall, {moviepy_cpu:7.2f} s CPU  {moviepy_out.stat().st_size / 1e6:.1f} MB, {other.frames} frames, "
                f"video {other.video_duration:.3f} s, audio {other.audio_duration:.3f} s; "
                f"worst scene PSNR vs image {moviepy_psnr:.1f} dB ({moviepy_status})"
            )
            # A side that wrote a broken file did not do the same work: say so next to the ratio.
            invalid = [
                f"{name} file: {found}" for name, found in (("zray", status), ("moviepy", moviepy_status))
            ]
            invalid = [problem for problem in invalid if not problem.endswith(": ok")]
            print(
                f"speed-up: zray is {moviepy_s / zray_s:.1f}x faster than moviepy in wall time, "
                f"{moviepy_cpu / zray_cpu:.1f}x in CPU time"
                + (f"  (NOT COMPARABLE, {'; '.join(invalid)})" if invalid else "")
            )


if __name__ == "__main__":
    main()
