"""The contract between the planner, the scheduler and the steps: node kinds, their typed I/O, their keys.

A node is one unit of work. Its kind fixes three types: a request (everything the step needs
besides its inputs, output paths included), the inputs it consumes, named (each the result of
another node), and the result it returns. Steps and workers take a request and inputs and return
a result; nothing is passed or unpacked by position. Results are recorded in run.json and read
back for cached nodes, so they are plain dataclasses that round-trip through JSON.

A node's content key is derived from its request, in one place (`node_key`, used by `make_node`):
nobody writes a key by hand, so a key cannot drift from what the step is given.

Stdlib only: planning a rerun with nothing to do imports no media library.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar, TypeVar

from zray.keys import KEY_FORMAT, content_key
from zray.media.moves import Move
from zray.media.video.settings import VideoSettings
from zray.media.words import WordTiming


class Kind(StrEnum):
    IMAGE = "image"
    IMPORT = "import"  # a studio's own picture, instead of a generated one
    SPEECH = "tts"
    MUSIC = "music"
    PAD = "pad"
    SEGMENT = "segment"
    CLIP = "clip"  # a scene's picture set in motion by the video engine (motion "generate")
    MOTION = "motion"  # a moving scene (camera move or clip), encoded once at its longest language's length
    TAIL = "tail"  # the rest of a moving scene in one language, and the crossfade into the next scene
    INTRO = "intro"
    THUMBS = "thumbs"
    SUBS = "subs"
    VIDEO = "video"
    CAPTIONED = "captioned"  # a still scene of one language with its captions burned in
    SHORTS = "shorts"  # every Short of one language: which ones is known only once it runs


# Kinds served by resident engine actors (model calls), by the role of the engine they use.
ROLES: dict[Kind, str] = {Kind.IMAGE: "image", Kind.SPEECH: "tts", Kind.MUSIC: "music", Kind.CLIP: "video"}
MODEL_KINDS = frozenset(ROLES)

# Progress groups, in display order.
STAGES = ("images", "narration", "music", "clips", "thumbnails", "assembly", "shorts")


# --- JSON round trip -------------------------------------------------------------------------------

T = TypeVar("T")


def to_json(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        if isinstance(value, WordTiming):
            return value.to_json()
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    return value


def from_json(cls: type[T], data: Any) -> T:
    """Build a result dataclass from its JSON; raises ValueError on the wrong shape."""
    return typing.cast(T, _convert(cls, data, cls.__name__))


def _convert(hint: Any, data: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if data is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _convert(option, data, where)
            except ValueError as exc:
                errors.append(str(exc))
        raise ValueError("; ".join(errors) or f"{where}: unexpected {data!r}")
    if hint is WordTiming:
        if not isinstance(data, dict):
            raise ValueError(f"{where}: a word timing must be an object")
        try:
            return WordTiming.from_json(data)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{where}: bad word timing ({exc})") from None
    if dataclasses.is_dataclass(hint):
        if not isinstance(data, dict):
            raise ValueError(f"{where}: expected an object, got {type(data).__name__}")
        hints = typing.get_type_hints(hint)
        values = {}
        for f in dataclasses.fields(hint):
            if f.name in data:
                values[f.name] = _convert(hints[f.name], data[f.name], f"{where}.{f.name}")
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ValueError(f"{where}: missing {f.name}")
        return hint(**values)
    if origin is tuple:
        args = typing.get_args(hint)
        if not isinstance(data, list | tuple):
            raise ValueError(f"{where}: expected a list")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, f"{where}[]") for v in data)
        if len(args) != len(data):
            raise ValueError(f"{where}: expected {len(args)} items")
        return tuple(_convert(a, v, f"{where}[]") for a, v in zip(args, data, strict=True))
    if origin is dict or hint is dict:
        if not isinstance(data, dict):
            raise ValueError(f"{where}: expected an object")
        return dict(data)
    if hint is Any:
        return data
    if hint is float:
        if isinstance(data, int | float) and not isinstance(data, bool):
            return float(data)
        raise ValueError(f"{where}: expected a number, got {data!r}")
    if hint is int:
        if isinstance(data, int) and not isinstance(data, bool):
            return data
        raise ValueError(f"{where}: expected a whole number, got {data!r}")
    if hint in (str, bool):
        if isinstance(data, hint):
            return data
        raise ValueError(f"{where}: expected {hint.__name__}, got {data!r}")
    raise ValueError(f"{where}: cannot read {hint!r}")


# --- results ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    """What a step returns: small, JSON-able, recorded in run.json. `note` is shown to the user,
    `warnings` are logged as warnings (a step may run far from the log)."""

    path: str
    note: str = ""
    warnings: tuple[str, ...] = ()

    def files(self) -> tuple[str, ...]:
        """The files it made that its request could not name beforehand (see `dynamic_outputs`)."""
        return ()


@dataclass(frozen=True)
class ImageResult(Result):
    width: int = 0
    height: int = 0


@dataclass(frozen=True)
class SpeechResult(Result):
    seconds: float = 0.0
    words: tuple[WordTiming, ...] | None = None


@dataclass(frozen=True)
class MusicResult(Result):
    seconds: float = 0.0


@dataclass(frozen=True)
class ClipResult(Result):
    """A generated clip: an MP4 of `frames` frames at 24 fps, width x height."""

    frames: int = 0
    width: int = 0
    height: int = 0


@dataclass(frozen=True)
class PadResult(Result):
    frames: int = 0
    speech_seconds: float = 0.0
    # Where the speech starts inside the padded file (a lead of silence before the first scene).
    speech_offset: float = 0.0
    words: tuple[WordTiming, ...] | None = None  # from the speech's start

    def padded_words(self) -> list[WordTiming] | None:
        """The word timings from the padded file's start (None: the engine gave none)."""
        return [w.shifted(self.speech_offset) for w in self.words] if self.words else None


