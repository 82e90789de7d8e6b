"""Existing episodes keep their work when keys change format: old records are recognised, not redone.

Key format 1 (zray 0.1) wrote each node's key by hand beside its request in the planner; format 2
(`zray.keys.KEY_FORMAT`) derives it from the request (`zray.nodes.node_key`). A record made under
format 1 holds format-1 keys. This module keeps a compact copy of the format-1 formulas, used only
here, to recognise them: a node whose recorded key equals the key the old formula gives for the
same request (its inputs recognised too) was made from exactly what the new request describes, so
it takes its new key in place, and its files whose names embed the key are renamed by the usual
rename of current files (`prepare._apply_renames`). Nothing is recognised where the old key left
out something the new request carries:

- a storyboard card (the draft image engine draws its `label`, "Scene N", which the old key left
  out: a card may show another scene's number), so draft pictures rebuild, and what shows them;
- a node whose kind's step now writes other bytes (`nodes.STEP_VERSION` past 1, the version every
  format-1 record was made by): the Shorts (x264 at a fixed thread count), the subtitles and the
  long video (cue ends, loudness search), and whatever a later bump names.

An adopted long video keeps its file, so its upload record (published.json, upload_state.json) and
its review approval (review.json) follow it to the new key (`episode.follow_content_keys`): the file
on YouTube, and the file that was approved, are byte for byte the one in the folder. A video or Short
that is made again with the same bytes is followed the same way, at the end of its run.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from zray.config import Config
from zray.keys import content_key
from zray.media.constants import SAMPLE_RATE
from zray.media.video.settings import VideoSettings
from zray.nodes import STEP_VERSION, ImageRequest, ImportRequest, Kind, Node, Shot

log = logging.getLogger("zray")

LEGACY_VERSION = "0.1.0"  # zray's version, which every format-1 key of a made file included
FORMAT_1_STEP_VERSION = 1  # what each kind's step wrote under format 1
# Image engines that draw the request's label into the picture (format 1 left the label out).
LABEL_DRAWING_ENGINES = frozenset({"storyboard"})


@dataclass(frozen=True)
class Adoption:
    node_id: str
    old_key: str
    new_key: str


def legacy_keys(nodes: Mapping[str, Node], config: Config) -> dict[str, str | None]:
    """Each node's format-1 key for its request (None: a kind or case format 1 cannot vouch for).
    `nodes` in plan order: every node after its inputs."""
    old: dict[str, str | None] = {}
    for node in nodes.values():
        old[node.id] = _legacy_key(node, old, config)
    return old


def adopt(nodes: Mapping[str, Node], recorded: Mapping[str, str], config: Config) -> list[Adoption]:
    """The nodes whose recorded key (`recorded`: node id -> key) is their format-1 key, and whose
    inputs are adopted too (a node made from an input that rebuilds is not current)."""
    old = legacy_keys(nodes, config)
    adopted: dict[str, Adoption] = {}
    for node in nodes.values():
        key = old[node.id]
        if key is None or recorded.get(node.id) != key or STEP_VERSION[node.kind] != FORMAT_1_STEP_VERSION:
            continue
        if all(dep in adopted for dep in node.deps):
            adopted[node.id] = Adoption(node.id, key, node.key)
    return list(adopted.values())


# --- the format-1 formulas -------------------------------------------------------------------------


def format1_picture_key(
    request: ImageRequest | ImportRequest, identity: Mapping[str, Any] | None = None
) -> str:
    """A picture's format-1 key: what it is drawn from (a generated picture's engine, prompt, size and
    seed; an imported one's content). The planner also chooses camera moves from it, so an episode
    made under format 1 keeps its moves."""
    if isinstance(request, ImportRequest):
        return content_key("image-file", request.digest, LEGACY_VERSION)
    return content_key(
        "image", dict(identity or {}), request.prompt, request.width, request.height, request.seed
    )


def _vkey(video: VideoSettings) -> dict[str, Any]:
    return {
        "width": video.width,
        "height": video.height,
        "fps": video.fps,
        "preset": video.preset,
        "gop": video.gop,
        "keep_metadata": video.keep_metadata,
    }


def _asdict(value: Any) -> Any:
    return dataclasses.asdict(value) if value is not None else None


def _legacy_key(node: Node, old: Mapping[str, str | None], config: Config) -> str | None:
    request: Any = node.request
    engine = dict(node.engine) if node.engine is not None else None
    V = LEGACY_VERSION

    def key_of(name: str) -> str | None:
        ref = node.inputs.get(name)
        return old.get(ref) if isinstance(ref, str) else None

    def keys_of(name: str) -> list[str | None] | None:
        refs = node.inputs.get(name) or ()
        keys = [old.get(r) if r is not None else None for r in refs]
        return None if any(k is None for k, r in zip(keys, refs, strict=True) if r is not None) else keys

    def picture(image: str, shot: Shot | None) -> str | None:
        """A scene's format-1 picture key: its image node's, or its clip's."""
        if node.inputs.get(image) is not None:
            return key_of(image)
        if shot is not None and shot.clip is not None:
            return content_key("clip-file", shot.clip.digest)  # format 1's key of a clip picture
        return None

    kind = node.kind
    if kind == Kind.MUSIC:
        return content_key("music", engine, request.prompt, request.seconds, request.file)
    if kind == Kind.IMAGE:
        if request.label and (engine or {}).get("engine") in LABEL_DRAWING_ENGINES:
            return None  # its picture shows a label the old key did not cover
        return format1_picture_key(request, engine)
    if kind == Kind.IMPORT:
        return format1_picture_key(request)
    if kind == Kind.SPEECH:
        return content_key("tts", engine, request.lang, request.text)
    if kind == Kind.INTRO:
        return content_key("intro", request.digest, _vkey(request.video), V)
    if kind == Kind.PAD:
        speech = key_of("speech")
        sound = [_asdict(request.clip), request.clip_level] if request.clip else []
        return speech and content_key(
            "pad", speech, request.fps, SAMPLE_RATE, request.lead_frames, request.gap_frames, V, *sound
        )
    if kind == Kind.SEGMENT:
        image = key_of("image")
        return image and content_key("segment", image, _vkey(request.video), V)
    if kind == Kind.MOTION:
        pads, pic = keys_of("pads"), picture("image", request.shot)
        if pads is None or pic is None:
            return None
        return content_key(
            "motion", pic, _asdict(request.shot), pads, request.transition, _vkey(request.video), V
        )
    if kind == Kind.TAIL:
        following = picture("next_image", request.next) if request.next is not None else None
        if request.next is not None and following is None:
            return None
        if node.inputs.get("intro") is not None:
            intro = key_of("intro")
            return intro and content_key(
                "tail", intro, request.transition, following, _asdict(request.next), _vkey(request.video), V
            )
        pic = picture("image", request.shot)
        pad = key_of("pad") if node.inputs.get("pad") is not None else None
        if pic is None or (node.inputs.get("pad") is not None and pad is None):
            return None
        return content_key(
            "tail",
            pic,
            _asdict(request.shot),
            pad,
            request.transition,
            following,
            _asdict(request.next),
            _vkey(request.video),
            V,
        )
    if kind == Kind.THUMBS:
        base = key_of("base")
        chosen = [request.official_variant] if request.official_variant != 1 else []
        return base and content_key("thumbs", base, list(request.texts), V, *chosen)
    if kind == Kind.SUBS:
        pads = keys_of("pads")
        if pads is None or (node.inputs.get("intro") is not None and key_of("intro") is None):
            return None
        scenes = [{"text": s.text, "chapter": s.chapter, "label": s.label} for s in request.scenes]
        return content_key("subs", pads, key_of("intro"), request.fps, scenes, V)
    if kind == Kind.CAPTIONED:
        pic, pad = picture("image", request.shot), key_of("pad")
        following = picture("next_image", request.next) if request.next is not None else None
        if pic is None or pad is None or (request.next is not None and following is None):
            return None
        return content_key(
            "captioned",
            pic,
            _asdict(request.shot),
            pad,
            request.text,
            _asdict(request.captions),
            request.transition,
            following,
            _asdict(request.next),
            _vkey(request.video),
            V,
        )
    if kind == Kind.VIDEO:
        segments, pads, music = keys_of("segments"), keys_of("pads"), key_of("music")
        intro = key_of("intro") if node.inputs.get("intro") is not None else None
        if segments is None or pads is None or music is None:
            return None
        if node.inputs.get("intro") is not None and intro is None:
            return None
        moving: list[Any] = []
        if "tails" in node.inputs:
            tails = keys_of("tails")
            intro_tail = key_of("intro_tail") if node.inputs.get("intro_tail") is not None else None
            if tails is None or (node.inputs.get("intro_tail") is not None and intro_tail is None):
                return None
            moving = [tails, intro_tail]
        return content_key(
            "video",
            segments,
            pads,
            music,
            intro,
            request.intro_source,
            config.audio.model_dump(),
            _vkey(request.video),
            V,
            *moving,
        )
    return None  # the Shorts (step version 2), and kinds format 1 never made
