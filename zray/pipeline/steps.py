"""The CPU steps of a run, as plain functions: `step(store, request, inputs) -> result`.

Each reads its inputs from the episode folder's store, writes its outputs atomically, and returns
a small typed result (paths, frame counts, word timings) that the scheduler records and hands to
the steps downstream. Executors run them (as Ray tasks, or in this process); tests call them
directly. Inputs are checked against the hashes recorded when they were written (the executor
tells the store what to expect), so a damaged file is never used.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from zray.errors import ZrayError
from zray.media import audio, frames, shots, subtitles, thumbnail, video
from zray.media.constants import SAMPLE_RATE
from zray.media.video.sequence import encode_frames
from zray.nodes import (
    CaptionedInputs,
    CaptionedRequest,
    ChapterSpan,
    ClipResult,
    ImageResult,
    ImportRequest,
    IntroRequest,
    IntroResult,
    Kind,
    MotionInputs,
    MotionRequest,
    NoInputs,
    PadInputs,
    PadRequest,
    PadResult,
    Result,
    SegmentInputs,
    SegmentRequest,
    SegmentResult,
    Shot,
    SubsInputs,
    SubsRequest,
    SubsResult,
    TailInputs,
    TailRequest,
    TailResult,
    ThumbsInputs,
    ThumbsRequest,
    ThumbsResult,
    VideoInputs,
    VideoRequest,
    VideoResult,
)
from zray.pipeline.shorts import make_shorts
from zray.pipeline.stored_audio import StoreChunkCache, intro_audio, read_audio
from zray.store import Store
from zray.work import ENCODE_THREADS, counted, progress_callback, step_threads

# Each step runs as a one-CPU task: an encoder that spawned a thread per core would fight the
# other tasks placed on the same cores.
TASK_THREADS = ENCODE_THREADS


def pad(store: Store, request: PadRequest, inputs: PadInputs) -> PadResult:
    """Fades and frame-perfect padding of one scene's narration, resampled to the project rate."""
    with store.local_copy(inputs.speech.path) as local:
        samples = audio.decode_audio(local, sample_rate=SAMPLE_RATE, channels=1)
    per_frame = audio.samples_per_frame(sample_rate=SAMPLE_RATE, fps=request.fps)
    speech = audio.pad_to_frames(audio.apply_fades(samples), sample_rate=SAMPLE_RATE, fps=request.fps)
    padded = np.concatenate(
        [
            np.zeros((1, request.lead_frames * per_frame), np.float32),
            speech,
            np.zeros((1, request.gap_frames * per_frame), np.float32),
        ],
        axis=1,
    )
    if request.clip is not None and request.clip_level > 0:
        padded = padded + _clip_sound(store, request, padded.shape[1]) * np.float32(request.clip_level)
    with store.writer(request.output) as tmp:
        audio.write_wav(tmp, padded, sample_rate=SAMPLE_RATE)
    return PadResult(
        path=request.output,
        frames=padded.shape[1] // per_frame,
        speech_seconds=samples.shape[1] / SAMPLE_RATE,
        speech_offset=request.lead_frames / request.fps,
        words=inputs.speech.words,
    )


def segment(store: Store, request: SegmentRequest, inputs: SegmentInputs) -> SegmentResult:
    """One still scene encoded once as a closed GOP; every language repeats it."""
    with store.local_copy(inputs.image.path) as local, store.writer(request.output) as tmp:
        video.encode_still(local, tmp, settings=request.video, threads=TASK_THREADS)
    return SegmentResult(path=request.output)


def motion(store: Store, request: MotionRequest, inputs: MotionInputs) -> SegmentResult:
    """A moving scene's first frames, in whole GOPs, as many as its longest language shows before
    its tail; each language plays the GOPs it needs (see zray.media.shots)."""
    settings, fade = request.video, request.transition
    longest = max(shots.tail_start(p.frames - fade, gop=settings.gop, transition=fade) for p in inputs.pads)
    count = max(settings.gop, longest)
    with contextlib.ExitStack() as stack:
        source = _frame_source(stack, store, request.shot, inputs.image, settings, clip=inputs.clip)
        with store.writer(request.output) as tmp:
            frames = counted(source.frames(0, count), count)
            encode_frames(frames, tmp, count=count, settings=settings, threads=TASK_THREADS)
    return SegmentResult(path=request.output)


