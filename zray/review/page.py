"""What the review page shows, as the JSON of `GET /api/episode`: built from the episode's records.

Pure: an opened episode, its review record and its file table in, plain data out (URLs only of
files the table holds). Scene timings come from run.json (the intro's and each padded
narration's frames), so each subtitle cue is shown under the scene it is spoken in.
"""

from __future__ import annotations

from typing import Any

from zray import episode as layout
from zray.engines.base import seed_from
from zray.episode import Episode, RecordError
from zray.review.files import Served, file_url, preview_url
from zray.review.record import ReviewRecord, short_keys, shorts_name, video_keys


def _url(table: dict[str, Served], path: str | None, *, preview: bool = False) -> str | None:
    served = table.get(path) if path else None
    if served is None:
        return None
    return preview_url(served) if preview and served.picture else file_url(served)


def _outputs(episode: Episode, node_id: str) -> list[str]:
    return list((episode.nodes.get(node_id) or {}).get("outputs") or [])


def _result(episode: Episode, node_id: str) -> dict[str, Any]:
    return dict((episode.nodes.get(node_id) or {}).get("result") or {})


def fps_of(episode: Episode) -> int:
    config = ((episode.record.get("last_run") or {}).get("options") or {}).get("config") or {}
    fps = (config.get("video") or {}).get("fps")
    return fps if isinstance(fps, int) and fps > 0 else 24


def scene_spans(episode: Episode, lang: str, labels: list[str]) -> list[tuple[float, float] | None]:
    """Where each scene's narration sits in the language's video, in seconds (None: not known)."""
    fps = fps_of(episode)
    at = float(_result(episode, "intro").get("frames") or 0) / fps if "intro" in episode.nodes else 0.0
    spans: list[tuple[float, float] | None] = []
    for label in labels:
        frames = _result(episode, f"pad:{lang}:{label}").get("frames")
        if not isinstance(frames, int):
            spans.append(None)
            continue
        spans.append((at, at + frames / fps))
        at += frames / fps
    return spans


def _cues(episode: Episode, lang: str) -> list[dict[str, Any]]:
    from zray.media.subtitles import SubtitleError, parse_srt

    srt_path = next(iter(_outputs(episode, layout.subs_node(lang))), None)
    if srt_path is None:
        return []
    try:
        cues = parse_srt(episode.store.read_text(srt_path))
    except (OSError, UnicodeDecodeError, SubtitleError):
        return []
    return [{"start": round(c.start, 3), "end": round(c.end, 3), "text": c.text} for c in cues]


def _stamp(entry: dict[str, Any] | None) -> dict[str, Any] | None:
    return {"by": entry.get("by"), "at": entry.get("at")} if entry else None


def _approval(record: ReviewRecord, name: str, keys: dict[str, str]) -> dict[str, Any]:
    return {"state": record.state(name, keys), **(_stamp(record.approval(name)) or {})}