@dataclass(frozen=True)
class SegmentResult(Result):
    pass


@dataclass(frozen=True)
class IntroResult(Result):
    frames: int = 0


@dataclass(frozen=True)
class TailResult(Result):
    frames: int = 0  # the output frames it fills: the scene's last frames and its crossfade


@dataclass(frozen=True)
class ThumbsResult(Result):
    variants: tuple[str, ...] = ()


@dataclass(frozen=True)
class ChapterSpan:
    """One chapter after merging: where it runs in the final video, its title, its scenes (indexes)."""

    start: float
    end: float
    title: str
    scenes: tuple[int, ...]


@dataclass(frozen=True)
class SubsResult(Result):
    cues: int = 0
    chapters: int = 0
    words: int = 0
    ranges: tuple[ChapterSpan, ...] = ()  # kept even when the list is dropped: Shorts group by them


@dataclass(frozen=True)
class VideoResult(Result):
    frames: int = 0
    duration: float = 0.0
    size: int = 0
    video_bytes: int = 0
    audio_bytes: int = 0
    gain_db: float = 0.0
    true_peak_dbtp: float | None = None
    audio_chunks_reused: int = 0
    audio_chunks_encoded: int = 0
    cache_files: tuple[str, ...] = ()  # the AAC chunk records it used (generated files, not outputs)


@dataclass(frozen=True)
class ShortFile:
    """One Short as made: its number and title, its MP4 and SRT, its length, its content key (what
    its picture and sound were made from) and the scenes it shows (indexes)."""

    number: int
    title: str
    path: str
    srt: str
    frames: int
    duration: float
    key: str
    scenes: tuple[int, ...]
    size: int = 0


@dataclass(frozen=True)
class ShortsResult(Result):
    """A language's Shorts (`path` is their folder); `cache_files` are the step's own records (the
    index of rendered Shorts and their AAC chunks), generated files but not deliverables."""

    shorts: tuple[ShortFile, ...] = ()
    rendered: int = 0
    reused: int = 0
    cache_files: tuple[str, ...] = ()

    def files(self) -> tuple[str, ...]:
        return tuple(path for short in self.shorts for path in (short.path, short.srt))


# --- inputs ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NoInputs:
    pass


@dataclass(frozen=True)
class PadInputs:
    speech: SpeechResult


@dataclass(frozen=True)
class SegmentInputs:
    image: ImageResult


@dataclass(frozen=True)
class ClipInputs:
    image: ImageResult  # the scene's picture: the clip's first frame


