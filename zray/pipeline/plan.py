"""The plan: every artifact an episode needs, its typed request, where it lives, and what it needs.

Planning is pure: no Ray, no models, no media work. The planner writes requests, never keys: each
node's key is derived from its request, its inputs' keys and its engine's identity by
`zray.nodes.make_node`. Keys chain (a node's key includes the keys of the nodes it consumes), so
changing one line of narration changes exactly the keys downstream of it, and the driver can decide
what to rebuild from the store alone, before Ray starts. Paths are relative to the episode folder
and come from its owner, `zray.episode`.
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

from zray import episode as layout
from zray.config import Config
from zray.engines.base import seed_from
from zray.errors import ZrayError
from zray.media import generated, moves, shots
from zray.media.caption_box import LOWER_THIRD, CaptionError, parse_colour
from zray.media.constants import THUMB_SIZE
from zray.media.video.settings import VideoSettings
from zray.nodes import (
    STAGES,
    AudioMix,
    CaptionedRequest,
    CaptionSettings,
    Clip,
    ClipRequest,
    Generated,
    ImageRequest,
    ImportRequest,
    IntroRequest,
    MotionRequest,
    MusicRequest,
    Node,
    PadRequest,
    SceneText,
    SegmentRequest,
    ShortsClip,
    ShortsRequest,
    ShortsScene,
    Shot,
    SpeechRequest,
    SubsRequest,
    TailRequest,
    ThumbsRequest,
    VideoRequest,
    make_node,
)
from zray.pipeline.migrate_keys import format1_picture_key
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
]


@dataclass(frozen=True)
class Identities:
    """What each engine puts into the keys of what it makes for this episode (see `Engine.identity`)."""

    image: Mapping[str, Any]
    music: Mapping[str, Any]  # for this episode's music prompt and music_file
    speech: Mapping[str, Mapping[str, Any]]  # per language
    video: Mapping[str, Any] | None = None  # only for an episode with a scene of motion "generate"


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
    warnings: list[str] = field(default_factory=list)  # things worth telling before the run

    def targets(self) -> list[Node]:
        return [n for n in self.nodes.values() if n.final]


# Scene labels name files and node ids, so the episode's layout owns them; kept here for old imports.
scene_labels = layout.scene_labels


@dataclass(frozen=True)
class Picture:
    """A scene's picture: the node that makes it (None for a clip), its key, how its frames move."""

    node: Node | None
    key: str
    shot: Shot
    clip: Node | None = None  # the clip generated from the picture (motion "generate")


def resolve_motion(config: Config, profile: str) -> tuple[str, float]:
    """`video.motion` and `video.transition` with `auto` decided by the profile: production moves
    and crossfades, draft stays a slideshow (fast to make, and a draft is for checking content)."""
    production = profile == "production"
    motion = config.video.motion if config.video.motion != "auto" else ("gentle" if production else "none")
    transition = config.video.transition
    seconds = float(transition) if transition != "auto" else (0.5 if production else 0.0)
    return motion, seconds


def scene_motion(script: Script, index: int, motion: str) -> str:
    """How scene `index` moves: its own `motion`, else `motion` (video.motion resolved); a studio
    clip moves by itself, so `generate` never applies to it."""
    scene = script.scenes[index]
    chosen = scene.motion or motion
    return "clip" if scene.clip_file else chosen


def derived_clip_seed(picture_seed: int) -> int:
    """A scene's clip seed when review chose none: from its picture's seed."""
    return seed_from("clip", str(picture_seed))


def generates_clips(script: Script, config: Config, profile: str) -> bool:
    """Whether any scene of the episode has a clip generated from its picture."""
    motion, _ = resolve_motion(config, profile)
    return any(scene_motion(script, i, motion) == "generate" for i in range(len(script.scenes)))


