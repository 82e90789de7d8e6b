"""The plan: every artifact an episode needs, its content key, where it lives, and what it needs.

Planning is pure: no Ray, no models, no media work. Keys chain (a node's key includes the keys of
the nodes it consumes), so changing one line of narration changes exactly the keys downstream of
it, and the driver can decide what to rebuild from the store alone, before Ray starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from zray import __version__
from zray.config import Config
from zray.engines.base import seed_from
from zray.engines.registry import EngineChoice
from zray.keys import content_key, safe_name
from zray.script import Script

THUMB_SIZE = (1280, 720)
# The project rate, zray.media.audio.SAMPLE_RATE; not imported so that planning (and a rerun with
# nothing to do) never loads scipy.
SAMPLE_RATE = 48_000
DEFAULT_MUSIC_PROMPT = "calm cinematic ambient pads, slow, warm"
SEGMENT_EXT = ".h264"

# Progress groups, in display order.
STAGES = ("images", "narration", "music", "thumbnails", "assembly")


@dataclass(frozen=True)
class Node:
    """One unit of work: run `kind` with `params`, consuming the results of `deps`, writing `outputs`."""

    id: str
    kind: str  # image | tts | music (actors); pad | segment | intro | thumbs | subs | video (tasks)
    stage: str
    key: str
    outputs: tuple[str, ...]  # store keys relative to the store root
    deps: tuple[str, ...] = ()
    params: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    lang: str | None = None
    final: bool = False  # a deliverable: always brought up to date


@dataclass
class Plan:
    episode: str  # store prefix of the episode folder
    nodes: dict[str, Node]
    languages: list[str]
    video_names: dict[str, str]

    def targets(self) -> list[Node]:
        return [n for n in self.nodes.values() if n.final]


@dataclass(frozen=True)
class Intro:
    key: str  # where the uploaded intro clip lives in the store
    digest: str  # sha256 of the clip's bytes


def build_plan(
    script: Script,
    *,
    episode: str,
    languages: list[str],
    engines: EngineChoice,
    identities: dict[str, dict[str, Any]],
    config: Config,
    intro: Intro | None = None,
) -> Plan:
    """All nodes for one episode; `identities` maps engine name -> engine.identity()."""
    nodes: dict[str, Node] = {}
    video = config.video
    vsettings = video.model_dump()
    code = script.code
    labels = _scene_labels(script)

    def add(node: Node) -> Node:
        nodes[node.id] = node
        return node

    def at(*parts: str) -> str:
        return "/".join([episode, *parts])

    music_prompt = script.global_music_prompt or DEFAULT_MUSIC_PROMPT
    music_id = identities[engines.music.name]
    # A script may name a track of the studio's music library (the `library` engine).
    music_file = (script.model_extra or {}).get("music_file")
    music_key = content_key("music", music_id, music_prompt, config.audio.music_seconds, music_file)
    music = add(
        Node(
            id="music",
            kind="music",
            stage="music",
            key=music_key,
            outputs=(
                at(
                    "assets", "common", f"bg_music_common_{music_key[:8]}_{config.audio.music_seconds:g}s.wav"
                ),
            ),
            params={"prompt": music_prompt, "seconds": config.audio.music_seconds, "file": music_file},
        )
    )

    intro_node = None
    if intro is not None:
        intro_key = content_key("intro", intro.digest, vsettings, __version__)
        intro_node = add(
            Node(
                id="intro",
                kind="intro",
                stage="assembly",
                key=intro_key,
                outputs=(at("assets", "tmp", "segments", f"intro_{intro_key}{SEGMENT_EXT}"),),
                params={"source": intro.key, "video": vsettings},
            )
        )

    image_id = identities[engines.image.name]
    scene_nodes: list[tuple[Node, Node]] = []
    for index, scene in enumerate(script.scenes):
        label = labels[index]
        seed = seed_from(code, str(scene.scene_id))
        key = content_key("image", image_id, scene.image_prompt, video.width, video.height, seed)
        image = add(
            Node(
                id=f"image:{label}",
                kind="image",
                stage="images",
                key=key,
                outputs=(at("assets", "common", f"img_{label}.png"),),
                params={
                    "prompt": scene.image_prompt,
                    "width": video.width,
                    "height": video.height,
                    "seed": seed,
                    "label": f"Scene {index + 1}",
                },
            )
        )
        seg_key = content_key("segment", key, vsettings, __version__)
        segment = add(
            Node(
                id=f"segment:{label}",
                kind="segment",
                stage="assembly",
                key=seg_key,
                outputs=(at("assets", "tmp", "segments", f"seg_{label}_{seg_key}{SEGMENT_EXT}"),),
                deps=(image.id,),
                params={"video": vsettings},
            )
        )
        scene_nodes.append((image, segment))

    video_names: dict[str, str] = {}
    for lang in languages:
        tts_id = identities.get(f"tts:{lang}") or identities[engines.tts[lang].name]
        pads: list[Node] = []
        for index, scene in enumerate(script.scenes):
            label = labels[index]
            text = scene.narration(lang)
            raw_key = content_key("tts", tts_id, lang, text)
            raw = add(
                Node(
                    id=f"tts:{lang}:{label}",
                    kind="tts",
                    stage="narration",
                    key=raw_key,
                    outputs=(at("assets", lang, "raw", f"audio_{lang}_{label}_{raw_key}_raw.wav"),),
                    params={"text": text, "lang": lang},
                    lang=lang,
                )
            )
            pad_key = content_key("pad", raw_key, video.fps, SAMPLE_RATE, __version__)
            pads.append(
                add(
                    Node(
                        id=f"pad:{lang}:{label}",
                        kind="pad",
                        stage="narration",
                        key=pad_key,
                        outputs=(at("assets", lang, "padding", f"audio_{lang}_{label}_{pad_key}.wav"),),
                        deps=(raw.id,),
                        params={"fps": video.fps},
                        lang=lang,
                    )
                )
            )

        seo = script.seo_for(lang)
        thumb_prompt = seo.thumbnail_prompt or script.scenes[0].image_prompt
        thumb_seed = seed_from(code, "thumbnail", lang)
        base_key = content_key("image", image_id, thumb_prompt, *THUMB_SIZE, thumb_seed)
        base = add(
            Node(
                id=f"thumb_base:{lang}",
                kind="image",
                stage="thumbnails",
                key=base_key,
                outputs=(at("assets", "thumbnails", f"thumbnail_raw_{lang}.png"),),
                params={
                    "prompt": thumb_prompt,
                    "width": THUMB_SIZE[0],
                    "height": THUMB_SIZE[1],
                    "seed": thumb_seed,
                    "label": f"{code} {lang.upper()}",
                },
                lang=lang,
            )
        )
        texts = [v.thumb_text or v.title for v in seo.variants]
        variant_paths = tuple(
            at("assets", "thumbnails", f"thumbnail_{lang}_v{n}.png") for n in range(1, len(texts) + 1)
        )
        add(
            Node(
                id=f"thumbs:{lang}",
                kind="thumbs",
                stage="thumbnails",
                key=content_key("thumbs", base_key, texts, __version__),
                outputs=(at(f"thumbnail_{lang}.png"), *variant_paths),
                deps=(base.id,),
                params={"texts": texts, "lang": lang},
                lang=lang,
                final=True,
            )
        )

        pad_keys = [p.key for p in pads]
        intro_deps = (intro_node.id,) if intro_node else ()
        scene_text = [
            {"text": s.narration(lang), "chapter": s.chapter(lang), "label": labels[i]}
            for i, s in enumerate(script.scenes)
        ]
        add(
            Node(
                id=f"subs:{lang}",
                kind="subs",
                stage="assembly",
                key=content_key(
                    "subs",
                    pad_keys,
                    intro_node.key if intro_node else None,
                    video.fps,
                    scene_text,
                    __version__,
                ),
                outputs=(
                    at(f"subtitles_{lang}.srt"),
                    at(f"subtitles_{lang}.vtt"),
                    at(f"chapters_{lang}.txt"),
                ),
                deps=(*intro_deps, *(p.id for p in pads)),
                params={"scenes": scene_text, "fps": video.fps, "has_intro": intro_node is not None},
                lang=lang,
                final=True,
            )
        )

        name = f"{code}-{lang.upper()}-{safe_name(script.title(lang))}.mp4"
        video_names[lang] = name
        segments = [seg for _, seg in scene_nodes]
        add(
            Node(
                id=f"video:{lang}",
                kind="video",
                stage="assembly",
                key=content_key(
                    "video",
                    [s.key for s in segments],
                    pad_keys,
                    music.key,
                    intro_node.key if intro_node else None,
                    intro.key if intro else None,
                    config.audio.model_dump(),
                    vsettings,
                    __version__,
                ),
                outputs=(at(name),),
                deps=(music.id, *intro_deps, *(s.id for s in segments), *(p.id for p in pads)),
                params={
                    "video": vsettings,
                    "audio": config.audio.model_dump(),
                    "scenes": len(segments),
                    "has_intro": intro_node is not None,
                    "intro_source": intro.key if intro else None,
                },
                lang=lang,
                final=True,
            )
        )
    return Plan(episode=episode, nodes=nodes, languages=list(languages), video_names=video_names)


def _scene_labels(script: Script) -> list[str]:
    """File-name labels for scenes: their ids made safe, disambiguated if two collapse to one."""
    labels = [safe_name(str(s.scene_id), fallback="scene") for s in script.scenes]
    if len(set(labels)) == len(labels):
        return labels
    return [f"{i:03d}_{label}" for i, label in enumerate(labels)]