@dataclass(frozen=True)
class MotionInputs:
    pads: tuple[PadResult, ...]  # the scene's padded narration in every language: their lengths
    image: ImageResult | None = None  # the scene's picture; None for a clip
    clip: ClipResult | None = None  # the clip generated from it, for motion "generate"


@dataclass(frozen=True)
class TailInputs:
    """What a tail's frames come from: this scene's picture (or the intro) and the next one's."""

    image: ImageResult | None = None  # this scene's picture (None: a clip, or the intro)
    pad: PadResult | None = None  # this scene's narration in the tail's language, for a moving scene
    intro: IntroResult | None = None  # the intro, for the crossfade from it into the first scene
    next_image: ImageResult | None = None  # the next scene's picture (None: a clip, or no next scene)
    clip: ClipResult | None = None  # this scene's generated clip, for motion "generate"
    next_clip: ClipResult | None = None  # the next scene's generated clip (its first frame fades in)


@dataclass(frozen=True)
class ThumbsInputs:
    base: ImageResult


@dataclass(frozen=True)
class SubsInputs:
    pads: tuple[PadResult, ...]
    intro: IntroResult | None = None


@dataclass(frozen=True)
class VideoInputs:
    """Per scene, in order: its segment (a still's GOP or a moving scene's shared segment), its
    padded narration and its tail (None for a still scene that cuts to the next)."""

    music: MusicResult
    segments: tuple[SegmentResult, ...]
    pads: tuple[PadResult, ...]
    intro: IntroResult | None = None
    tails: tuple[TailResult | None, ...] = ()
    intro_tail: TailResult | None = None


@dataclass(frozen=True)
class CaptionedInputs:
    pad: PadResult  # the scene's narration in the language: its length and word timings
    image: ImageResult | None = None  # the scene's picture (None: a clip)
    next_image: ImageResult | None = None  # the next scene's, for the crossfade into it
    clip: ClipResult | None = None  # the scene's generated clip, for motion "generate"
    next_clip: ClipResult | None = None


@dataclass(frozen=True)
class ShortsInputs:
    subs: SubsResult  # the merged chapters and the scenes each covers
    images: tuple[
        ImageResult, ...
    ]  # the scenes' pictures (vertical with shorts.images = "generate"); see ShortsScene
    pads: tuple[PadResult, ...]  # per scene: its padded narration and word timings
    music: MusicResult
    intro: IntroResult | None = None  # shorts.intro, encoded at the Shorts' size
    clips: tuple[ClipResult, ...] = ()  # the scenes' generated clips; see ShortsScene.generated


# --- requests --------------------------------------------------------------------------------------


_PATH = "zray_path"  # field metadata: "file" (an output the step writes) or "folder" (one it writes in)


def output_path(*, folder: bool = False, many: bool = False) -> Any:
    """A request field naming where the step writes: a file (listed in `outputs`), or a folder.

    Paths are not part of the key: they are derived from it (or from the title, so a new title
    renames). The planner builds the request with these empty, computes the key, then fills them
    (see `make_node`)."""
    return field(default=() if many else "", metadata={_PATH: "folder" if folder else "file"})


@dataclass(frozen=True)
class Request:
    """Everything a step needs besides its inputs; `outputs` are the files it writes.

    Every field is part of the node's key (`node_key`) except the paths declared with `output_path()`
    and the fields named in `unkeyed`, each with the reason it changes no byte the step writes."""

    kind: ClassVar[Kind]
    # True for a step whose files are known only once it has run (the Shorts, grouped by narration
    # lengths): its result lists them (`Result.files`), and they must be ones it `owns`.
    dynamic_outputs: ClassVar[bool] = False
    # Fields left out of the key, besides output paths: field name -> why no byte depends on it.
    unkeyed: ClassVar[Mapping[str, str]] = {}

    @classmethod
    def path_fields(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls) if f.metadata.get(_PATH))

    @classmethod
    def key_field_names(cls) -> tuple[str, ...]:
        return tuple(
            f.name for f in dataclasses.fields(cls) if not f.metadata.get(_PATH) and f.name not in cls.unkeyed
        )

    def key_fields(self) -> dict[str, Any]:
        """The request's part of its key: each key field as canonical JSON."""
        return {
            name: canonical(getattr(self, name), f"{type(self).__name__}.{name}")
            for name in self.key_field_names()
        }

    @property
    def outputs(self) -> tuple[str, ...]:
        found: list[str] = []
        for f in dataclasses.fields(self):
            if f.metadata.get(_PATH) == "file":
                value = getattr(self, f.name)
                found.extend(value if isinstance(value, tuple) else (value,))
        return tuple(found)

    def owns(self, path: str) -> bool:
        """Whether the step may write `path`: one of its outputs, or for dynamic outputs, a file
        inside its folder."""
        return path in self.outputs