def episode_view(episode: Episode, record: ReviewRecord, table: dict[str, Served]) -> dict[str, Any]:
    script = episode.script
    labels = layout.scene_labels(script)
    try:
        published = episode.published().entries
        published_error = None
    except RecordError as exc:
        published, published_error = {}, str(exc)

    languages = []
    spans: dict[str, list[tuple[float, float] | None]] = {}
    cues: dict[str, list[dict[str, Any]]] = {}
    for lang in script.languages:
        spans[lang] = scene_spans(episode, lang, labels)
        cues[lang] = _cues(episode, lang)
        video = _outputs(episode, layout.video_node(lang))
        subs = _outputs(episode, layout.subs_node(lang))
        thumbs = _outputs(episode, layout.thumbs_node(lang))
        finished = bool(video) and layout.video_node(lang) in episode.nodes
        variants = [
            {"number": n, "url": _url(table, path), "preview": _url(table, path, preview=True)}
            for n, path in enumerate(thumbs[1:], start=1)
        ]
        chosen = record.thumbnails.get(lang)
        shorts = short_keys(episode, lang)
        entry = published.get(lang) or {}
        languages.append(
            {
                "lang": lang,
                "title": script.title(lang),
                "finished": finished,
                "duration": _result(episode, layout.video_node(lang)).get("duration"),
                "video": _url(table, video[0]) if video else None,
                "vtt": _url(table, subs[1]) if len(subs) > 1 else None,
                "chapters": _url(table, subs[2]) if len(subs) > 2 else None,
                "approval": _approval(record, lang, video_keys(episode, lang))
                if finished
                else {"state": "none"},
                "published": {"video_id": entry.get("video_id"), "at": entry.get("uploaded_at")}
                if entry.get("video_id")
                else None,
                "thumbnail": {
                    "official": _url(table, thumbs[0], preview=True) if thumbs else None,
                    "official_full": _url(table, thumbs[0]) if thumbs else None,
                    "variants": variants,
                    "chosen": (chosen or {}).get("variant", 1),
                    "chosen_by": _stamp(chosen),
                    "current": _official_variant(episode, lang),
                },
                "shorts": [
                    {
                        "node": name,
                        "title": short.title,
                        "url": _url(table, short.path),
                        "duration": short.duration,
                    }
                    for name, short in zip(shorts, episode.shorts(lang), strict=True)
                ],
                "shorts_approval": _approval(record, shorts_name(lang), shorts) if shorts else None,
            }
        )

    scenes = []
    for index, scene in enumerate(script.scenes):
        label = labels[index]
        picture = next(iter(_outputs(episode, layout.node_id("image", label))), None)
        override = record.scenes.get(str(index))
        if override and override.get("scene_id") != str(scene.scene_id):
            override = None  # chosen for a scene that has since moved: the plan ignores it too
        clip_override = record.clips.get(str(index))
        if clip_override and clip_override.get("scene_id") != str(scene.scene_id):
            clip_override = None
        clip = next(iter(_outputs(episode, f"clip:{label}")), None)
        narration = {}
        for lang in script.languages:
            span = spans[lang][index]
            pad = next(iter(_outputs(episode, f"pad:{lang}:{label}")), None)
            narration[lang] = {
                "text": scene.narration(lang),
                "audio": _url(table, pad),
                "seconds": (span[1] - span[0]) if span else None,
                "start": span[0] if span else None,
                # By each cue's middle: its start is rounded to the millisecond, a scene's is not.
                "cues": [c for c in cues[lang] if span and span[0] <= (c["start"] + c["end"]) / 2 < span[1]],
            }
        scenes.append(
            {
                "index": index,
                "scene_id": str(scene.scene_id),
                "label": label,
                "prompt": scene.image_prompt,
                "picture": _url(table, picture),
                "preview": _url(table, picture, preview=True),
                "seed": override["seed"] if override else seed_from(script.code, str(scene.scene_id)),
                "seed_chosen": _stamp(override),
                # A scene of motion generate: its clip, and the seed review chose for it (None: the
                # one derived from the picture's seed, so a new picture is a new clip).
                "clip": {
                    "url": _url(table, clip),
                    "seed": clip_override["seed"] if clip_override else None,
                    "seed_chosen": _stamp(clip_override),
                }
                if clip or clip_override
                else None,
                "narration": narration,
            }
        )

    return {
        "title": script.project_title,
        "code": script.code,
        "identity": episode.identity.to_json(),
        "folder": episode.url,
        "languages": languages,
        "scenes": scenes,
        "published_error": published_error,
        "report": "/report",
        "history": record.history[-20:],
    }


def _official_variant(episode: Episode, lang: str) -> int | None:
    """Which variant the official thumbnail on disk is a copy of (by the hashes run.json recorded)."""
    entry = episode.nodes.get(layout.thumbs_node(lang)) or {}
    outputs, files = list(entry.get("outputs") or []), entry.get("files") or {}
    if not outputs:
        return None
    official = (files.get(outputs[0]) or {}).get("sha256")
    for number, path in enumerate(outputs[1:], start=1):
        if official and (files.get(path) or {}).get("sha256") == official:
            return number
    return None
