"""The seed's pictures, narrations, music bed and thumbnail bases as the artifacts zray's plan expects.

Matching starts from the plan, never from a key computed here: each image, voice, music and
thumbnail-base node of the current script's plan (for the chosen profile) looks for its seed
file; what it finds is converted as zray would have made it (a picture upright in RGB at its own
size, which the encoder fits to the frame as it fits a studio's picture; audio resampled to
zray's rate) and recorded in run.json under that node's key, marked as adopted with its source
file and sha256. So the next run finds it current, and a later edit of a prompt or a line changes
that node's key and remakes just that one, as for any artifact.

The keys of generated artifacts carry their engine's identity, which differs by profile: an
adopted artifact is recorded for the profile it was adopted for (`--profile`, `auto` as `zray
run` decides it). Adopting again for the other profile moves the record to that profile's keys.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from zray.adopt.seed import SeedFile, SeedFolder, UnsafeFile, music_hash
from zray.nodes import ImageResult, Kind, MusicRequest, MusicResult, Node, Result, SpeechResult
from zray.pipeline.plan import scene_labels
from zray.pipeline.prepare import Prepared

log = logging.getLogger("zray")

NO_TIMINGS = "adopted without word timings: its subtitles are timed by the length of its words"


@dataclass(frozen=True)
class Match:
    node: Node
    source: str  # relative to the seed folder
    what: str  # for the user: "picture of scene 3", "es narration of scene 3"


@dataclass
class Matched:
    matches: list[Match]
    unmatched: list[str]  # one line each
    current: list[str]  # nodes already current in the record (kept as they are)


def match_assets(seed: SeedFolder, prep: Prepared) -> Matched:
    """Each model-made node of the plan with its seed file, and what cannot be matched."""
    script, nodes = prep.script, prep.plan.nodes
    out = Matched([], [], [])
    labels = scene_labels(script)
    ids = [str(scene.scene_id) for scene in script.scenes]
    stamps = prep.store.stamps()  # one listing of the episode folder for every node

    def add(node_id: str, source: str | None, what: str, *, missing: str) -> None:
        node = nodes.get(node_id)
        if node is None or node.kind not in (Kind.IMAGE, Kind.SPEECH, Kind.MUSIC):
            out.unmatched.append(
                f"{what}: the script gives its own file (so {source or 'the seed file'} is not used)"
            )
            return
        if source is None:
            out.unmatched.append(f"{what}: {missing}")
            return
        if prep.record.check(node, stamps)[0]:
            out.current.append(f"{what}: already current in {prep.store.root_url}; {source} not needed")
            return
        out.matches.append(Match(node, source, what))

    pictures = seed.images()
    for index, (scene_id, label) in enumerate(zip(ids, labels, strict=True)):
        what = f"picture of scene {scene_id}"
        if script.scenes[index].clip_file:
            out.unmatched.append(f"{what}: the script gives a clip (so {seed.image(scene_id)} is not used)")
            continue
        add(
            f"image:{label}",
            pictures.get(scene_id),
            what,
            missing=f"no {seed.image(scene_id)} in the seed folder",
        )
    extra = sorted(set(pictures) - set(ids))
    for scene_id in extra:
        out.unmatched.append(
            f"{pictures[scene_id]}: the script has no scene {scene_id} (the seed folder has "
            f"{len(pictures)} scene pictures, the script {len(ids)} scenes)"
        )

    for lang in prep.languages:
        voices = seed.narrations(lang)
        for scene_id, label in zip(ids, labels, strict=True):
            what = f"{lang} narration of scene {scene_id}"
            found = voices.get(scene_id, [])
            if len(found) > 1:
                out.unmatched.append(
                    f"{what}: the seed made {len(found)} ({', '.join(found)}) and never said which is current"
                )
                continue
            add(
                f"tts:{lang}:{label}",
                found[0] if found else None,
                what,
                missing=f"no assets/{lang}/raw/audio_{lang}_{scene_id}_*_raw.wav in the seed folder",
            )
        for scene_id in sorted(set(voices) - set(ids)):
            out.unmatched.append(f"{voices[scene_id][0]}: the script has no scene {scene_id}")
        thumb = seed.thumbnail(lang)
        has_thumb = (seed.root / thumb).exists() or (seed.root / thumb).is_symlink()
        add(
            f"thumb_base:{lang}",
            thumb if has_thumb else None,
            f"{lang} thumbnail base",
            missing=f"no {thumb} in the seed folder",
        )
    for lang in seed.narration_languages():
        if lang not in prep.languages:
            out.unmatched.append(f"assets/{lang}: narrations in {lang}, a language this run does not make")

    _match_music(seed, prep, out, add)
    return out


def _match_music(seed: SeedFolder, prep: Prepared, out: Matched, add: Callable[..., None]) -> None:
    node = prep.plan.nodes.get("music")
    beds = seed.music()
    if node is None or not isinstance(node.request, MusicRequest):
        return
    if node.request.file:
        for bed in beds:
            out.unmatched.append(f"{bed.relative}: the script names its own music_file")
        return
    wanted = music_hash(node.request.prompt)
    matching = [bed for bed in beds if bed.prompt_hash == wanted]
    for bed in beds:
        if bed.prompt_hash != wanted:
            out.unmatched.append(
                f"{bed.relative}: made for another music prompt (md5 {bed.prompt_hash}, the script's is "
                f"{wanted})"
            )
    longest = max(matching, key=lambda bed: bed.seconds, default=None)
    add(
        "music",
        longest.relative if longest else None,
        "music bed",
        missing=f"no assets/common/bg_music_common_{wanted}_*s.wav in the seed folder",
    )


# --- conversion ------------------------------------------------------------------------------------


class Undecodable(Exception):
    pass


def _picture(data: bytes) -> Any:
    from PIL import Image, ImageOps

    try:
        with Image.open(io.BytesIO(data)) as opened:
            return ImageOps.exif_transpose(opened).convert("RGB")
    except Exception as exc:  # Pillow raises many kinds for a broken file
        raise Undecodable(f"does not decode as a picture ({type(exc).__name__})") from None


def _sound(data: bytes, *, keep_channels: bool) -> Any:
    from zray.media import audio
    from zray.media.constants import SAMPLE_RATE

    channels = 1
    if keep_channels:
        import soundfile

        try:
            channels = min(soundfile.info(io.BytesIO(data)).channels, 2)
        except Exception as exc:  # libsndfile's errors are RuntimeErrors of its own
            raise Undecodable(f"does not decode as audio ({type(exc).__name__})") from None
    try:
        samples = audio.decode_audio(io.BytesIO(data), sample_rate=SAMPLE_RATE, channels=channels)
    except audio.AudioError:
        raise Undecodable("does not decode as audio") from None
    if samples.shape[-1] == 0:
        raise Undecodable("holds no sound")
    return samples


def convert(
    match: Match, source: SeedFile, write: Callable[[str, Callable[[Any], None]], None] | None
) -> Result:
    """Decode the seed file as the node's artifact and, with `write`, store it at the node's output;
    Undecodable when it cannot be. Without `write` (a dry run) only decodes."""
    from zray.media import audio
    from zray.media.constants import SAMPLE_RATE

    node = match.node
    output = node.outputs[0]
    if node.kind is Kind.IMAGE:
        picture = _picture(source.data)
        if write:
            write(output, lambda tmp: picture.save(tmp, format="PNG"))
        return ImageResult(path=output, width=picture.width, height=picture.height)
    samples = _sound(source.data, keep_channels=node.kind is Kind.MUSIC)
    if write:
        write(output, lambda tmp: audio.write_wav(tmp, samples, sample_rate=SAMPLE_RATE))
    seconds = samples.shape[-1] / SAMPLE_RATE
    if node.kind is Kind.MUSIC:
        return MusicResult(path=output, seconds=seconds)
    return SpeechResult(path=output, seconds=seconds, words=None, note=f"{node.id}: {NO_TIMINGS}")


@dataclass
class Adopted:
    lines: list[str]
    unmatched: list[str]
    notes: list[str]


def adopt_assets(seed: SeedFolder, prep: Prepared, *, profile: str, dry_run: bool) -> Adopted:
    """Convert and record every matched seed file (for `profile`: its keys are that profile's);
    the record is written once, at the end."""
    matched = match_assets(seed, prep)
    out = Adopted([], list(matched.unmatched), list(matched.current))
    store, record = prep.store, prep.record

    def write(key: str, fill: Callable[[Any], None]) -> None:
        with store.writer(key) as tmp:
            fill(tmp)

    for match in matched.matches:
        try:
            source = seed.read(match.source)
            result = convert(match, source, None if dry_run else write)
        except (UnsafeFile, Undecodable) as exc:
            where = f"{match.source} " if isinstance(exc, Undecodable) else ""
            out.unmatched.append(f"{match.what}: {where}{exc}")
            continue
        except OSError as exc:
            out.unmatched.append(f"{match.what}: cannot read {match.source} ({exc.strerror or exc})")
            continue
        verb = "would adopt" if dry_run else "adopted"
        out.lines.append(f"{match.what}: {verb} {match.source} as {result.path} ({match.node.id})")
        if isinstance(result, SpeechResult):
            out.notes.append(result.note)
            if not dry_run:
                log.info("%s: %s", prep.episode, result.note)
        if dry_run:
            continue
        output = match.node.outputs[0]
        record.record(
            match.node,
            result,
            {output: store.file_record(output)},
            {
                "state": "adopted",
                "source": str(seed.root / match.source),
                "sha256": source.sha256,
                "profile": profile,
            },
        )
    if not dry_run and out.lines:
        record.flush(force=True)
    return out