def tail(store: Store, request: TailRequest, inputs: TailInputs) -> TailResult:
    """The frames after a scene's shared segment: the rest of a moving scene (or of the intro) in
    one language, then the crossfade into the next scene's first frame."""
    settings, fade = request.video, request.transition
    with contextlib.ExitStack() as stack:
        source: frames.FrameSource
        if inputs.intro is not None:
            # The crossfade lies inside the intro: at most all of it but its first two frames.
            fade = shots.transition_frames(
                fade / settings.fps, fps=settings.fps, room=inputs.intro.frames - 2
            )
            body = inputs.intro.frames - fade
            start = shots.tail_start(body, gop=settings.gop, transition=fade)
            source = frames.SegmentFrames(stack.enter_context(store.local_copy(inputs.intro.path)))
        elif request.shot.moves:
            if inputs.pad is None:
                raise video.VideoError(f"{request.output}: a moving scene's tail needs its narration")
            body = inputs.pad.frames - fade
            start = shots.tail_start(body, gop=settings.gop, transition=fade)
            source = _frame_source(stack, store, request.shot, inputs.image, settings, clip=inputs.clip)
        else:  # a still: only the crossfade, whatever the scene's length
            body = start = 0
            source = _frame_source(stack, store, request.shot, inputs.image, settings)
        count = body - start + fade
        sequence = _fade_into_next(
            stack,
            store,
            source.frames(start, count),
            keep=body - start,
            fade=fade,
            request=request,
            inputs=inputs,
        )
        with store.writer(request.output) as tmp:
            encode_frames(sequence, tmp, count=count, settings=settings, threads=TASK_THREADS)
    return TailResult(path=request.output, frames=count)


def captioned(store: Store, request: CaptionedRequest, inputs: CaptionedInputs) -> SegmentResult:
    """A scene of one language with its captions burned in (`captions.burn = true`): every frame of
    its padded narration (its still, move or clip, and its crossfade into the next scene) encoded
    with the spoken word highlighted where `subtitles_<lang>.words.json` says it starts."""
    from zray.media.caption_yuv import burn
    from zray.media.captions import CaptionBox, CaptionStyle, caption_states

    settings, pad, look, fade = request.video, inputs.pad, request.captions, request.transition
    # As the subtitles step times this scene's cues, from the scene's first frame.
    cues = subtitles.time_cues(
        request.text, start=0.0, end=pad.frames / settings.fps, words=pad.padded_words()
    )
    states = caption_states(
        cues,
        fps=settings.fps,
        size=(settings.width, settings.height),
        box=CaptionBox(*look.box),
        style=CaptionStyle(font=look.font, highlight=look.highlight),
    )
    with contextlib.ExitStack() as stack:
        source = _frame_source(stack, store, request.shot, inputs.image, settings, clip=inputs.clip)
        playing = source.frames(0, pad.frames)
        sequence = _fade_into_next(
            stack, store, playing, keep=pad.frames - fade, fade=fade, request=request, inputs=inputs
        )
        with store.writer(request.output) as tmp:
            encode_frames(
                counted(burn(sequence, states), pad.frames),
                tmp,
                count=pad.frames,
                settings=settings,
                threads=TASK_THREADS,
            )
    return SegmentResult(path=request.output)


def import_image(store: Store, request: ImportRequest, inputs: NoInputs) -> ImageResult:
    """A studio's own picture as the scene's PNG: upright (EXIF orientation), RGB, its own size
    (the encoder fits it to the frame)."""
    with store.verified_copy(request.source, request.digest) as local:
        try:
            with Image.open(local) as opened:
                picture = ImageOps.exif_transpose(opened).convert("RGB")
        except (OSError, ValueError) as exc:
            raise ZrayError(f"{request.source}: cannot read it as a picture ({exc})") from None
    with store.writer(request.output) as tmp:
        picture.save(tmp, format="PNG")
    return ImageResult(path=request.output, width=picture.width, height=picture.height)


def intro(store: Store, request: IntroRequest, inputs: NoInputs) -> IntroResult:
    with store.verified_copy(request.source, request.digest) as local, store.writer(request.output) as tmp:
        frames = video.encode_clip(local, tmp, settings=request.video, threads=TASK_THREADS)
    return IntroResult(path=request.output, frames=frames)


def thumbs(store: Store, request: ThumbsRequest, inputs: ThumbsInputs) -> ThumbsResult:
    """Text variants of the language's thumbnail; the chosen one (variant 1 unless chosen in review,
    or the bare image) is the official one."""
    with store.local_copy(inputs.base.path) as local:
        image = Image.open(local)
        image.load()
    if not request.texts:
        with store.writer(request.official) as tmp:
            thumbnail.render_thumbnail(image, None).save(tmp, format="PNG")
        return ThumbsResult(path=request.official)
    with tempfile.TemporaryDirectory(prefix="zray-") as tmpdir:
        written = thumbnail.render_variants(image, list(request.texts), tmpdir, lang=request.lang)
        for path, key in zip(written, request.variants, strict=True):
            store.put(path, key)
        store.put(written[request.official_variant - 1], request.official)
    return ThumbsResult(path=request.official, variants=request.variants)


