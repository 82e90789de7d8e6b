"""The plan: every artifact an episode needs, its content key, where it lives, and what it needs.

Planning is pure: no Ray, no models, no media work. Keys chain (a node's key includes the keys of
the nodes it consumes), so changing one line of narration changes exactly the keys downstream of
it, and the driver can decide what to rebuild from the store alone, before Ray starts. Paths are
relative to the episode folder and come from its owner, `zray.episode`.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zray import __version__
from zray import episode as layout
from zray.config import Config
from zray.engines.base import seed_from
from zray.keys import content_key, safe_name
from zray.media.caption_box import LOWER_THIRD, CaptionError, parse_colour
from zray.media.constants import SAMPLE_RATE, THUMB_SIZE
from zray.media.video.settings import VideoSettings
from zray.nodes import (
    STAGES,
    AudioMix,
    CaptionedRequest,
    CaptionSettings,
    ImageRequest,
    ImportRequest,
    IntroRequest,
    MusicRequest,
    Node,
    PadRequest,
    SceneText,
    SegmentRequest,
    ShortsRequest,
    ShortsScene,
    SpeechRequest,
    SubsRequest,
    ThumbsRequest,
    VideoRequest,
)
from zray.pipeline.studio import StudioFile
from zray.review.record import ReviewOverrides
from zray.script import Script

DEFAULT_MUSIC_PROMPT = "calm cinematic ambient pads, slow, warm"

__all__ = [
    "STAGES",
    "Identities",
    "Intro",
    "Plan",
    "build_plan",
    "music_request",
    "scene_labels",
    "video_settings",
]


@dataclass(frozen=True)
class Identities:
    """What each engine puts into the keys of what it makes for this episode (see `Engine.identity`)."""

    image: Mapping[str, Any]
    music: Mapping[str, Any]  # for this episode's music prompt and music_file
    speech: Mapping[str, Mapping[str, Any]]  # per language


def music_request(script: Script) -> tuple[str, str | None]:
    """The episode's music prompt, and the studio track its script names (`music_file`), if any."""
    return script.global_music_prompt or DEFAULT_MUSIC_PROMPT, script.music_file


@dataclass(frozen=True)
class Intro:
    key: str  # where the intro clip's copy lives in the episode folder
    digest: str  # sha256 of the clip's bytes


@dataclass
class Plan:
    nodes: dict[str, Node]
    languages: list[str]
    video_names: dict[str, str]

    def targets(self) -> list[Node]:
        return [n for n in self.nodes.values() if n.final]


def video_settings(config: Config) -> VideoSettings:
    v = config.video
    return VideoSettings(
        width=v.width,
        height=v.height,
        fps=v.fps,
        preset=v.preset,
        gop=v.gop,
        keep_metadata=v.keep_metadata,
        sample_rate=SAMPLE_RATE,
    )


def scene_labels(script: Script) -> list[str]:
    """File-name labels for scenes: their ids made safe, disambiguated if two collapse to one."""
    labels = [safe_name(str(s.scene_id), fallback="scene") for s in script.scenes]
    if len(set(labels)) == len(labels):
        return labels
    return [f"{i:03d}_{label}" for i, label in enumerate(labels)]