@dataclass(frozen=True)
class ImageRequest(Request):
    kind = Kind.IMAGE
    prompt: str
    width: int
    height: int
    seed: int
    label: str  # drawn on the draft's storyboard cards ("Scene 3"); other engines ignore it
    output: str = output_path()


@dataclass(frozen=True)
class ImportRequest(Request):
    """A studio's own picture, copied into the episode folder, made into the scene's image."""

    kind = Kind.IMPORT
    source: str  # the file's copy in the episode folder
    digest: str  # its sha256 when it was copied: a copy that changed is an error, not an input
    output: str = output_path()


@dataclass(frozen=True)
class SpeechRequest(Request):
    kind = Kind.SPEECH
    text: str
    lang: str
    output: str = output_path()


@dataclass(frozen=True)
class MusicRequest(Request):
    kind = Kind.MUSIC
    prompt: str
    seconds: float
    file: str | None = None  # a track of the studio's library, named by the script
    output: str = output_path()


@dataclass(frozen=True)
class Clip:
    """A studio clip as a scene's picture."""

    source: str  # its copy in the episode folder
    digest: str  # its sha256: a copy that changed is an error, not an input
    fit: str  # "cover" or "contain"
    fill: str  # "hold" or "loop": what shows past its end


@dataclass(frozen=True)
class PadRequest(Request):
    """One scene's narration on whole frames: `lead_frames` of silence, the speech, `gap_frames` of
    silence (the pause before the next scene, or the episode's tail after the last one)."""

    kind = Kind.PAD
    fps: int
    lead_frames: int = 0
    gap_frames: int = 0
    # A studio clip whose own sound plays under the narration at `clip_level`, from the scene's
    # first frame (then stereo; fitted to the scene as its picture is: cut, held silent, or looped).
    clip: Clip | None = None
    clip_level: float = 0.0
    output: str = output_path()


@dataclass(frozen=True)
class SegmentRequest(Request):
    kind = Kind.SEGMENT
    video: VideoSettings
    output: str = output_path()


@dataclass(frozen=True)
class Generated:
    """A clip generated from the scene's picture (the step's `clip` input), fitted to the frame as
    `fit` says; past its end the scene goes on from its last frame under `move`."""

    fit: str  # "cover" or "contain" (video.fit)
    move: Move


@dataclass(frozen=True)
class Shot:
    """How a scene's frames come from its picture: a still (no field), a still under a camera
    move, a studio clip, or a clip generated from the picture."""

    move: Move | None = None
    clip: Clip | None = None
    generated: Generated | None = None

    @property
    def moves(self) -> bool:
        return self.move is not None or self.clip is not None or self.generated is not None


@dataclass(frozen=True)
class ClipRequest(Request):
    """A clip of `frames` frames at 24 fps (4n + 1), width x height, starting from the scene's
    picture (the `image` input) and moving as `prompt` says."""

    kind = Kind.CLIP
    prompt: str
    width: int
    height: int
    frames: int
    seed: int
    # The storyboard card's (prompt, seed, label) when the draft image engine drew the picture: the
    # parallax engine rebuilds the card's layers from it. None for any other picture.
    layers: tuple[str, int, str] | None = None
    output: str = output_path()


@dataclass(frozen=True)
class MotionRequest(Request):
    """A moving scene's frames from its first, in whole GOPs, as many as its longest language plays
    before its tail (see zray.media.shots)."""

    kind = Kind.MOTION
    video: VideoSettings
    shot: Shot
    transition: int  # frames of the crossfade out of this scene (they are part of each tail)
    output: str = output_path()


