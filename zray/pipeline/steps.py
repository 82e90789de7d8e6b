"""The CPU steps of a run, as plain functions: `step(store, node, *dep_results) -> result`.

Each reads its inputs from the store, writes its outputs atomically to the store, and returns a
small JSON-able dict (paths, frame counts, word timings) that the driver records and hands to the
steps downstream. The driver runs them as Ray tasks; tests call them directly.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import tempfile
from collections.abc import Callable
from typing import Any

import numpy as np
import soundfile
from PIL import Image

from zray.media import audio, subtitles, thumbnail, video
from zray.pipeline.plan import Node
from zray.store import Store

Result = dict[str, Any]
# Each step runs as a one-CPU Ray task: an encoder that spawned a thread per core would fight the
# other tasks Ray placed on the same cores.
TASK_THREADS = 1


def video_settings(params: dict[str, Any]) -> video.VideoSettings:
    v = params["video"]
    return video.VideoSettings(
        width=v["width"],
        height=v["height"],
        fps=v["fps"],
        preset=v["preset"],
        gop=v["gop"],
        keep_metadata=v["keep_metadata"],
        sample_rate=audio.SAMPLE_RATE,
    )


def pad(store: Store, node: Node, raw: Result) -> Result:
    """Fades and frame-perfect padding of one scene's narration, resampled to the project rate."""
    fps = node.params["fps"]
    with store.local_copy(raw["path"]) as local:
        samples = audio.decode_audio(local, sample_rate=audio.SAMPLE_RATE, channels=1)
    padded = audio.pad_to_frames(audio.apply_fades(samples), sample_rate=audio.SAMPLE_RATE, fps=fps)
    with store.writer(node.outputs[0]) as tmp:
        audio.write_wav(tmp, padded, sample_rate=audio.SAMPLE_RATE)
    frames = padded.shape[1] // audio.samples_per_frame(sample_rate=audio.SAMPLE_RATE, fps=fps)
    return {
        "path": node.outputs[0],
        "frames": frames,
        "speech_seconds": samples.shape[1] / audio.SAMPLE_RATE,
        "words": raw.get("words"),
    }


def segment(store: Store, node: Node, image: Result) -> Result:
    """One still scene encoded once as a closed GOP; every language repeats it."""
    settings = video_settings(node.params)
    with store.local_copy(image["path"]) as local, store.writer(node.outputs[0]) as tmp:
        video.encode_still(local, tmp, settings=settings, threads=TASK_THREADS)
    return {"path": node.outputs[0]}


def intro(store: Store, node: Node) -> Result:
    settings = video_settings(node.params)
    with store.local_copy(node.params["source"]) as local, store.writer(node.outputs[0]) as tmp:
        frames = video.encode_clip(local, tmp, settings=settings, threads=TASK_THREADS)
    return {"path": node.outputs[0], "frames": frames}


def thumbs(store: Store, node: Node, base: Result) -> Result:
    """Text variants of the language's thumbnail; variant 1 (or the bare image) is the official one."""
    official, *variant_keys = node.outputs
    with store.local_copy(base["path"]) as local:
        image = Image.open(local)
        image.load()
    texts = node.params["texts"]
    if not texts:
        with store.writer(official) as tmp:
            thumbnail.render_thumbnail(image, None).save(tmp, format="PNG")
        return {"path": official, "variants": []}
    with tempfile.TemporaryDirectory(prefix="zray-") as tmpdir:
        written = thumbnail.render_variants(image, texts, tmpdir, lang=node.params["lang"])
        for path, key in zip(written, variant_keys, strict=True):
            store.put(path, key)
        store.put(written[0], official)
    return {"path": official, "variants": list(variant_keys)}