@dataclass
class _Builder:
    script: Script
    config: Config
    identities: Identities
    intro: Intro | None
    studio: Mapping[str, StudioFile] = field(default_factory=dict)
    review: ReviewOverrides = field(default_factory=ReviewOverrides)
    shorts_intro: Intro | None = None
    nodes: dict[str, Node] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.video = video_settings(self.config)
        # Keys of what the encoder makes depend on the output format, written as it always was.
        self.vkey = {
            "width": self.video.width,
            "height": self.video.height,
            "fps": self.video.fps,
            "preset": self.video.preset,
            "gop": self.video.gop,
            "keep_metadata": self.video.keep_metadata,
        }
        self.labels = scene_labels(self.script)

    def add(self, node: Node) -> Node:
        self.nodes[node.id] = node
        return node

    # --- shared by every language --------------------------------------------------------------

    def music(self) -> Node:
        prompt, file = music_request(self.script)
        seconds = self.config.audio.music_seconds
        key = content_key("music", dict(self.identities.music), prompt, seconds, file)
        request = MusicRequest(
            prompt=prompt, seconds=seconds, file=file, output=layout.music_bed(key, seconds)
        )
        return self.add(Node(id="music", stage="music", key=key, request=request))

    def intro_segment(self) -> Node | None:
        if self.intro is None:
            return None
        key = content_key("intro", self.intro.digest, self.vkey, __version__)
        request = IntroRequest(
            source=self.intro.key,
            digest=self.intro.digest,
            video=self.video,
            output=layout.segment("intro", key),
        )
        return self.add(Node(id="intro", stage="assembly", key=key, request=request))

    def imported(self, node_id: str, name: str, output: str, *, lang: str | None = None) -> Node:
        """A studio's own picture in place of a generated one: keyed by its content, not its path."""
        item = self.studio[name]
        return self.add(
            Node(
                id=node_id,
                stage="images",
                key=content_key("image-file", item.digest, __version__),
                request=ImportRequest(source=item.key, digest=item.digest, output=output),
                lang=lang,
            )
        )

    def scene_picture(self, index: int) -> Node:
        """The scene's image, and its still encoded once as a segment every language repeats."""
        scene, label = self.script.scenes[index], self.labels[index]
        chosen = self.review.seed_for(index, str(scene.scene_id))  # a new picture asked for in review
        seed = chosen if chosen is not None else seed_from(self.script.code, str(scene.scene_id))
        v = self.video
        key = content_key("image", dict(self.identities.image), scene.image_prompt, v.width, v.height, seed)
        if scene.image_file:
            image = self.imported(f"image:{label}", scene.image_file, layout.scene_image(label))
        else:
            image = self.add(
                Node(
                    id=f"image:{label}",
                    stage="images",
                    key=key,
                    request=ImageRequest(
                        prompt=scene.image_prompt,
                        width=v.width,
                        height=v.height,
                        seed=seed,
                        label=f"Scene {index + 1}",
                        output=layout.scene_image(label),
                    ),
                )
            )
        key = image.key
        seg_key = content_key("segment", key, self.vkey, __version__)
        return self.add(
            Node(
                id=f"segment:{label}",
                stage="assembly",
                key=seg_key,
                request=SegmentRequest(video=v, output=layout.segment(f"seg_{label}", seg_key)),
                inputs={"image": image.id},
            )
        )

    # --- per language --------------------------------------------------------------------------

    def frames(self, seconds: float) -> int:
        """Seconds as whole frames, rounded up (a pause is never shorter than asked)."""
        return math.ceil(seconds * self.video.fps - 1e-9)

    def pacing(self, index: int) -> tuple[int, int]:
        """(lead, gap) frames of scene `index`: a lead before the first scene's narration; after each
        scene its gap (the script's `gap`, else audio.scene_gap), after the last the episode's tail."""
        audio, scenes = self.config.audio, self.script.scenes
        lead = self.frames(audio.lead) if index == 0 else 0
        if index == len(scenes) - 1:
            return lead, self.frames(audio.tail)
        gap = scenes[index].gap
        return lead, self.frames(audio.scene_gap if gap is None else gap)

    def narration(self, lang: str) -> list[Node]:
        """Each scene's speech, and the same padded to whole frames with its pauses."""
        identity = dict(self.identities.speech[lang])
        pads = []
        for index, scene in enumerate(self.script.scenes):
            label = self.labels[index]
            text = scene.narration(lang)
            raw_key = content_key("tts", identity, lang, text)
            speech = self.add(
                Node(
                    id=f"tts:{lang}:{label}",
                    stage="narration",
                    key=raw_key,
                    request=SpeechRequest(
                        text=text, lang=lang, output=layout.raw_speech(lang, label, raw_key)
                    ),
                    lang=lang,
                )
            )
            lead, gap = self.pacing(index)
            pad_key = content_key("pad", raw_key, self.video.fps, SAMPLE_RATE, lead, gap, __version__)
            pads.append(
                self.add(
                    Node(
                        id=f"pad:{lang}:{label}",
                        stage="narration",
                        key=pad_key,
                        request=PadRequest(
                            fps=self.video.fps,
                            output=layout.padded_speech(lang, label, pad_key),
                            lead_frames=lead,
                            gap_frames=gap,
                        ),
                        inputs={"speech": speech.id},
                        lang=lang,
                    )
                )
            )
        return pads

    def thumbnails(self, lang: str) -> Node:
        seo = self.script.seo_for(lang)
        prompt = seo.thumbnail_prompt or self.script.scenes[0].image_prompt
        seed = seed_from(self.script.code, "thumbnail", lang)
        if seo.thumbnail_file:
            base = self.imported(
                f"thumb_base:{lang}", seo.thumbnail_file, layout.thumbnail_base(lang), lang=lang
            )
        else:
            base = self.add(
                Node(
                    id=f"thumb_base:{lang}",
                    stage="thumbnails",
                    key=content_key("image", dict(self.identities.image), prompt, *THUMB_SIZE, seed),
                    request=ImageRequest(
                        prompt=prompt,
                        width=THUMB_SIZE[0],
                        height=THUMB_SIZE[1],
                        seed=seed,
                        label=f"{self.script.code} {lang.upper()}",
                        output=layout.thumbnail_base(lang),
                    ),
                    lang=lang,
                )
            )
        base_key = base.key
        texts = tuple(v.thumb_text or v.title for v in seo.variants)
        official = self.review.thumbnail_for(lang, len(texts))  # the variant chosen in review
        # Variant 1 keeps the key it always had; another choice changes this node's key only.
        chosen = [official] if official != 1 else []
        return self.add(
            Node(
                id=f"thumbs:{lang}",
                stage="thumbnails",
                key=content_key("thumbs", base_key, list(texts), __version__, *chosen),
                request=ThumbsRequest(
                    texts=texts,
                    lang=lang,
                    official=layout.thumbnail(lang),
                    variants=tuple(layout.thumbnail_variant(lang, n) for n in range(1, len(texts) + 1)),
                    official_variant=official,
                ),
                inputs={"base": base.id},
                lang=lang,
                final=True,
            )
        )

    def subtitles(self, lang: str, pads: list[Node], intro: Node | None) -> Node:
        scenes = tuple(
            SceneText(text=s.narration(lang), chapter=s.chapter(lang), label=self.labels[i])
            for i, s in enumerate(self.script.scenes)
        )
        key = content_key(
            "subs",
            [p.key for p in pads],
            intro.key if intro else None,
            self.video.fps,
            [{"text": s.text, "chapter": s.chapter, "label": s.label} for s in scenes],
            __version__,
        )
        return self.add(
            Node(
                id=f"subs:{lang}",
                stage="assembly",
                key=key,
                request=SubsRequest(
                    lang=lang,
                    scenes=scenes,
                    fps=self.video.fps,
                    srt=layout.subtitles(lang, "srt"),
                    vtt=layout.subtitles(lang, "vtt"),
                    chapters=layout.chapters(lang),
                    words=layout.subtitles(lang, "words.json"),
                ),
                inputs={"pads": tuple(p.id for p in pads), "intro": intro.id if intro else None},
                lang=lang,
                final=True,
            )
        )

    def video_file(
        self, lang: str, *, music: Node, intro: Node | None, segments: list[Node], pads: list[Node]
    ) -> Node:
        audio = self.config.audio
        mix = AudioMix(
            music_level=audio.music_level,
            duck=audio.duck,
            target_lufs=audio.target_lufs,
            peak_dbfs=audio.peak_dbfs,
            music_fade_in=audio.music_fade_in,
            music_fade_out=self.frames(audio.tail) / self.video.fps,
        )
        key = content_key(
            "video",
            [s.key for s in segments],
            [p.key for p in pads],
            music.key,
            intro.key if intro else None,
            self.intro.key if self.intro else None,
            audio.model_dump(),
            self.vkey,
            __version__,
        )
        name = layout.video(self.script.code, lang, self.script.title(lang))
        return self.add(
            Node(
                id=f"video:{lang}",
                stage="assembly",
                key=key,
                request=VideoRequest(
                    video=self.video,
                    audio=mix,
                    lang=lang,
                    output=name,
                    audio_cache=f"{layout.AUDIO_CACHE_DIR}/{lang}",
                    intro_source=self.intro.key if self.intro else None,
                ),
                inputs={
                    "music": music.id,
                    "segments": tuple(s.id for s in segments),
                    "pads": tuple(p.id for p in pads),
                    "intro": intro.id if intro else None,
                },
                lang=lang,
                final=True,
            )
        )

    # --- burned-in captions and Shorts --------------------------------------------------------

    def caption_settings(self, *, shorts: bool) -> CaptionSettings:
        captions = self.config.captions
        font = captions.font_path()
        box = self.config.shorts.box() if shorts else LOWER_THIRD
        return CaptionSettings(
            font=font,
            font_digest=file_digest(font),
            highlight=parse_colour(captions.highlight),
            box=(box.left, box.top, box.right, box.bottom),
        )

    def captioned_segments(self, lang: str, pads: list[Node]) -> list[Node]:
        """Each still scene with the language's captions burned in (`captions.burn = true`): a
        segment per scene and language instead of the one every language repeats."""
        captions = self.caption_settings(shorts=False)
        nodes = []
        for index, pad in enumerate(pads):
            label = self.labels[index]
            image = self.nodes[f"image:{label}"]
            text = self.script.scenes[index].narration(lang)
            key = content_key("captioned", image.key, pad.key, text, _plain(captions), self.vkey, __version__)
            nodes.append(
                self.add(
                    Node(
                        id=f"captioned:{lang}:{label}",
                        stage="assembly",
                        key=key,
                        request=CaptionedRequest(
                            text=text,
                            video=self.video,
                            captions=captions,
                            output=layout.segment(f"cap_{lang}_{label}", key),
                        ),
                        inputs={"image": image.id, "pad": pad.id},
                        lang=lang,
                    )
                )
            )
        return nodes

    def shorts_video(self) -> VideoSettings:
        """The Shorts' format: their own size, the long video's rate, preset and GOP."""
        shorts = self.config.shorts
        return dataclasses.replace(self.video, width=shorts.width, height=shorts.height)

    def vertical_pictures(self) -> list[Node]:
        """Each scene's picture for the Shorts: the scene's own image to pan across, or with
        `shorts.images = "generate"` a vertical image from the same prompt and seed (GPU time)."""
        pictures = []
        for index, scene in enumerate(self.script.scenes):
            label = self.labels[index]
            image = self.nodes[f"image:{label}"]
            if self.config.shorts.images != "generate" or scene.image_file:
                pictures.append(image)  # a studio's own picture is what the studio chose: pan across it
                continue
            # Image models work in multiples of 16 pixels: made a little larger, then cover-fitted.
            width, height = (
                16 * math.ceil(n / 16) for n in (self.config.shorts.width, self.config.shorts.height)
            )
            chosen = self.review.seed_for(index, str(scene.scene_id))  # as the scene's own picture
            seed = chosen if chosen is not None else seed_from(self.script.code, str(scene.scene_id))
            key = content_key("image", dict(self.identities.image), scene.image_prompt, width, height, seed)
            pictures.append(
                self.add(
                    Node(
                        id=f"image_v:{label}",
                        stage="images",
                        key=key,
                        request=ImageRequest(
                            prompt=scene.image_prompt,
                            width=width,
                            height=height,
                            seed=seed,
                            label=f"Scene {index + 1}",
                            output=layout.vertical_image(label),
                        ),
                    )
                )
            )
        return pictures

    def shorts_intro_segment(self) -> Node | None:
        """`shorts.intro` encoded at the Shorts' size, once for every language."""
        if self.shorts_intro is None:
            return None
        video = self.shorts_video()
        vkey = {**self.vkey, "width": video.width, "height": video.height}
        key = content_key("intro", self.shorts_intro.digest, vkey, __version__)
        request = IntroRequest(
            source=self.shorts_intro.key,
            digest=self.shorts_intro.digest,
            video=video,
            output=layout.segment("intro_shorts", key),
        )
        return self.add(Node(id="intro:shorts", stage="shorts", key=key, request=request))

    def shorts_transition(self) -> float:
        """Seconds of crossfade between a Short's scenes: the long video's `video.transition`, which
        the plan resolves (by profile) with the motion settings; a plan without them cuts."""
        return float(getattr(self, "transition", 0.0))

    def shorts(
        self,
        lang: str,
        *,
        subs: Node,
        pads: list[Node],
        pictures: list[Node],
        music: Node,
        intro: Node | None,
    ) -> Node:
        """Every Short of one language, in one node: how the chapters group into Shorts depends on
        the narration's lengths, known only after padding (see zray.pipeline.shorts)."""
        config, audio = self.config.shorts, self.config.audio
        video = self.shorts_video()
        scenes = tuple(
            ShortsScene(
                label=self.labels[i], text=s.narration(lang), image_key=pictures[i].key, pad_key=pads[i].key
            )
            for i, s in enumerate(self.script.scenes)
        )
        mix = AudioMix(
            music_level=audio.music_level,
            duck=audio.duck,
            target_lufs=audio.target_lufs,
            peak_dbfs=audio.peak_dbfs,
            music_fade_in=audio.music_fade_in,
            music_fade_out=audio.tail,
        )
        request = ShortsRequest(
            lang=lang,
            code=self.script.code,
            fallback_title=self.script.title(lang),
            scenes=scenes,
            video=video,
            audio=mix,
            captions=self.caption_settings(shorts=True),
            max_seconds=config.max_seconds,
            min_seconds=config.min_seconds,
            lead=audio.lead,
            tail=audio.tail,
            transition=self.shorts_transition(),
            music_key=music.key,
            folder=f"{layout.SHORTS_DIR}/{lang}",
            work=layout.shorts_work(lang),
            intro_source=self.shorts_intro.key if intro is not None and self.shorts_intro else None,
            intro_key=intro.key if intro is not None else None,
        )
        key = content_key("shorts", subs.key, _plain(request), __version__)
        return self.add(
            Node(
                id=f"shorts:{lang}",
                stage="shorts",
                key=key,
                request=request,
                inputs={
                    "subs": subs.id,
                    "images": tuple(p.id for p in pictures),
                    "pads": tuple(p.id for p in pads),
                    "music": music.id,
                    "intro": intro.id if intro is not None else None,
                },
                lang=lang,
                final=True,
            )
        )