@dataclass(frozen=True)
class TailRequest(Request):
    """The frames after a scene's shared segment: for a moving scene the rest of its body in one
    language, then `transition` frames fading into the next scene's first frame; for a still
    scene only the crossfade; from the intro, the intro's last frames and the crossfade."""

    kind = Kind.TAIL
    video: VideoSettings
    shot: Shot  # this scene's (ignored for the intro)
    next: Shot | None  # the next scene's; None after the last scene
    transition: int  # frames, already clamped to the scene's gap (to the intro's length by the step)
    output: str = output_path()


@dataclass(frozen=True)
class IntroRequest(Request):
    kind = Kind.INTRO
    source: str  # the intro clip's copy in the episode folder
    digest: str  # its sha256: a copy that changed is an error, not an input
    video: VideoSettings
    output: str = output_path()


@dataclass(frozen=True)
class ThumbsRequest(Request):
    kind = Kind.THUMBS
    texts: tuple[str, ...]
    lang: str
    official_variant: int = 1  # which variant (from 1) the official thumbnail is a copy of
    official: str = output_path()
    variants: tuple[str, ...] = output_path(many=True)


@dataclass(frozen=True)
class SceneText:
    text: str
    chapter: str | None
    label: str


@dataclass(frozen=True)
class SubsRequest(Request):
    kind = Kind.SUBS
    lang: str
    scenes: tuple[SceneText, ...]
    fps: int
    srt: str = output_path()
    vtt: str = output_path()
    chapters: str = output_path()
    words: str = output_path()


@dataclass(frozen=True)
class AudioMix:
    """How the language's soundtrack is mixed and levelled (the `[audio]` settings)."""

    music_level: float
    duck: bool
    target_lufs: float
    peak_dbfs: float
    music_fade_in: float = 0.0  # seconds, where the music starts
    music_fade_out: float = 0.0  # seconds: the episode's tail


@dataclass(frozen=True)
class VideoRequest(Request):
    kind = Kind.VIDEO
    video: VideoSettings
    audio: AudioMix
    lang: str
    intro_source: str | None = None
    output: str = output_path()
    audio_cache: str = output_path(folder=True)  # cached AAC chunks for this language (keyed by content)


@dataclass(frozen=True)
class CaptionSettings:
    """How burned-in captions look (the `[captions]` settings): the font file and its sha256 (in
    keys), the spoken word's colour, and the box they are drawn in (fractions of the frame)."""

    font: str
    font_digest: str
    highlight: tuple[int, int, int]
    box: tuple[float, float, float, float]  # left, top, right, bottom


@dataclass(frozen=True)
class CaptionedRequest(Request):
    """A scene with one language's captions burned in, for the whole of its padded narration: its
    picture (still, moving or a clip) and the crossfade into the next scene, as one segment."""

    kind = Kind.CAPTIONED
    text: str  # the scene's narration in the language
    video: VideoSettings
    captions: CaptionSettings
    shot: Shot
    transition: int = 0  # frames of crossfade into the next scene, at the end of this one
    next: Shot | None = None  # the next scene's shot, when there is a crossfade
    output: str = output_path()


@dataclass(frozen=True)
class ShortsScene:
    """A scene as the Shorts see it: its narration, and the keys of its picture and padded narration
    (a Short is keyed by what it shows and says)."""

    label: str
    text: str
    image_key: str  # of its picture (its clip's content, for a clip)
    pad_key: str
    image: int | None = None  # its picture among the step's `images`; None for a clip
    clip: Clip | None = None  # a studio clip shown instead of a picture (cover-fitted)
    generated: ShortsClip | None = None  # a clip generated from its picture (motion "generate")


@dataclass(frozen=True)
class ShortsClip:
    """A generated clip a Short shows for a scene: the scene's own (horizontal) clip panned across
    (`move` None), or a vertical clip made at the Shorts' size, fitted and carried on past its end
    under `move` as the long video carries on the scene's clip."""

    key: str  # the clip node's key: a new clip (a review seed) is a new Short
    index: int  # the clip among the step's `clips`
    move: Move | None = None