def subs(store: Store, node: Node, *deps: Result) -> Result:
    """Subtitles (SRT, WebVTT) and the YouTube chapter list of one language."""
    fps = node.params["fps"]
    intro_frames = deps[0]["frames"] if node.params["has_intro"] else 0
    pads = deps[1:] if node.params["has_intro"] else deps
    scenes = node.params["scenes"]
    offset = intro_frames / fps
    spans, starts, words = [], [], []
    cursor = 0
    for scene, padded in zip(scenes, pads, strict=True):
        start, end = cursor / fps, (cursor + padded["frames"]) / fps
        spans.append((scene["text"], start, end))
        starts.append((offset + start if starts else 0.0, scene["chapter"]))
        words.append(_word_timings(padded.get("words")))
        cursor += padded["frames"]
    total = offset + cursor / fps
    cues = subtitles.scene_cues(spans, offset=offset, words=words)
    chapters, reason = subtitles.build_chapters(starts, total=total)
    srt_key, vtt_key, chapters_key = node.outputs
    store.write_text(srt_key, subtitles.to_srt(cues))
    store.write_text(vtt_key, subtitles.to_vtt(cues))
    store.write_text(chapters_key, subtitles.format_chapters(chapters))
    result: Result = {"path": srt_key, "cues": len(cues), "chapters": len(chapters)}
    if reason:
        result["note"] = f"no chapter list for {node.lang}: {reason}"
    return result


def assemble(store: Store, node: Node, *deps: Result) -> Result:
    """Mix narration and music, normalize loudness, and mux the language's final MP4."""
    settings = video_settings(node.params)
    mix = node.params["audio"]
    count = node.params["scenes"]
    music, rest = deps[0], list(deps[1:])
    intro_result = rest.pop(0) if node.params["has_intro"] else None
    segment_results, pad_results = rest[:count], rest[count:]

    voice = np.concatenate([_read(store, p["path"]) for p in pad_results], axis=1)
    bed = _read(store, music["path"], channels=None)
    body = audio.mix_music(voice, bed, level=mix["music_level"], duck=mix["duck"], channels=2)
    parts = [body]
    if intro_result is not None:
        intro_audio = _intro_audio(store, node.params["intro_source"], intro_result["frames"], settings.fps)
        parts.insert(0, intro_audio)
    full = np.concatenate(parts, axis=1)
    full = audio.normalize_loudness(full, target_lufs=mix["target_lufs"], peak_dbfs=mix["peak_dbfs"])

    with contextlib.ExitStack() as stack:
        local = [stack.enter_context(store.local_copy(r["path"])) for r in segment_results]
        segments = [
            video.Segment(path=str(path), frames=p["frames"])
            for path, p in zip(local, pad_results, strict=True)
        ]
        if intro_result is not None:
            intro_path = stack.enter_context(store.local_copy(intro_result["path"]))
            segments.insert(0, video.Segment(path=str(intro_path), frames=intro_result["frames"]))
        with store.writer(node.outputs[0]) as tmp:
            info = video.assemble(segments, full, tmp, settings=settings, threads=TASK_THREADS)
    frames = sum(s.frames for s in segments)
    return {
        "path": node.outputs[0],
        "frames": frames,
        "duration": frames / settings.fps,
        "size": store.size(node.outputs[0]),
        "info": _jsonable(info),
    }


STEPS: dict[str, Callable[..., Result]] = {
    "pad": pad,
    "segment": segment,
    "intro": intro,
    "thumbs": thumbs,
    "subs": subs,
    "video": assemble,
}


# --- helpers ----------------------------------------------------------------------------------


def _read(store: Store, key: str, *, channels: int | None = 1) -> np.ndarray:
    with store.local_copy(key) as local:
        if channels is None:
            channels = min(soundfile.info(str(local)).channels, 2)
        return audio.decode_audio(local, sample_rate=audio.SAMPLE_RATE, channels=channels)


def _intro_audio(store: Store, key: str, frames: int, fps: int) -> np.ndarray:
    """The intro's own sound, fitted to its frame count (silence if it has none)."""
    n = frames * audio.samples_per_frame(sample_rate=audio.SAMPLE_RATE, fps=fps)
    try:
        with store.local_copy(key) as local:
            sound = audio.decode_audio(local, sample_rate=audio.SAMPLE_RATE, channels=2)
    except audio.AudioError:
        sound = np.zeros((2, 0), dtype=np.float32)
    if sound.shape[1] >= n:
        return sound[:, :n]
    return np.pad(sound, ((0, 0), (0, n - sound.shape[1])))


def _word_timings(words: list[dict[str, Any]] | None) -> list[subtitles.WordTiming] | None:
    if not words:
        return None
    return [subtitles.WordTiming(word=w["text"], start=w["start"], end=w["end"]) for w in words]


def _jsonable(info: Any) -> Any:
    if dataclasses.is_dataclass(info) and not isinstance(info, type):
        return json.loads(json.dumps(dataclasses.asdict(info), default=str))
    return str(info)
