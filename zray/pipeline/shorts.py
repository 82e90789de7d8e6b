"""The Shorts of one language, as one step: grouped from its chapters, each rendered only when needed.

Which scenes make which Short depends on the narration's lengths, known only once it is padded, so
one node per language (`shorts:<lang>`) groups them (`zray.media.short_groups`) and renders them
(`zray.media.short_video`); its files are known only once it has run (`ShortsRequest` declares
`dynamic_outputs`, the result lists them, and run.json records them with their hashes).

The node reruns whenever anything of its language changed, but each Short inside it is keyed by
what it is made from (its scenes' pictures or clips and narration, where it is cut, the music, captions and
video settings): an index under `assets/tmp/shorts/<lang>/` remembers the Shorts rendered and their
files' hashes, so after a one-scene edit only the Shorts showing that scene are rendered again; a
Short whose number or title changed is renamed, not rendered. Their audio is mixed and mastered as
the long video's is, its AAC chunks cached the same way (`zray.media.mastering`).

A Short's timeline: a lead of silence if its first scene has none of its own (`audio.lead`), its
scenes' padded narration with their pauses (the last scene cut after a sentence, for a scene longer
than a Short), and a tail (`audio.tail`) where the picture holds and the music fades. Each Short's
music starts at the top of the bed, so an edit in one Short never shifts another's music.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from zray import episode as layout
from zray.keys import KEY_FORMAT, content_key
from zray.media import audio, subtitles
from zray.media.captions import CaptionBox, CaptionStyle, caption_states
from zray.media.constants import SAMPLE_RATE
from zray.media.short_groups import SceneSpan, ShortGroup, group_shorts
from zray.media.video.settings import VideoError
from zray.media.words import WordTiming
from zray.nodes import (
    STEP_VERSION,
    Kind,
    PadResult,
    ShortFile,
    ShortsInputs,
    ShortsRequest,
    ShortsResult,
    ShortsScene,
    to_json,
)
from zray.pipeline.stored_audio import StoreChunkCache, intro_audio, read_audio
from zray.store import TEMP_MARK, FileRecord, Store
from zray.work import ENCODE_THREADS, progress_callback, step_threads

if TYPE_CHECKING:
    from zray.media.short_video import ShortScene

__all__ = ["INDEX", "make_shorts"]

INDEX = "index.json"
_SENTENCE_ENDS = (".", "!", "?", "…", "。", "！", "？")
_CLOSING = "\"'»”’)]"
_CUT_FADE_SECONDS = 0.02  # the narration cut after a sentence fades out this fast, without a click


@dataclass(frozen=True)
class _Scene:
    """A scene as the Shorts use it: its narration's words as written, each with when it is spoken
    (seconds from the padded narration's start), and where its sentences end (frames)."""

    tokens: tuple[WordTiming, ...]
    span: SceneSpan
    kept_tokens: dict[int, int]  # sentence end (frames) -> how many tokens are spoken by then


@dataclass(frozen=True)
class _Layout:
    """One Short's timeline, in frames of its body (after any intro)."""

    group: ShortGroup
    pictures: tuple[int, ...]  # frames each scene's picture fills
    transitions: tuple[int, ...]  # frames of crossfade into each scene (0 for the first)
    starts: tuple[int, ...]  # where each scene's padded narration starts

    @property
    def frames(self) -> int:
        return sum(self.pictures)


def make_shorts(store: Store, request: ShortsRequest, inputs: ShortsInputs) -> ShortsResult:
    fps = request.video.fps
    scenes = [_scene(text.text, pad, fps) for text, pad in zip(request.scenes, inputs.pads, strict=True)]
    chapters = {index: n for n, span in enumerate(inputs.subs.ranges) for index in span.scenes}
    titles = [span.title for span in inputs.subs.ranges]
    spans = [
        SceneSpan(
            frames=s.span.frames,
            lead=s.span.lead,
            trailing=s.span.trailing,
            chapter=chapters.get(i),
            sentence_ends=s.span.sentence_ends,
        )
        for i, s in enumerate(scenes)
    ]
    grouping = group_shorts(
        spans,
        fps=fps,
        max_seconds=request.max_seconds,
        min_seconds=request.min_seconds,
        lead_seconds=request.lead,
        tail_seconds=request.tail,
    )
    index = _Index(store, f"{request.work}/{INDEX}")
    cache = StoreChunkCache(store, f"{request.work}/audio")
    # The AAC chunks take the threads the executor gives a step (one on a Ray task); x264 always
    # gets ENCODE_THREADS, since its bitstream depends on its thread count.
    renderer = _Renderer(store, request, inputs, scenes, cache, threads=step_threads())

    planned: list[tuple[ShortFile, _Layout, str]] = []  # the Short, its timeline, its captions as SRT
    for number, group in enumerate(grouping.shorts, start=1):
        first = group.scenes[0]
        chapter = chapters.get(first)
        title = titles[chapter] if chapter is not None else request.fallback_title
        timeline = _timeline(group, spans, transition=round(request.transition * fps))
        cues = renderer.cues(timeline)
        key = _short_key(request, group, timeline)
        short = ShortFile(
            number=number,
            title=title,
            path=layout.short(request.code, request.lang, number, title),
            srt=layout.short(request.code, request.lang, number, title, ext="srt"),
            frames=timeline.frames + renderer.intro_frames,
            duration=(timeline.frames + renderer.intro_frames) / fps,
            key=key,
            scenes=group.scenes,
        )
        planned.append((short, timeline, subtitles.to_srt(cues)))

    reused = index.place(store, request.folder, [short for short, _, _ in planned])
    made: list[ShortFile] = []
    # Progress: the frames of the Shorts this run renders, across all of them.
    total = sum(timeline.frames for short, timeline, _ in planned if short.key not in reused)
    rendered = 0
    for short, timeline, srt in planned:
        _write_if_changed(store, short.srt, srt)
        if short.key in reused:
            cache.used.update(index.entries[short.key].get("audio", []))
        else:
            chunks_before = set(cache.used)
            renderer.render(short, timeline, progress=progress_callback(total, start=rendered))
            rendered += timeline.frames
            index.entries[short.key] = {
                "path": short.path,
                "video": store.file_record(short.path).to_json(),
                "audio": sorted(cache.used - chunks_before),
            }
            index.save()  # a crash later keeps what was rendered so far
        made.append(dataclasses.replace(short, size=store.stamp(short.path)[0]))
    index.forget_except({short.key for short in made}, store, keep={p for s in made for p in (s.path, s.srt)})
    cache.forget_unused()
    index.save()
    return ShortsResult(
        path=request.folder,
        shorts=tuple(made),
        rendered=len(made) - len(reused),
        reused=len(reused),
        cache_files=(index.key, *sorted(cache.used)),
        note="; ".join(f"Shorts {request.lang}: {line}" for line in grouping.notes),
    )


# --- scenes and timelines -------------------------------------------------------------------------


def _scene(text: str, pad: PadResult, fps: int) -> _Scene:
    """The scene's narration words with their times, and its lengths in frames."""
    lead = round(pad.speech_offset * fps)
    speech = math.ceil((pad.speech_offset + pad.speech_seconds) * fps - 1e-9) - lead
    trailing = max(0, pad.frames - lead - speech)
    tokens: tuple[WordTiming, ...] = ()
    ends: list[int] = []
    kept: dict[int, int] = {}
    if text.split():
        cues = subtitles.time_cues(text, start=0.0, end=pad.frames / fps, words=pad.padded_words())
        tokens = tuple(w for cue in cues for w in cue.words)
        if pad.words:  # without timings a cut could fall mid-word
            for i, token in enumerate(tokens[:-1]):
                if token.word.rstrip(_CLOSING).endswith(_SENTENCE_ENDS):
                    at = math.floor(tokens[i + 1].start * fps)
                    if at > 0 and (not ends or at > ends[-1]):
                        ends.append(at)
                        kept[at] = i + 1
    span = SceneSpan(frames=pad.frames, lead=lead, trailing=trailing, sentence_ends=tuple(ends))
    return _Scene(tokens=tokens, span=span, kept_tokens=kept)


def _timeline(group: ShortGroup, spans: Sequence[SceneSpan], *, transition: int) -> _Layout:
    """Where each scene of a Short starts and how long its picture shows: the first picture covers
    the lead, the last the tail; a crossfade into a scene fits in the pause before it."""
    lengths = [group.cut if group.cut is not None else spans[i].frames for i in group.scenes]
    pictures = list(lengths)
    pictures[0] += group.lead
    pictures[-1] += group.tail
    starts, at = [], group.lead
    for length in lengths:
        starts.append(at)
        at += length
    transitions = [0] + [
        max(0, min(transition, spans[previous].trailing, pictures[k] - 1))
        for k, previous in enumerate(group.scenes[:-1])
    ]
    return _Layout(group, tuple(pictures), tuple(transitions), tuple(starts))


def _short_key(request: ShortsRequest, group: ShortGroup, timeline: _Layout) -> str:
    """What a Short's picture and sound are made from: a changed key means a new render."""
    scenes = [request.scenes[i] for i in group.scenes]
    return content_key(
        "short",
        request.lang,  # tags the audio track
        [s.image_key for s in scenes],
        [s.pad_key for s in scenes],
        [s.text for s in scenes],
        group.cut,
        timeline.pictures,
        timeline.transitions,
        timeline.starts,
        request.music_key,
        request.intro_key,
        to_json(request.audio),
        to_json(request.captions),
        to_json(request.video),
        KEY_FORMAT,
        STEP_VERSION[Kind.SHORTS],
        # Generated clips only where a Short shows one: the keys of the Shorts without stay as they were.
        *([[to_json(s.generated) for s in scenes]] if any(s.generated for s in scenes) else []),
    )


# --- rendering ------------------------------------------------------------------------------------


class _Renderer:
    """Turns a Short's timeline into its captions, its mastered audio and its MP4."""

    def __init__(
        self,
        store: Store,
        request: ShortsRequest,
        inputs: ShortsInputs,
        scenes: list[_Scene],
        cache: StoreChunkCache,
        *,
        threads: int,
    ) -> None:
        self.store, self.request, self.inputs, self.scenes = store, request, inputs, scenes
        self.cache, self.threads = cache, threads
        self.fps = request.video.fps
        self.intro_frames = inputs.intro.frames if inputs.intro is not None else 0
        self._bed: np.ndarray | None = None
        look = request.captions
        self.style = CaptionStyle(font=look.font, highlight=look.highlight)
        self.box = CaptionBox(*look.box)

    def cues(self, timeline: _Layout) -> list[subtitles.Cue]:
        """The Short's subtitles, in seconds of its body: each scene's words as the long video's
        (`words.json`) moved to where the scene plays here; a cut scene's words up to its cut."""
        fps, group = self.fps, timeline.group
        bounds = [0]
        for frames in timeline.pictures:
            bounds.append(bounds[-1] + frames)
        spans, words = [], []
        for k, index in enumerate(group.scenes):
            scene = self.scenes[index]
            tokens = list(scene.tokens)
            if group.cut is not None:
                tokens = tokens[: scene.kept_tokens[group.cut]]
            shift = (timeline.starts[k] - bounds[k]) / fps
            spans.append((" ".join(t.word for t in tokens), bounds[k] / fps, bounds[k + 1] / fps))
            pad = self.inputs.pads[index]
            timed = None
            if pad.words:
                limit = group.cut / fps if group.cut is not None else math.inf
                timed = [
                    w.shifted(pad.speech_offset + shift)
                    for w in pad.words
                    if w.start + pad.speech_offset < limit
                ]
            words.append(timed)
        return subtitles.scene_cues(spans, words=words)

    def render(
        self, short: ShortFile, timeline: _Layout, *, progress: Callable[[int], None] | None = None
    ) -> None:
        from zray.media.mastering import encode_track
        from zray.media.short_video import render_short
        from zray.media.video import Segment

        request, store, group = self.request, self.store, timeline.group
        track = self._soundtrack(timeline)
        if self.inputs.intro is not None and request.intro_source is not None:
            intro_sound = intro_audio(store, request.intro_source, self.intro_frames, self.fps)
            track = np.concatenate([intro_sound, track], axis=1)
        mastered = encode_track(
            track,
            sample_rate=SAMPLE_RATE,
            target_lufs=request.audio.target_lufs,
            peak_dbfs=request.audio.peak_dbfs,
            cache=self.cache,
            workers=self.threads,
        )
        size = (request.video.width, request.video.height)
        states = caption_states(self.cues(timeline), fps=self.fps, size=size, box=self.box, style=self.style)
        with contextlib.ExitStack() as stack:
            scenes = [
                self._scene(stack, request.scenes[index], frames=frames, transition=fade)
                for index, frames, fade in zip(
                    group.scenes, timeline.pictures, timeline.transitions, strict=True
                )
            ]
            intro = None
            if self.inputs.intro is not None:
                local = stack.enter_context(store.local_copy(self.inputs.intro.path))
                intro = Segment(path=str(local), frames=self.intro_frames)
            tmp = stack.enter_context(store.writer(short.path))
            render_short(
                scenes,
                tmp,
                settings=request.video,
                states=states,
                audio=mastered.audio,
                intro=intro,
                threads=ENCODE_THREADS,
                language=request.lang,
                progress=progress,
            )

    def _scene(
        self, stack: contextlib.ExitStack, scene: ShortsScene, *, frames: int, transition: int
    ) -> ShortScene:
        """What a scene shows in a Short: its picture or its generated clip, panned across; a vertical
        clip generated for the Shorts, fitted and carried on past its end; or its studio clip,
        cover-fitted (a clip letterboxed into a vertical frame would be a strip)."""
        from zray.media.frames import ClipFrames
        from zray.media.short_video import ShortScene

        video = self.request.video
        if scene.generated is not None:
            generated = self.inputs.clips[scene.generated.index]
            local = stack.enter_context(self.store.local_copy(generated.path))
            if scene.generated.move is None:
                return ShortScene(picture=None, clip=local, frames=frames, transition=transition)
            carried = ClipFrames(
                local,
                width=video.width,
                height=video.height,
                fps=video.fps,
                fit="cover",
                fill="move",
                move=scene.generated.move,
                interpolation="LANCZOS",
            )
            return ShortScene(picture=None, source=carried, frames=frames, transition=transition)
        if scene.clip is not None:
            local = stack.enter_context(self.store.verified_copy(scene.clip.source, scene.clip.digest))
            source = ClipFrames(
                local,
                width=video.width,
                height=video.height,
                fps=video.fps,
                fit="cover",
                fill=scene.clip.fill,  # type: ignore[arg-type]  # "hold" or "loop", as the config allows
            )
            return ShortScene(picture=None, source=source, frames=frames, transition=transition)
        if scene.image is None:
            raise VideoError(f"scene {scene.label}: a Short needs its picture or its clip")
        path = stack.enter_context(self.store.local_copy(self.inputs.images[scene.image].path))
        return ShortScene(picture=path, frames=frames, transition=transition)

    def _soundtrack(self, timeline: _Layout) -> np.ndarray:
        """Narration with the Short's lead and tail, and the music under it, faded in and out."""
        per_frame = audio.samples_per_frame(sample_rate=SAMPLE_RATE, fps=self.fps)
        group = timeline.group
        # Stereo, as the long video reads it: a scene with a clip's own sound has it in its narration.
        parts = [np.zeros((2, group.lead * per_frame), np.float32)]
        for index in group.scenes:
            voice = read_audio(self.store, self.inputs.pads[index].path, channels=2)
            if group.cut is not None:
                voice = voice[:, : group.cut * per_frame].copy()
                fade = min(voice.shape[1], round(_CUT_FADE_SECONDS * SAMPLE_RATE))
                voice[:, voice.shape[1] - fade :] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
            parts.append(voice)
        parts.append(np.zeros((2, group.tail * per_frame), np.float32))
        speech = np.concatenate(parts, axis=1)
        if self._bed is None:
            self._bed = read_audio(self.store, self.inputs.music.path, channels=None)
        last = self.scenes[group.scenes[-1]].span
        after_words = group.tail + (0 if group.cut is not None else last.trailing)
        mix = self.request.audio
        return audio.mix_music(
            speech,
            self._bed,
            level=mix.music_level,
            duck=mix.duck,
            channels=2,
            fade_in=mix.music_fade_in,
            fade_out=after_words / self.fps,
        )


def _write_if_changed(store: Store, key: str, text: str) -> None:
    try:
        if store.read_text(key) == text:
            return
    except FileNotFoundError:
        pass
    store.write_text(key, text)


# --- the index of rendered Shorts -----------------------------------------------------------------


class _Index:
    """The Shorts this step rendered, by key: each one's file and its record (hash and fingerprint),
    and the AAC chunks its audio used. An index that cannot be read is started afresh: the worst a
    lost index costs is rendering again."""

    def __init__(self, store: Store, key: str) -> None:
        self.store, self.key = store, key
        self.entries: dict[str, dict[str, Any]] = {}
        try:
            data = json.loads(store.read_text(key))
        except (FileNotFoundError, ValueError, UnicodeDecodeError):
            data = {}
        shorts = data.get("shorts") if isinstance(data, dict) else None
        if isinstance(shorts, dict):
            self.entries = {
                k: v
                for k, v in shorts.items()
                if isinstance(v, dict)
                and isinstance(v.get("path"), str)
                and layout.inside(v["path"])
                and FileRecord.from_json(v.get("video")) is not None
            }

    def save(self) -> None:
        layout.write_json(self.store, self.key, {"shorts": self.entries})

    def _intact(self, path: str, record: FileRecord) -> bool:
        try:
            size, stamp = self.store.stamp(path)
        except FileNotFoundError:
            return False
        if (size, stamp) == (record.size, record.stamp):
            return True
        return self.store.checksum(path) == record.sha256

    def place(self, store: Store, folder: str, shorts: list[ShortFile]) -> set[str]:
        """The keys of the Shorts whose file is already made and intact, each moved to its planned
        name (through a temporary one, so a renumbering never overwrites a file still to be moved)."""
        reused: set[str] = set()
        moves: list[tuple[ShortFile, str]] = []
        for short in shorts:
            entry = self.entries.get(short.key)
            if entry is None:
                continue
            record = FileRecord.from_json(entry["video"])
            if (
                record is None
                or not entry["path"].startswith(folder + "/")
                or not self._intact(entry["path"], record)
            ):
                del self.entries[short.key]
                continue
            reused.add(short.key)
            if entry["path"] != short.path:
                moves.append((short, entry["path"]))
        parked = []
        planned = {path for short in shorts for path in (short.path, short.srt)}
        for short, old in moves:
            temporary = f"{folder}/{TEMP_MARK}{short.key}.mp4"  # swept by the next run if this one dies
            store.move(old, temporary)
            parked.append((short, temporary))
            old_srt = _srt_of(old)
            if old_srt not in planned:
                store.remove(old_srt)
        for short, temporary in parked:
            store.move(temporary, short.path)
            size, stamp = store.stamp(short.path)
            entry = self.entries[short.key]
            sha = FileRecord.from_json(entry["video"]).sha256  # type: ignore[union-attr]
            entry.update(path=short.path, video=FileRecord(sha, size, stamp).to_json())
        if moves:
            self.save()
        return reused

    def forget_except(self, keys: set[str], store: Store, *, keep: set[str]) -> None:
        """Drop the entries of Shorts no longer made, and their files (only inside the Shorts' folder,
        never one a current Short uses)."""
        for key in [k for k in self.entries if k not in keys]:
            path = self.entries.pop(key)["path"]
            for old in (path, _srt_of(path)):
                if old not in keep and layout.inside(old):
                    store.remove(old)


def _srt_of(path: str) -> str:
    return path.removesuffix(".mp4") + ".srt"