@dataclass(frozen=True)
class ShortsRequest(Request):
    """Every Short of one language (see zray.pipeline.shorts): grouped from the chapters once the
    narration's lengths are known, each rendered only when what it is made from changed."""

    kind = Kind.SHORTS
    dynamic_outputs = True
    lang: str
    code: str  # the episode's code, S01E01, for file names
    fallback_title: str  # the episode's title: a Short without a chapter is named after it
    scenes: tuple[ShortsScene, ...]
    video: VideoSettings  # the Shorts' size; fps and preset as the long video
    audio: AudioMix
    captions: CaptionSettings
    max_seconds: float
    min_seconds: float
    lead: float  # seconds of silence before a Short's first word, at least
    tail: float  # seconds after its last word: the picture holds, the music fades
    transition: float  # seconds of crossfade into each scene (clamped to the pause before it)
    music_key: str
    intro_source: str | None = None  # shorts.intro's copy in the episode folder (for its sound)
    intro_key: str | None = None
    folder: str = output_path(folder=True)  # where the Shorts go: shorts/<lang>
    work: str = output_path(
        folder=True
    )  # the step's own records: the index of rendered Shorts, their AAC chunks

    def owns(self, path: str) -> bool:
        parts = path.split("/")
        return (
            path.startswith(self.folder + "/")
            and len(parts) == len(self.folder.split("/")) + 1
            and parts[-1] not in ("", ".", "..")
            and path.endswith((".mp4", ".srt"))
        )


REQUESTS: dict[Kind, type[Request]] = {
    cls.kind: cls
    for cls in (
        ImageRequest,
        ImportRequest,
        SpeechRequest,
        MusicRequest,
        PadRequest,
        SegmentRequest,
        ClipRequest,
        MotionRequest,
        TailRequest,
        IntroRequest,
        ThumbsRequest,
        SubsRequest,
        VideoRequest,
        CaptionedRequest,
        ShortsRequest,
    )
}

# Bumped whenever a kind's step starts writing other bytes for the same request and inputs (a new
# encoder setting, a fixed bug), so exactly that kind's artifacts, and what is made from them, rebuild.
# Version 1 is each step as it was when keys came to be derived from requests (KEY_FORMAT 2).
STEP_VERSION: dict[Kind, int] = {
    Kind.IMAGE: 1,
    Kind.IMPORT: 1,
    Kind.SPEECH: 1,
    Kind.MUSIC: 1,
    Kind.PAD: 1,
    Kind.SEGMENT: 1,
    Kind.CLIP: 1,
    Kind.MOTION: 1,
    Kind.TAIL: 1,
    Kind.INTRO: 1,
    Kind.THUMBS: 1,
    # 2: a cue ends at most 0.7 s after its last word (it hung over the scene's pause and the tail).
    Kind.SUBS: 2,
    # 2: the loudness gain searched on its grid from where the last search settled (mastering VERSION 2).
    Kind.VIDEO: 2,
    # 2: captions leave with the voice, as the subtitles' cues do.
    Kind.CAPTIONED: 2,
    # 2: x264 at a fixed thread count (it took the executor's threads, so the bytes depended on where it ran).
    # 3: the audio track tagged with its language; cues and loudness as subtitles 2 and video 2.
    Kind.SHORTS: 3,
}

INPUTS: dict[Kind, type] = {
    Kind.IMAGE: NoInputs,
    Kind.IMPORT: NoInputs,
    Kind.SPEECH: NoInputs,
    Kind.MUSIC: NoInputs,
    Kind.PAD: PadInputs,
    Kind.SEGMENT: SegmentInputs,
    Kind.CLIP: ClipInputs,
    Kind.MOTION: MotionInputs,
    Kind.TAIL: TailInputs,
    Kind.INTRO: NoInputs,
    Kind.THUMBS: ThumbsInputs,
    Kind.SUBS: SubsInputs,
    Kind.VIDEO: VideoInputs,
    Kind.CAPTIONED: CaptionedInputs,
    Kind.SHORTS: ShortsInputs,
}

RESULTS: dict[Kind, type[Result]] = {
    Kind.IMAGE: ImageResult,
    Kind.IMPORT: ImageResult,
    Kind.SPEECH: SpeechResult,
    Kind.MUSIC: MusicResult,
    Kind.PAD: PadResult,
    Kind.SEGMENT: SegmentResult,
    Kind.CLIP: ClipResult,
    Kind.MOTION: SegmentResult,
    Kind.TAIL: TailResult,
    Kind.INTRO: IntroResult,
    Kind.THUMBS: ThumbsResult,
    Kind.SUBS: SubsResult,
    Kind.VIDEO: VideoResult,
    Kind.CAPTIONED: SegmentResult,
    Kind.SHORTS: ShortsResult,
}