def subs(store: Store, request: SubsRequest, inputs: SubsInputs) -> SubsResult:
    """Subtitles (SRT, WebVTT), word timings and the YouTube chapter list of one language."""
    fps = request.fps
    offset = (inputs.intro.frames / fps) if inputs.intro else 0.0
    spans, starts, words, timeline = [], [], [], []
    cursor = 0
    for scene, padded in zip(request.scenes, inputs.pads, strict=True):
        start, end = cursor / fps, (cursor + padded.frames) / fps
        spans.append((scene.text, start, end))
        starts.append((offset + start if starts else 0.0, scene.chapter))
        scene_words = padded.padded_words()  # the padded narration may lead the speech with silence
        words.append(scene_words)
        if scene_words:
            timeline += [w.shifted(offset + start) for w in scene_words]
        cursor += padded.frames
    total = offset + cursor / fps
    cues = subtitles.scene_cues(spans, offset=offset, words=words)
    chapters = subtitles.plan_chapters(starts, total=total)
    store.write_text(request.srt, subtitles.to_srt(cues))
    store.write_text(request.vtt, subtitles.to_vtt(cues))
    store.write_text(request.chapters, subtitles.format_chapters(chapters.chapters))
    store.write_text(request.words, json.dumps([w.to_json() for w in timeline], ensure_ascii=False, indent=0))
    return SubsResult(
        path=request.srt,
        cues=len(cues),
        chapters=len(chapters.chapters),
        words=len(timeline),
        ranges=tuple(
            ChapterSpan(start=r.start, end=r.end, title=r.title, scenes=tuple(r.scenes))
            for r in chapters.ranges
        ),
        note=f"no chapter list for {request.lang}: {chapters.reason}" if chapters.reason else "",
        warnings=tuple(f"chapters {request.lang}: {line}" for line in chapters.merged),
    )


def assemble(store: Store, request: VideoRequest, inputs: VideoInputs) -> VideoResult:
    """Mix narration and music, master and encode the audio in cached chunks, and mux the language's
    final MP4. Only the chunks whose samples changed are encoded again (see zray.media.mastering)."""
    from zray.media.mastering import encode_track

    settings = request.video
    mix = request.audio
    # Stereo: a scene with a clip's own sound has it in its padded narration (mono files are doubled).
    voice = np.concatenate([read_audio(store, p.path, channels=2) for p in inputs.pads], axis=1)
    bed = read_audio(store, inputs.music.path, channels=None)
    body = audio.mix_music(
        voice,
        bed,
        level=mix.music_level,
        duck=mix.duck,
        channels=2,
        fade_in=mix.music_fade_in,
        fade_out=mix.music_fade_out,
    )
    parts = [body]
    if inputs.intro is not None and request.intro_source is not None:
        parts.insert(0, intro_audio(store, request.intro_source, inputs.intro.frames, settings.fps))
    cache = StoreChunkCache(store, request.audio_cache)
    track = encode_track(
        np.concatenate(parts, axis=1),
        sample_rate=SAMPLE_RATE,
        target_lufs=mix.target_lufs,
        peak_dbfs=mix.peak_dbfs,
        cache=cache,
        workers=step_threads(),
    )

    with contextlib.ExitStack() as stack:
        segments = _video_segments(stack, store, inputs)
        with store.writer(request.output) as tmp:
            info = video.assemble(
                segments,
                track.audio,
                tmp,
                settings=settings,
                threads=step_threads(),
                language=request.lang,
                progress=progress_callback(sum(s.frames for s in segments)),
            )
    cache.forget_unused()
    count = sum(s.frames for s in segments)
    return VideoResult(
        path=request.output,
        frames=count,
        duration=count / settings.fps,
        size=info.file_bytes,
        video_bytes=info.video_bytes,
        audio_bytes=info.audio_bytes,
        gain_db=track.gain_db,
        true_peak_dbtp=track.true_peak_dbtp,
        audio_chunks_reused=track.chunks_reused,
        audio_chunks_encoded=track.chunks_encoded,
        cache_files=tuple(sorted(cache.used)),
    )


Step = Callable[[Store, Any, Any], Result]

STEPS: dict[Kind, Step] = {
    Kind.IMPORT: import_image,
    Kind.PAD: pad,
    Kind.SEGMENT: segment,
    Kind.MOTION: motion,
    Kind.TAIL: tail,
    Kind.INTRO: intro,
    Kind.THUMBS: thumbs,
    Kind.SUBS: subs,
    Kind.VIDEO: assemble,
    Kind.CAPTIONED: captioned,
    Kind.SHORTS: make_shorts,
}


# --- helpers ---------------------------------------------------------------------------------------