@dataclass
class _Builder:
    script: Script
    config: Config
    identities: Identities
    intro: Intro | None
    studio: Mapping[str, StudioFile] = field(default_factory=dict)
    review: ReviewOverrides = field(default_factory=ReviewOverrides)
    profile: str = "draft"
    shorts_intro: Intro | None = None
    nodes: dict[str, Node] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.video = self.config.video.to_settings()
        self.motion, self.transition = resolve_motion(self.config, self.profile)
        self.labels = scene_labels(self.script)

    def add(self, node: Node) -> Node:
        self.nodes[node.id] = node
        return node

    # --- shared by every language --------------------------------------------------------------

    def music(self) -> Node:
        prompt, file = music_request(self.script)
        seconds = self.config.audio.music_seconds
        return self.add(
            make_node(
                layout.node_id("music"),
                MusicRequest(prompt=prompt, seconds=seconds, file=file),
                stage="music",
                engine=self.identities.music,
                outputs=lambda key: {"output": layout.music_bed(key, seconds)},
                sources={
                    "prompt": "global_music_prompt",
                    "seconds": "audio.music_seconds",
                    "file": "music_file",
                },
            )
        )

    def intro_segment(self) -> Node | None:
        if self.intro is None:
            return None
        return self.add(
            make_node(
                layout.node_id("intro"),
                IntroRequest(source=self.intro.key, digest=self.intro.digest, video=self.video),
                stage="assembly",
                outputs=lambda key: {"output": layout.segment("intro", key)},
                sources={"source": "--intro", "digest": "--intro", "video": "video"},
            )
        )

    def imported(
        self, node_id: str, name: str, output: str, *, setting: str, lang: str | None = None
    ) -> Node:
        """A studio's own picture in place of a generated one: keyed by its content, not its path."""
        item = self.studio[name]
        return self.add(
            make_node(
                node_id,
                ImportRequest(source=item.key, digest=item.digest),
                stage="images",
                outputs=lambda key: {"output": output},
                lang=lang,
                sources={"source": setting, "digest": setting},
            )
        )

    def scene_picture(self, index: int) -> Picture:
        """The scene's picture (generated, the studio's own, or a clip) and how its frames move."""
        scene, label = self.script.scenes[index], self.labels[index]
        if scene.clip_file:
            item = self.studio[scene.clip_file]
            clip = Clip(
                source=item.key,
                digest=item.digest,
                fit=self.config.video.fit,
                fill=self.config.video.clip_fill,
            )
            # Clips move by themselves: no camera move on top.
            return Picture(node=None, key=item.digest, shot=Shot(clip=clip))
        seed = self.scene_seed(index)[0]
        v = self.video
        layers: tuple[str, int, str] | None = None
        if scene.image_file:
            image = self.imported(
                layout.node_id("image", label),
                scene.image_file,
                layout.scene_image(label),
                setting=f"scenes.{index}.image_file",
            )
            drawn_from = format1_picture_key(image.request)
        else:
            image = self.drawn_image(
                index,
                node_id=layout.node_id("image", label),
                size=(v.width, v.height),
                size_from="video",
                output=layout.scene_image(label),
            )
            request = image.request
            assert isinstance(request, ImageRequest)
            drawn_from = format1_picture_key(request, self.identities.image)
            layers = self.storyboard_layers(request)
        motion = scene_motion(self.script, index, self.motion)
        if motion == "generate":
            return self.generated_clip(index, image, seed, layers=layers)
        if motion != "gentle":
            return Picture(node=image, key=image.key, shot=Shot())
        if scene.image_file:
            self.warn_if_small(index, scene.image_file)
        # The move is chosen from what the picture is drawn from, as zray 0.1 keyed it, so an
        # episode made then keeps its moves (and its videos their bytes); a choice, not a key.
        return Picture(node=image, key=image.key, shot=Shot(move=moves.choose_move(drawn_from)))

    def generated_clip(
        self, index: int, image: Node, seed: int, *, layers: tuple[str, int, str] | None
    ) -> Picture:
        """The scene's picture set in motion by the video engine, fitted to the frame as a studio
        clip is and carried on past its end by a gentle move chosen from the clip's key."""
        clip = self.clip_node(index, image, seed, layers=layers, size=(self.video.width, self.video.height))
        move = generated.continuation_move(clip.key)
        shot = Shot(generated=Generated(fit=self.config.video.fit, move=move))
        return Picture(node=image, key=image.key, shot=shot, clip=clip)

    def clip_node(
        self,
        index: int,
        image: Node,
        seed: int,
        *,
        layers: tuple[str, int, str] | None,
        size: tuple[int, int],
        vertical: bool = False,
    ) -> Node:
        """A clip made from `image` (picture seed `seed`, `size` pixels) by the video engine, keyed
        by the picture, the motion prompt, size, length, seed and the engine's identity: the scene's,
        or (`vertical`) the Shorts' from the vertical picture."""
        scene, label = self.script.scenes[index], self.labels[index]
        identity = self.identities.video
        if identity is None:
            raise ZrayError(f"scenes.{index}.motion: generate needs a video engine (engines.video)")
        setting = "shorts" if vertical else "video"
        width, height = generated.clip_size(
            *size,
            max_pixels=identity.get("max_pixels"),
            multiple=int(identity.get("size_multiple") or 16),
        )
        clip_seed, seed_source = self.clip_seed(index, seed)
        request = ClipRequest(
            prompt=scene.motion_prompt or scene.image_prompt,
            width=width,
            height=height,
            frames=generated.clip_frames(self.config.models.video_seconds),
            seed=clip_seed,
            layers=layers,
        )
        kind = "clip_v" if vertical else "clip"
        return self.add(
            make_node(
                layout.node_id(kind, label),
                request,
                stage="clips",
                inputs={"image": image},
                engine=identity,
                outputs=lambda key: {
                    "output": layout.vertical_clip(label, key) if vertical else layout.scene_clip(label, key)
                },
                sources={
                    "prompt": f"scenes.{index}.motion_prompt"
                    if scene.motion_prompt
                    else f"scenes.{index}.image_prompt",
                    "width": f"{setting}.width",
                    "height": f"{setting}.height",
                    "frames": "models.video_seconds",
                    "seed": seed_source,
                    "layers": f"scenes.{index}.image_prompt",
                },
            )
        )

    def clip_seed(self, index: int, picture_seed: int) -> tuple[int, str]:
        """The seed of the scene's clip, and where it comes from: a new clip asked for in review (the
        picture kept), else one derived from the picture's seed, so a new picture gives a new clip."""
        scene = self.script.scenes[index]
        chosen = self.review.clip_seed_for(index, str(scene.scene_id))
        if chosen is not None:
            return chosen, f"review clip seed of scene {scene.scene_id}"
        return derived_clip_seed(picture_seed), self.scene_seed(index)[1]

    def drawn_image(
        self, index: int, *, node_id: str, size: tuple[int, int], size_from: str, output: str
    ) -> Node:
        """The scene's picture made by the image engine at `size` (set by the `size_from` settings:
        the long video's or the Shorts'), from its prompt, seed and label."""
        scene = self.script.scenes[index]
        seed, seed_source = self.scene_seed(index)
        request = ImageRequest(
            prompt=scene.image_prompt,
            width=size[0],
            height=size[1],
            seed=seed,
            label=f"Scene {scene.scene_id}",
        )
        return self.add(
            make_node(
                node_id,
                request,
                stage="images",
                engine=self.identities.image,
                outputs=lambda key: {"output": output},
                sources={
                    "prompt": f"scenes.{index}.image_prompt",
                    "width": f"{size_from}.width",
                    "height": f"{size_from}.height",
                    "seed": seed_source,
                    "label": f"scenes.{index}.scene_id",
                },
            )
        )

    def storyboard_layers(self, request: ImageRequest) -> tuple[str, int, str] | None:
        """What the draft clip engine rebuilds a storyboard card's layers from (None: another engine's picture)."""
        if self.identities.image.get("engine") != "storyboard":
            return None
        return (request.prompt, request.seed, request.label)

    def scene_seed(self, index: int) -> tuple[int, str]:
        """The scene's picture seed, and where it comes from: a new picture asked for in review,
        else one derived from the episode and the scene's id."""
        scene = self.script.scenes[index]
        chosen = self.review.seed_for(index, str(scene.scene_id))
        if chosen is not None:
            return chosen, f"review seed of scene {scene.scene_id}"
        return seed_from(self.script.code, str(scene.scene_id)), f"scenes.{index}.scene_id"

    def warn_if_small(self, index: int, name: str) -> None:
        size = self.studio[name].size
        if size is None:
            return
        v, deepest = self.video, 1.0 + moves.ZOOM
        if max(v.width / size[0], v.height / size[1]) * deepest > 1.0:
            self.warnings.append(
                f"scenes.{index}.image_file: {name} is {size[0]}x{size[1]}; the camera move shows it "
                f"enlarged, soft at {v.width}x{v.height} (give at least "
                f"{math.ceil(v.width * deepest)}x{math.ceil(v.height * deepest)}, or motion none for the scene)"
            )

    def still_segment(self, index: int, picture: Picture) -> Node:
        """A still's picture encoded once as a GOP that every language repeats."""
        assert picture.node is not None
        label = self.labels[index]
        return self.add(
            make_node(
                layout.node_id("segment", label),
                SegmentRequest(video=self.video),
                stage="assembly",
                inputs={"image": picture.node},
                outputs=lambda key: {"output": layout.segment(f"seg_{label}", key)},
                sources={"video": "video"},
            )
        )

    def moving_segment(self, index: int, picture: Picture, pads: list[Node]) -> Node:
        """A moving scene encoded once, as long as its longest language needs (its pads, in every
        language, decide how long)."""
        label = self.labels[index]
        return self.add(
            make_node(
                layout.node_id("motion", label),
                MotionRequest(video=self.video, shot=picture.shot, transition=self.transition_out(index)),
                stage="assembly",
                inputs={"pads": tuple(pads), "image": picture.node, "clip": picture.clip},
                outputs=lambda key: {"output": layout.segment(f"mov_{label}", key)},
                sources=self.shot_sources(index, transition=True),
            )
        )

    def shot_sources(self, index: int, *, transition: bool) -> dict[str, str]:
        scene = self.script.scenes[index]
        shot = (
            f"scenes.{index}.clip_file"
            if scene.clip_file
            else (f"scenes.{index}.motion" if scene.motion else "video.motion")
        )
        sources = {"video": "video", "shot": shot}
        if transition:
            sources["transition"] = "video.transition"
        if index + 1 < len(self.script.scenes):
            sources["next"] = f"scenes.{index + 1}.motion"
        return sources

    def transition_in(self, index: int) -> int:
        """Frames of the crossfade into scene `index`, inside the previous scene's gap (into the
        first scene from the intro: clamped to the intro's length by the step that knows it)."""
        if index == 0:
            return shots.transition_frames(self.transition, fps=self.video.fps)
        return shots.transition_frames(self.transition, fps=self.video.fps, room=self.pacing(index - 1)[1])

    def transition_out(self, index: int) -> int:
        return self.transition_in(index + 1) if index + 1 < len(self.script.scenes) else 0

    def tail(self, index: int, pictures: list[Picture], pad: Node | None, lang: str | None) -> Node | None:
        """What follows scene `index`'s shared segment in one language: for a moving scene the rest
        of it and its crossfade (per language); for a still only the crossfade (shared by every
        language, its frames do not depend on the scene's length); None for a still that cuts."""
        label, picture, out = self.labels[index], pictures[index], self.transition_out(index)
        moving = picture.shot.moves
        if not moving and not out:
            return None
        node_id = layout.node_id("tail", lang, label) if moving else layout.node_id("tail", label)
        if node_id in self.nodes:
            return self.nodes[node_id]
        following = pictures[index + 1] if index + 1 < len(pictures) else None
        return self.add(
            make_node(
                node_id,
                TailRequest(
                    video=self.video,
                    shot=picture.shot,
                    next=following.shot if following else None,
                    transition=out,
                ),
                stage="assembly",
                inputs={
                    "image": picture.node,
                    "pad": pad if moving else None,
                    "next_image": following.node if following else None,
                    "clip": picture.clip,
                    "next_clip": following.clip if following else None,
                },
                outputs=lambda key: {"output": layout.segment(f"tail_{label}", key)},
                lang=lang if moving else None,
                sources=self.shot_sources(index, transition=True),
            )
        )

    def intro_tail(self, intro: Node | None, first: Picture) -> Node | None:
        """The intro's last frames fading into the first scene's first frame, shared by every language."""
        frames = self.transition_in(0)
        if intro is None or not frames:
            return None
        return self.add(
            make_node(
                layout.node_id("tail", "intro"),
                TailRequest(video=self.video, shot=Shot(), next=first.shot, transition=frames),
                stage="assembly",
                inputs={"intro": intro, "next_image": first.node, "next_clip": first.clip},
                outputs=lambda key: {"output": layout.segment("tail_intro", key)},
                sources={"video": "video", "next": "scenes.0.motion", "transition": "video.transition"},
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

    def gap_source(self, index: int) -> str:
        if index == len(self.script.scenes) - 1:
            return "audio.tail"
        return f"scenes.{index}.gap" if self.script.scenes[index].gap is not None else "audio.scene_gap"

    def narration(self, lang: str) -> list[Node]:
        """Each scene's speech, and the same padded to whole frames with its pauses."""
        pads = []
        for index, scene in enumerate(self.script.scenes):
            label = self.labels[index]
            speech = self.add(
                make_node(
                    layout.node_id("tts", lang, label),
                    SpeechRequest(text=scene.narration(lang), lang=lang),
                    stage="narration",
                    engine=self.identities.speech[lang],
                    outputs=lambda key, label=label: {"output": layout.raw_speech(lang, label, key)},
                    lang=lang,
                    sources={"text": f"scenes.{index}.script_{lang}", "lang": "--lang"},
                )
            )
            lead, gap = self.pacing(index)
            clip, level = self.clip_sound(index)
            pads.append(
                self.add(
                    make_node(
                        layout.node_id("pad", lang, label),
                        PadRequest(
                            fps=self.video.fps, lead_frames=lead, gap_frames=gap, clip=clip, clip_level=level
                        ),
                        stage="narration",
                        inputs={"speech": speech},
                        outputs=lambda key, label=label: {"output": layout.padded_speech(lang, label, key)},
                        lang=lang,
                        sources={
                            "fps": "video.fps",
                            "lead_frames": "audio.lead",
                            "gap_frames": self.gap_source(index),
                            "clip": f"scenes.{index}.clip_file",
                            "clip_level": f"scenes.{index}.clip_audio",
                        },
                    )
                )
            )
        return pads

    def clip_sound(self, index: int) -> tuple[Clip | None, float]:
        """The scene's clip and the level its own sound plays at, when the script asks for it."""
        scene = self.script.scenes[index]
        if not scene.clip_file or not scene.clip_audio:
            return None, 0.0
        item = self.studio[scene.clip_file]
        clip = Clip(
            source=item.key, digest=item.digest, fit=self.config.video.fit, fill=self.config.video.clip_fill
        )
        return clip, float(scene.clip_audio)

    def thumbnails(self, lang: str) -> Node:
        seo = self.script.seo_for(lang)
        prompt = seo.thumbnail_prompt or self.script.scenes[0].image_prompt
        if seo.thumbnail_file:
            base = self.imported(
                layout.node_id("thumb_base", lang),
                seo.thumbnail_file,
                layout.thumbnail_base(lang),
                setting=f"seo.{lang}.thumbnail_file",
                lang=lang,
            )
        else:
            base = self.add(
                make_node(
                    layout.node_id("thumb_base", lang),
                    ImageRequest(
                        prompt=prompt,
                        width=THUMB_SIZE[0],
                        height=THUMB_SIZE[1],
                        seed=seed_from(self.script.code, "thumbnail", lang),
                        # No label: an unlabelled storyboard card is a bare picture, without the
                        # prompt band the headline would be drawn over (image engines ignore labels).
                        label="",
                    ),
                    stage="thumbnails",
                    engine=self.identities.image,
                    outputs=lambda key: {"output": layout.thumbnail_base(lang)},
                    lang=lang,
                    sources={
                        "prompt": f"seo.{lang}.thumbnail_prompt"
                        if seo.thumbnail_prompt
                        else "scenes.0.image_prompt",
                        "seed": "episode",
                    },
                )
            )
        texts = tuple(v.thumb_text or v.title for v in seo.variants)
        official = self.review.thumbnail_for(lang, len(texts))  # the variant chosen in review
        return self.add(
            make_node(
                layout.node_id("thumbs", lang),
                ThumbsRequest(texts=texts, lang=lang, official_variant=official),
                stage="thumbnails",
                inputs={"base": base},
                outputs=lambda key: {
                    "official": layout.thumbnail(lang),
                    "variants": tuple(layout.thumbnail_variant(lang, n) for n in range(1, len(texts) + 1)),
                },
                lang=lang,
                final=True,
                sources={"texts": f"seo.{lang}", "official_variant": f"review thumbnail of {lang}"},
            )
        )

    def subtitles(self, lang: str, pads: list[Node], intro: Node | None) -> Node:
        scenes = tuple(
            SceneText(text=s.narration(lang), chapter=s.chapter(lang), label=self.labels[i])
            for i, s in enumerate(self.script.scenes)
        )
        return self.add(
            make_node(
                layout.node_id("subs", lang),
                SubsRequest(lang=lang, scenes=scenes, fps=self.video.fps),
                stage="assembly",
                inputs={"pads": tuple(pads), "intro": intro},
                outputs=lambda key: {
                    "srt": layout.subtitles(lang, "srt"),
                    "vtt": layout.subtitles(lang, "vtt"),
                    "chapters": layout.chapters(lang),
                    "words": layout.subtitles(lang, "words.json"),
                },
                lang=lang,
                final=True,
                sources={
                    "fps": "video.fps",
                    **{
                        f"scenes.{i}.{part}": f"scenes.{i}.{name}"
                        for i in range(len(scenes))
                        for part, name in (
                            ("text", f"script_{lang}"),
                            ("chapter", f"chapter_{lang}"),
                            ("label", "scene_id"),
                        )
                    },
                },
            )
        )

    def audio_mix(self, *, fade_out: float) -> AudioMix:
        audio = self.config.audio
        return AudioMix(
            music_level=audio.music_level,
            duck=audio.duck,
            target_lufs=audio.target_lufs,
            peak_dbfs=audio.peak_dbfs,
            music_fade_in=audio.music_fade_in,
            music_fade_out=fade_out,
        )

    def video_file(
        self,
        lang: str,
        *,
        music: Node,
        intro: Node | None,
        segments: list[Node],
        pads: list[Node],
        tails: list[Node | None],
        intro_tail: Node | None,
    ) -> Node:
        mix = self.audio_mix(fade_out=self.frames(self.config.audio.tail) / self.video.fps)
        # A slideshow of cuts (no motion, no crossfades) has no tails.
        moving = {"tails": tuple(tails), "intro_tail": intro_tail} if any(tails) or intro_tail else {}
        return self.add(
            make_node(
                layout.node_id("video", lang),
                VideoRequest(
                    video=self.video,
                    audio=mix,
                    lang=lang,
                    intro_source=self.intro.key if self.intro else None,
                ),
                stage="assembly",
                inputs={
                    "music": music,
                    "segments": tuple(segments),
                    "pads": tuple(pads),
                    "intro": intro,
                    **moving,
                },
                outputs=lambda key: {
                    "output": layout.video(self.script.code, lang, self.script.title(lang)),
                    "audio_cache": f"{layout.AUDIO_CACHE_DIR}/{lang}",
                },
                lang=lang,
                final=True,
                sources={
                    "video": "video",
                    "audio": "audio",
                    "audio.music_fade_out": "audio.tail",
                    "intro_source": "--intro",
                },
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

    def captioned_segments(self, lang: str, pictures: list[Picture], pads: list[Node]) -> list[Node]:
        """Each scene with the language's captions burned in (`captions.burn = true`): one segment
        per scene and language, its crossfade into the next scene included, instead of the still
        GOPs and moving segments every language shares."""
        captions = self.caption_settings(shorts=False)
        nodes = []
        for index, (picture, pad) in enumerate(zip(pictures, pads, strict=True)):
            label = self.labels[index]
            fade = self.transition_out(index)
            following = pictures[index + 1] if fade else None
            nodes.append(
                self.add(
                    make_node(
                        layout.node_id("captioned", lang, label),
                        CaptionedRequest(
                            text=self.script.scenes[index].narration(lang),
                            video=self.video,
                            captions=captions,
                            shot=picture.shot,
                            transition=fade,
                            next=following.shot if following else None,
                        ),
                        stage="assembly",
                        inputs={
                            "pad": pad,
                            "image": picture.node,
                            "next_image": following.node if following else None,
                            "clip": picture.clip,
                            "next_clip": following.clip if following else None,
                        },
                        outputs=lambda key, label=label: {
                            "output": layout.segment(f"cap_{lang}_{label}", key)
                        },
                        lang=lang,
                        sources={
                            **self.shot_sources(index, transition=True),
                            "text": f"scenes.{index}.script_{lang}",
                            "captions": "captions",
                        },
                    )
                )
            )
        return nodes

    def shorts_video(self) -> VideoSettings:
        """The Shorts' format: their own size, the long video's rate, preset and GOP."""
        shorts = self.config.shorts
        return dataclasses.replace(self.video, width=shorts.width, height=shorts.height)

    def vertical_pictures(self, pictures: list[Picture]) -> list[Picture]:
        """Each scene's picture for the Shorts: the scene's own (a picture or its generated clip to
        pan across, or its studio clip), or with `shorts.images = "generate"` a vertical image from
        the same prompt and seed (GPU time), and for a scene of motion generate a vertical clip
        made from it, fitted to the Short and carried on past its end as the long video's is."""
        vertical = []
        for index, (scene, picture) in enumerate(zip(self.script.scenes, pictures, strict=True)):
            if self.config.shorts.images != "generate" or scene.image_file or picture.node is None:
                # A studio's own picture or clip is what the studio chose; a generated clip is
                # panned across, as a picture is (the long video's continuation is not the Short's).
                vertical.append(
                    picture if picture.clip is None else dataclasses.replace(picture, shot=Shot())
                )
                continue
            # Image models work in multiples of 16 pixels: made a little larger, then cover-fitted.
            width, height = (
                16 * math.ceil(n / 16) for n in (self.config.shorts.width, self.config.shorts.height)
            )
            seed = self.scene_seed(index)[0]  # as the scene's own picture
            label = self.labels[index]
            node = self.drawn_image(
                index,
                node_id=layout.node_id("image_v", label),
                size=(width, height),
                size_from="shorts",
                output=layout.vertical_image(label),
            )
            if picture.clip is None:
                vertical.append(Picture(node=node, key=node.key, shot=Shot()))
                continue
            assert isinstance(node.request, ImageRequest)
            layers = self.storyboard_layers(node.request)
            clip = self.clip_node(index, node, seed, layers=layers, size=(width, height), vertical=True)
            shot = Shot(generated=Generated(fit="cover", move=generated.continuation_move(clip.key)))
            vertical.append(Picture(node=node, key=node.key, shot=shot, clip=clip))
        return vertical

    def shorts_intro_segment(self) -> Node | None:
        """`shorts.intro` encoded at the Shorts' size, once for every language."""
        if self.shorts_intro is None:
            return None
        return self.add(
            make_node(
                layout.node_id("intro", "shorts"),
                IntroRequest(
                    source=self.shorts_intro.key, digest=self.shorts_intro.digest, video=self.shorts_video()
                ),
                stage="shorts",
                outputs=lambda key: {"output": layout.segment("intro_shorts", key)},
                sources={"source": "shorts.intro", "digest": "shorts.intro", "video": "shorts"},
            )
        )

    def shorts_transition(self) -> float:
        """Seconds of crossfade between a Short's scenes: the long video's `video.transition`, as the
        profile resolves it (a cut in draft, 0.5 s in production)."""
        return self.transition

    @staticmethod
    def shorts_clip(picture: Picture, clips: list[Node]) -> ShortsClip | None:
        """How a Short shows a scene's generated clip: a vertical one fitted and carried on under its
        move, the scene's own panned across."""
        if picture.clip is None:
            return None
        move = picture.shot.generated.move if picture.shot.generated is not None else None
        return ShortsClip(key=picture.clip.key, index=clips.index(picture.clip), move=move)

    def shorts(
        self,
        lang: str,
        *,
        subs: Node,
        pads: list[Node],
        pictures: list[Picture],
        music: Node,
        intro: Node | None,
    ) -> Node:
        """Every Short of one language, in one node: how the chapters group into Shorts depends on
        the narration's lengths, known only after padding (see zray.pipeline.shorts)."""
        config, audio = self.config.shorts, self.config.audio
        images = [p.node for p in pictures if p.node is not None]  # a clip has no picture node
        clips = [p.clip for p in pictures if p.clip is not None]
        scenes = tuple(
            ShortsScene(
                label=self.labels[i],
                text=s.narration(lang),
                image_key=pictures[i].key,
                pad_key=pads[i].key,
                image=images.index(node) if (node := pictures[i].node) is not None else None,
                clip=pictures[i].shot.clip,
                generated=self.shorts_clip(pictures[i], clips),
            )
            for i, s in enumerate(self.script.scenes)
        )
        request = ShortsRequest(
            lang=lang,
            code=self.script.code,
            fallback_title=self.script.title(lang),
            scenes=scenes,
            video=self.shorts_video(),
            audio=self.audio_mix(fade_out=audio.tail),
            captions=self.caption_settings(shorts=True),
            max_seconds=config.max_seconds,
            min_seconds=config.min_seconds,
            lead=audio.lead,
            tail=audio.tail,
            transition=self.shorts_transition(),
            music_key=music.key,
            intro_source=self.shorts_intro.key if intro is not None and self.shorts_intro else None,
            intro_key=intro.key if intro is not None else None,
        )
        return self.add(
            make_node(
                layout.node_id("shorts", lang),
                request,
                stage="shorts",
                inputs={
                    "subs": subs,
                    "images": tuple(images),
                    "pads": tuple(pads),
                    "music": music,
                    "intro": intro,
                    # Only when a scene has one: the Shorts of an episode without keep their keys.
                    **({"clips": tuple(clips)} if clips else {}),
                },
                outputs=lambda key: {
                    "folder": f"{layout.SHORTS_DIR}/{lang}",
                    "work": layout.shorts_work(lang),
                },
                lang=lang,
                final=True,
                sources={
                    "video": "shorts",
                    "audio": "audio",
                    "captions": "captions",
                    "transition": "video.transition",
                    "max_seconds": "shorts.max_seconds",
                    "min_seconds": "shorts.min_seconds",
                    "lead": "audio.lead",
                    "tail": "audio.tail",
                    "fallback_title": f"seo.{lang}.title",
                    **{f"scenes.{i}.text": f"scenes.{i}.script_{lang}" for i in range(len(scenes))},
                },
            )
        )


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
    profile: str = "draft",
    shorts_intro: Intro | None = None,
) -> Plan:
    """All nodes for one episode, in an order where every node comes after its inputs.

    `studio`: the studio's own files the script names (see `zray.pipeline.studio`), by name.
    `review`: the choices made in `zray review` (a scene's seed, the official thumbnail).
    `profile` (draft or production) decides what `auto` motion and transitions mean.
    `shorts_intro`: the clip before each Short (`shorts.intro`), when Shorts are made."""
    b = _Builder(
        script,
        config,
        identities,
        intro,
        dict(studio or {}),
        review or ReviewOverrides(),
        profile,
        shorts_intro,
    )
    music = b.music()
    intro_node = b.intro_segment()
    pictures = [b.scene_picture(i) for i in range(len(script.scenes))]
    pads = {lang: b.narration(lang) for lang in languages}
    segments = [
        b.moving_segment(i, picture, [pads[lang][i] for lang in languages])
        if picture.shot.moves
        else b.still_segment(i, picture)
        for i, picture in enumerate(pictures)
    ]
    intro_tail = b.intro_tail(intro_node, pictures[0])
    making_shorts = config.shorts.enabled
    vertical = b.vertical_pictures(pictures) if making_shorts else []
    shorts_intro_node = b.shorts_intro_segment() if making_shorts else None
    names: dict[str, str] = {}
    for lang in languages:
        b.thumbnails(lang)
        subs = b.subtitles(lang, pads[lang], intro_node)
        tails: list[Node | None]
        if config.captions.on_long_video():
            # Each scene of the language, captions burned in, its crossfade out included: no tails.
            scenes = b.captioned_segments(lang, pictures, pads[lang])
            tails = [None] * len(pictures)
        else:
            scenes = segments
            tails = [b.tail(i, pictures, pads[lang][i], lang) for i in range(len(pictures))]
        video = b.video_file(
            lang,
            music=music,
            intro=intro_node,
            segments=scenes,
            pads=pads[lang],
            tails=tails,
            intro_tail=intro_tail,
        )
        names[lang] = video.outputs[0]
        if making_shorts:
            b.shorts(
                lang, subs=subs, pads=pads[lang], pictures=vertical, music=music, intro=shorts_intro_node
            )
    return Plan(nodes=b.nodes, languages=list(languages), video_names=names, warnings=b.warnings)