# A named input is one node id, a tuple of them (a list input, where None marks a missing item), or
# None (an optional input left out). Keys of inputs have the same shape (`InputKey`).
InputRef = str | tuple[str | None, ...] | None
InputKey = str | tuple[str | None, ...] | None
Engine = Mapping[str, Any]  # an engine's identity (`Engine.identity`): what decides its output


# --- keys ------------------------------------------------------------------------------------------


def canonical(value: Any, where: str = "value") -> Any:
    """A request field as canonical JSON: dataclasses (nested too) as objects of their fields,
    tuples as lists, mappings with text keys. Anything else is refused: a value whose JSON is not
    canonical (a set, a path, an object's repr) would make a key that changes between runs."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: canonical(getattr(value, f.name), f"{where}.{f.name}") for f in dataclasses.fields(value)
        }
    if isinstance(value, tuple | list):
        return [canonical(v, f"{where}[]") for v in value]
    if isinstance(value, Mapping):
        if not all(isinstance(k, str) for k in value):
            raise TypeError(f"{where}: a mapping in a key needs text keys")
        return {k: canonical(v, f"{where}.{k}") for k, v in value.items()}
    if value is None or isinstance(value, str | bool | int | float):
        return value
    raise TypeError(f"{where}: {type(value).__name__} has no canonical JSON; turn it into data first")


def node_key(request: Request, *, inputs: Mapping[str, InputKey], engine: Engine | None = None) -> str:
    """The content key of a node: a digest of everything that decides the bytes its step writes.

        content_key(KEY_FORMAT, kind, STEP_VERSION[kind],
                    fields=request.key_fields(), inputs={name: input node's key}, engine=identity)

    - `request.key_fields()`: every field of the request except its output paths (`output_path()`) and
      the fields its class lists in `unkeyed` (each with its reason); nested dataclasses serialise
      canonically (`canonical`).
    - `inputs`: the keys of the nodes whose results the step consumes, by input name (a list input
      as a list of keys, None for an item or an optional input left out).
    - `engine`: the identity of the engine that makes it (model kinds: image, tts, music), else None.

    Adding a node kind: add it to `Kind`, write its request (a frozen dataclass subclassing
    `Request`, output paths declared with `output_path()`), its inputs and result types, register them
    in `INPUTS`, `RESULTS` and `STEP_VERSION`, and build its nodes with `make_node` (never call
    this with a hand-made request of outputs: `make_node` fills them from the key). The property
    test (tests/test_keys_property.py) then checks the new kind's key covers every field.
    """
    return content_key(
        KEY_FORMAT,
        request.kind.value,
        STEP_VERSION[request.kind],
        fields=request.key_fields(),
        inputs=canonical(dict(inputs), f"{request.kind.value} inputs"),
        engine=canonical(engine, f"{request.kind.value} engine") if engine is not None else None,
    )


def field_digests(request: Request) -> dict[str, str]:
    """A digest of each key field and of each part of it (`video.width`, `scenes.2.text`): recorded
    with the node, so a later run can name what changed (see `zray.pipeline.explain`)."""
    digests: dict[str, str] = {}

    def walk(path: str, value: Any) -> None:
        digests[path] = content_key(value)[:12]
        if isinstance(value, dict):
            for name, item in value.items():
                walk(f"{path}.{name}", item)
        elif isinstance(value, list) and any(isinstance(item, dict | list) for item in value):
            for index, item in enumerate(value):
                walk(f"{path}.{index}", item)

    for name, value in request.key_fields().items():
        walk(name, value)
    return digests


@dataclass(frozen=True)
class Node:
    """One unit of work: run `request` on `inputs` (named results of other nodes).

    Build nodes with `make_node`, which derives `key` from the request, the inputs' keys and the
    engine's identity; `input_keys` and `engine` are kept so a record can say what changed."""

    id: str
    stage: str
    key: str
    request: Request
    inputs: Mapping[str, InputRef] = field(default_factory=dict, hash=False, compare=False)
    lang: str | None = None
    final: bool = False  # a deliverable: always brought up to date
    input_keys: Mapping[str, InputKey] = field(default_factory=dict, hash=False, compare=False)
    engine: Engine | None = field(default=None, hash=False, compare=False)
    # Where each request field came from, for `--explain`: field name -> a script JSON path
    # ("scenes.0.script_es") or a setting ("audio.scene_gap"). Not part of the key.
    sources: Mapping[str, str] = field(default_factory=dict, hash=False, compare=False)

    @property
    def kind(self) -> Kind:
        return self.request.kind

    @property
    def outputs(self) -> tuple[str, ...]:
        return self.request.outputs

    def produced(self, result: Result) -> tuple[str, ...]:
        """The files this node made: its outputs, and for dynamic outputs those its result lists.
        ValueError for a listed file the request does not own (a record must never name another)."""
        if not self.request.dynamic_outputs:
            return self.outputs
        files = result.files()
        stray = [path for path in files if not self.request.owns(path)]
        if stray or len(set(files)) != len(files):
            raise ValueError(f"{self.id}: its result names {stray[0] if stray else 'a file twice'!r}")
        return (*self.outputs, *files)

    @property
    def deps(self) -> tuple[str, ...]:
        found: list[str] = []
        for ref in self.inputs.values():
            if isinstance(ref, str):
                found.append(ref)
            elif ref:
                found.extend(r for r in ref if r is not None)
        return tuple(dict.fromkeys(found))

    def resolve(self, results: Mapping[str, Result]) -> Any:
        """This node's typed inputs, from the results of the nodes it names."""
        values: dict[str, Any] = {}
        for name, ref in self.inputs.items():
            if ref is None:
                values[name] = None
            elif isinstance(ref, str):
                values[name] = results[ref]
            else:
                values[name] = tuple(None if r is None else results[r] for r in ref)
        return INPUTS[self.kind](**values)


InputNodes = Mapping[str, "Node | Sequence[Node | None] | None"]


def make_node(
    node_id: str,
    request: Request,
    *,
    stage: str,
    inputs: InputNodes | None = None,
    engine: Engine | None = None,
    outputs: Callable[[str], Mapping[str, Any]] | None = None,
    lang: str | None = None,
    final: bool = False,
    sources: Mapping[str, str] | None = None,
) -> Node:
    """A node with its key derived from `request` (built with its output paths left empty), the
    keys of its `inputs` (nodes by input name; a list input a sequence, None for a missing item or an
    optional input left out) and the `engine`'s identity; then its output paths are filled from
    `outputs(key)` (field name -> path), so a path can embed the key. `sources` says where request
    fields come from (a script JSON path, a setting) for `--explain`; it is not part of the key.

        make_node(
            layout.node_id("motion", label),
            MotionRequest(video=video, shot=shot, transition=frames),
            stage="assembly",
            inputs={"pads": tuple(pads), "image": image_node},
            outputs=lambda key: {"output": layout.segment(f"mov_{label}", key)},
            sources={"shot": f"scenes.{index}.motion", "transition": "video.transition"},
        )
    """
    ids: dict[str, InputRef] = {}
    keys: dict[str, InputKey] = {}
    for name, value in (inputs or {}).items():
        if value is None or isinstance(value, Node):
            ids[name] = value.id if value is not None else None
            keys[name] = value.key if value is not None else None
        else:
            ids[name] = tuple(n.id if n is not None else None for n in value)
            keys[name] = tuple(n.key if n is not None else None for n in value)
    filled = [name for name in request.path_fields() if getattr(request, name)]
    if filled:
        raise ValueError(f"{node_id}: output paths come from the key; build the request without {filled[0]}")
    key = node_key(request, inputs=keys, engine=engine)
    if outputs is not None:
        request = dataclasses.replace(request, **outputs(key))
    missing = [name for name in request.path_fields() if getattr(request, name) in ("", None)]
    if missing:
        raise ValueError(f"{node_id}: no path for {missing[0]} (give it in outputs)")
    return Node(
        id=node_id,
        stage=stage,
        key=key,
        request=request,
        inputs=ids,
        lang=lang,
        final=final,
        input_keys=keys,
        engine=dict(engine) if engine is not None else None,
        sources=dict(sources or {}),
    )


def read_result(kind: Kind, data: Any) -> Result:
    """A recorded result, typed; ValueError when the record has the wrong shape."""
    return from_json(RESULTS[kind], data)