def _video_segments(stack: contextlib.ExitStack, store: Store, inputs: VideoInputs) -> list[video.Segment]:
    """The language's picture, in order: the intro, then per scene its segment for the frames
    before its tail (a still's GOP repeats, a moving scene's first whole GOPs play), then its tail."""
    out: list[video.Segment] = []

    def play(result: Result, count: int) -> None:
        if count:
            out.append(
                video.Segment(path=str(stack.enter_context(store.local_copy(result.path))), frames=count)
            )

    if inputs.intro is not None:
        ending = inputs.intro_tail
        play(inputs.intro, inputs.intro.frames - (ending.frames if ending else 0))
        if ending is not None:
            play(ending, ending.frames)
    tails = inputs.tails or (None,) * len(inputs.pads)
    for segment_result, padded, ending in zip(inputs.segments, inputs.pads, tails, strict=True):
        before = padded.frames - (ending.frames if ending else 0)
        # One frame would be a lone IDR picture right before the tail's (H.264 7.4.3).
        if before < 0 or before == 1:
            raise video.VideoError(
                f"{padded.path}: {padded.frames} frames cannot hold a tail of {ending.frames if ending else 0}"
            )
        play(segment_result, before)
        if ending is not None:
            play(ending, ending.frames)
    return out


def _fade_into_next(
    stack: contextlib.ExitStack,
    store: Store,
    playing: Iterator[np.ndarray],
    *,
    keep: int,
    fade: int,
    request: TailRequest | CaptionedRequest,
    inputs: TailInputs | CaptionedInputs,
) -> Iterator[np.ndarray]:
    """`keep` frames of `playing`, then `fade` more of it crossfading into the next scene's first
    frame (`request.next`); `playing` as it is when there is no crossfade."""
    if not fade:
        return playing
    if request.next is None:
        raise video.VideoError(f"{request.output}: a crossfade needs a next scene")
    incoming = _frame_source(
        stack, store, request.next, inputs.next_image, request.video, clip=inputs.next_clip
    )
    first = next(incoming.frames(0, 1))
    return itertools.chain(itertools.islice(playing, keep), frames.crossfade(playing, first, fade))


def _frame_source(
    stack: contextlib.ExitStack,
    store: Store,
    shot: Shot,
    image: ImageResult | None,
    settings: video.VideoSettings,
    *,
    clip: ClipResult | None = None,
) -> frames.FrameSource:
    """The frames of a scene's picture: its clip (the studio's, or one generated from the picture),
    or its still under its move (or none)."""
    if shot.generated is not None:
        if clip is None:
            raise video.VideoError("a scene of motion generate needs its generated clip")
        # Generated at the model's size (720p for Wan): scaled to the frame with Lanczos, and past its
        # end carried on by the shot's move from its last frame.
        return frames.ClipFrames(
            stack.enter_context(store.local_copy(clip.path)),
            width=settings.width,
            height=settings.height,
            fps=settings.fps,
            fit=shot.generated.fit,  # type: ignore[arg-type]
            fill="move",
            move=shot.generated.move,
            interpolation="LANCZOS",
        )
    if shot.clip is not None:
        local = stack.enter_context(store.verified_copy(shot.clip.source, shot.clip.digest))
        return frames.ClipFrames(
            local,
            width=settings.width,
            height=settings.height,
            fps=settings.fps,
            fit=shot.clip.fit,  # type: ignore[arg-type]
            fill=shot.clip.fill,  # type: ignore[arg-type]
        )
    if image is None:
        raise video.VideoError("a still scene needs its picture")
    with store.local_copy(image.path) as local, Image.open(local) as opened:
        opened.load()
        picture = frames.Picture(
            opened,
            width=settings.width,
            height=settings.height,
            zoom=shot.move.max_zoom if shot.move else 1.0,
        )
    return frames.MovingStill(picture, shot.move, fps=settings.fps)


def _clip_sound(store: Store, request: PadRequest, samples: int) -> np.ndarray:
    """A clip's own sound over a scene of `samples`, stereo: cut at the scene's end, or looped like
    its picture; silence where it has none."""
    assert request.clip is not None
    with store.verified_copy(request.clip.source, request.clip.digest) as local:
        try:
            sound = audio.decode_audio(local, sample_rate=SAMPLE_RATE, channels=2)
        except audio.AudioError:  # a clip without a sound track
            return np.zeros((2, samples), np.float32)
    if sound.shape[1] == 0:
        return np.zeros((2, samples), np.float32)
    if request.clip.fill == "loop" or sound.shape[1] >= samples:
        # A short crossfade at each loop point and a fade where it is cut: no clicks.
        return audio.loop_to_length(sound, samples, sample_rate=SAMPLE_RATE, crossfade=0.05)
    return np.pad(audio.apply_fades(sound, fade_in=0.0), ((0, 0), (0, samples - sound.shape[1])))