def _plain(value: Any) -> Any:
    """A dataclass as JSON-able data, for a key."""
    return dataclasses.asdict(value)


@functools.lru_cache(maxsize=8)
def file_digest(path: str) -> str:
    """sha256 of a small file that shapes what is made (a caption font): a new file, new keys."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError as exc:
        raise CaptionError(f"captions.font {path!r} cannot be read ({exc.strerror or exc})") from None


def build_plan(
    script: Script,
    *,
    languages: list[str],
    identities: Identities,
    config: Config,
    intro: Intro | None = None,
    studio: Mapping[str, StudioFile] | None = None,
    review: ReviewOverrides | None = None,
    shorts_intro: Intro | None = None,
) -> Plan:
    """All nodes for one episode, in an order where every node comes after its inputs.

    `studio`: the studio's own files the script names (see `zray.pipeline.studio`), by name.
    `review`: the choices made in `zray review` (a scene's seed, the official thumbnail).
    `shorts_intro`: the clip before each Short (`shorts.intro`), when Shorts are made."""
    b = _Builder(
        script, config, identities, intro, dict(studio or {}), review or ReviewOverrides(), shorts_intro
    )
    music = b.music()
    intro_node = b.intro_segment()
    segments = [b.scene_picture(i) for i in range(len(script.scenes))]
    making_shorts = config.shorts.enabled
    vertical = b.vertical_pictures() if making_shorts else []
    shorts_intro_node = b.shorts_intro_segment() if making_shorts else None
    names: dict[str, str] = {}
    for lang in languages:
        pads = b.narration(lang)
        b.thumbnails(lang)
        subs = b.subtitles(lang, pads, intro_node)
        scenes = b.captioned_segments(lang, pads) if config.captions.on_long_video() else segments
        video = b.video_file(lang, music=music, intro=intro_node, segments=scenes, pads=pads)
        names[lang] = video.outputs[0]
        if making_shorts:
            b.shorts(lang, subs=subs, pads=pads, pictures=vertical, music=music, intro=shorts_intro_node)
    return Plan(nodes=b.nodes, languages=list(languages), video_names=names)
