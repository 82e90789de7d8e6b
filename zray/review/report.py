"""The run report: `<episode>/report.html`, one self-contained file made from run.json alone.

It opens from disk with no network (styles inline, charts as inline SVG, the scene strip as small
embedded JPEGs; a Content-Security-Policy forbids anything else) and says what the last run did:
engines and model identities, seconds per stage, every step on a timeline by the actor or task
that ran it, cache hits, warnings and notes, loudness and true peak per language, the scenes.

Same record in, same bytes out: `write_report` writes only when the content changes.
"""

from __future__ import annotations

import base64
import html
import json
import logging
from collections.abc import Mapping
from typing import Any

from zray import episode as layout
from zray.episode import Episode, open_episode
from zray.store import Store

log = logging.getLogger("zray")

STAGE_COLOURS = {
    "images": "#4e79a7",
    "narration": "#f28e2b",
    "music": "#59a14f",
    "thumbnails": "#b07aa1",
    "assembly": "#e15759",
    "shorts": "#76b7b2",
    "other": "#9c9c9c",
}
_STAGE_OF = {
    "image": "images",
    "tts": "narration",
    "pad": "narration",
    "music": "music",
    "thumb_base": "thumbnails",
    "thumbs": "thumbnails",
    "segment": "assembly",
    "motion": "assembly",
    "tail": "assembly",
    "intro": "assembly",
    "subs": "assembly",
    "video": "assembly",
    "short": "shorts",
}
STRIP_WIDTH = 192
_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


def stage_of(node_id: str) -> str:
    return _STAGE_OF.get(node_id.split(":", 1)[0], "other")


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _seconds(value: Any) -> str:
    return f"{value:.2f} s" if isinstance(value, int | float) else "—"


def _clock(seconds: Any) -> str:
    if not isinstance(seconds, int | float):
        return "—"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}:{secs:02d}"


def _size(value: Any) -> str:
    return f"{value / 1e6:.1f} MB" if isinstance(value, int | float) else "—"


def _db(value: Any, unit: str) -> str:
    return f"{value:+.1f} {unit}" if isinstance(value, int | float) else "not measured"


# --- sections --------------------------------------------------------------------------------------


def _summary(episode: Episode) -> str:
    record, run = episode.record, episode.record.get("last_run") or {}
    cache = record.get("cache") or {}
    failed = run.get("failed") or record.get("failed") or {}
    rows = [
        ("Episode", f"{episode.identity} · {episode.script.project_title}"),
        ("Script", record.get("script")),
        ("Command", run.get("command")),
        ("zray", run.get("version") or record.get("zray")),
        ("Profile / executor", f"{run.get('profile') or record.get('profile')} / {run.get('executor')}"),
        ("Finished", record.get("finished")),
        ("Wall time", _seconds(run.get("wall_seconds"))),
        ("Steps", f"{cache.get('built', 0)} run, {cache.get('hits', 0)} cached (cache hits)"),
        ("Result", "failed: " + "; ".join(f"{k}: {v}" for k, v in failed.items()) if failed else "ok"),
    ]
    body = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows)
    return f'<section id="summary"><h2>Run</h2><table class="kv">{body}</table></section>'


def _languages(episode: Episode) -> str:
    run = episode.record.get("last_run") or {}
    audio = ((run.get("options") or {}).get("config") or {}).get("audio") or {}
    target = audio.get("target_lufs")
    rows = []
    for lang in episode.script.languages:
        entry = episode.nodes.get(layout.video_node(lang))
        if entry is None:
            rows.append(f"<tr><td>{_e(lang)}</td><td colspan='6'>no finished video</td></tr>")
            continue
        result = entry.get("result") or {}
        path = (entry.get("outputs") or [""])[0]
        rows.append(
            "<tr>"
            f"<td>{_e(lang)}</td><td>{_e(episode.script.title(lang))}<br><small>{_e(path)}</small></td>"
            f"<td>{_clock(result.get('duration'))}</td><td>{_size(result.get('size'))}</td>"
            f"<td>{_e(f'{target:g} LUFS' if isinstance(target, int | float) else '—')}</td>"
            f"<td>{_db(result.get('gain_db'), 'dB')}</td>"
            f"<td>{_db(result.get('true_peak_dbtp'), 'dBTP')}</td>"
            "</tr>"
        )
    shorts = [
        (node_id, entry)
        for node_id, entry in sorted(episode.nodes.items())
        if node_id.startswith("short:") and entry.get("outputs")
    ]
    for node_id, entry in shorts:
        result = entry.get("result") or {}
        rows.append(
            f"<tr><td>{_e(node_id)}</td><td><small>{_e(entry['outputs'][0])}</small></td>"
            f"<td>{_clock(result.get('duration'))}</td><td>{_size(result.get('size'))}</td>"
            f"<td>—</td><td>{_db(result.get('gain_db'), 'dB')}</td>"
            f"<td>{_db(result.get('true_peak_dbtp'), 'dBTP')}</td></tr>"
        )
    head = (
        "<tr><th>Language</th><th>Title / file</th><th>Duration</th><th>Size</th>"
        "<th>Loudness target</th><th>Gain</th><th>True peak</th></tr>"
    )
    return f'<section id="languages"><h2>Videos</h2><table>{head}{"".join(rows)}</table></section>'


def _engines(episode: Episode) -> str:
    engines = episode.record.get("engines") or {}
    rows = []
    for name, identity in sorted(engines.items()):
        identity = identity if isinstance(identity, Mapping) else {"value": identity}
        rest = {k: v for k, v in identity.items() if k not in ("engine", "model", "version")}
        rows.append(
            f"<tr><td>{_e(name)}</td><td>{_e(identity.get('engine'))}</td>"
            f"<td>{_e(identity.get('model') or '—')}</td><td>{_e(identity.get('version'))}</td>"
            f"<td><code>{_e(json.dumps(rest, sort_keys=True, ensure_ascii=False))}</code></td></tr>"
        )
    head = "<tr><th>Role</th><th>Engine</th><th>Model</th><th>Version</th><th>Identity</th></tr>"
    return f'<section id="engines"><h2>Engines and models</h2><table>{head}{"".join(rows)}</table></section>'


def _stage_chart(run: Mapping[str, Any]) -> str:
    seconds = {
        k: v for k, v in (run.get("step_seconds_by_stage") or {}).items() if isinstance(v, int | float)
    }
    if not seconds:
        return '<section id="stages"><h2>Stage times</h2><p>No step ran.</p></section>'
    top = max(seconds.values()) or 1.0
    bar_width, row = 520, 22
    bars = []
    for i, (stage, value) in enumerate(sorted(seconds.items(), key=lambda kv: -kv[1])):
        width = max(1.0, bar_width * value / top)
        y = i * row
        colour = STAGE_COLOURS.get(stage, STAGE_COLOURS["other"])
        bars.append(
            f'<text x="0" y="{y + 15}">{_e(stage)}</text>'
            f'<rect x="100" y="{y + 3}" width="{width:.1f}" height="16" fill="{colour}">'
            f"<title>{_e(stage)}: {value:.2f} s summed over its steps</title></rect>"
            f'<text x="{106 + width:.1f}" y="{y + 15}">{value:.2f} s</text>'
        )
    height = row * len(seconds)
    svg = (
        f'<svg class="chart" width="720" height="{height}" viewBox="0 0 720 {height}" '
        f'xmlns="http://www.w3.org/2000/svg" role="img" aria-label="seconds per stage">{"".join(bars)}</svg>'
    )
    return (
        '<section id="stages"><h2>Stage times</h2>'
        f"<p>Seconds summed over the steps of each stage; the run took {_seconds(run.get('wall_seconds'))} "
        f"of wall time.</p>{svg}</section>"
    )


def _lanes(steps: Mapping[str, Mapping[str, Any]]) -> list[tuple[str, list[tuple[str, Mapping[str, Any]]]]]:
    """Timed steps grouped by where they ran (worker on node), overlapping ones on separate rows."""
    groups: dict[str, list[tuple[str, Mapping[str, Any]]]] = {}
    for node_id, info in steps.items():
        if isinstance(info.get("started"), int | float) and isinstance(info.get("ended"), int | float):
            where = str(info.get("worker") or info.get("executor") or "step")
            if info.get("node"):
                where += f" @ {str(info['node'])[:12]}"
            groups.setdefault(where, []).append((node_id, info))
    lanes = []
    for where in sorted(groups):
        rows: list[list[tuple[str, Mapping[str, Any]]]] = []
        for item in sorted(groups[where], key=lambda s: (s[1]["started"], s[0])):
            for row in rows:
                if row[-1][1]["ended"] <= item[1]["started"]:
                    row.append(item)
                    break
            else:
                rows.append([item])
        lanes += [(where if n == 0 else "", row) for n, row in enumerate(rows)]
    return lanes


def _timeline(run: Mapping[str, Any]) -> str:
    steps = {k: v for k, v in (run.get("steps") or {}).items() if isinstance(v, Mapping)}
    lanes = _lanes(steps)
    cached = sorted(node_id for node_id, info in steps.items() if info.get("state") == "cached")
    states: dict[str, int] = {}
    for info in steps.values():
        states[str(info.get("state"))] = states.get(str(info.get("state")), 0) + 1
    counts = ", ".join(f"{n} {state}" for state, n in sorted(states.items()))
    if not lanes:
        chart = "<p>No step ran in the last run: everything came from the cache.</p>"
    else:
        start = min(info["started"] for _, row in lanes for _, info in row)
        end = max(info["ended"] for _, row in lanes for _, info in row)
        span = max(end - start, 1e-6)
        left, plot, row_h = 190, 760, 16
        parts = []
        for i, (label, row) in enumerate(lanes):
            y = i * row_h
            if label:
                parts.append(f'<text x="0" y="{y + 12}" class="lane">{_e(label)}</text>')
            for node_id, info in row:
                x = left + plot * (info["started"] - start) / span
                width = max(1.5, plot * (info["ended"] - info["started"]) / span)
                stage = stage_of(node_id)
                state = str(info.get("state", "built"))
                extra = " stroke='#000' stroke-width='1.5'" if state == "failed" else ""
                tip = (
                    f"{node_id}: {state}, {info.get('seconds', info['ended'] - info['started']):.2f} s, "
                    f"{info.get('worker', '')} on {info.get('node', '')}"
                    + (f", GPU {info['gpu']}" if info.get("gpu") else "")
                )
                parts.append(
                    f'<rect x="{x:.1f}" y="{y + 2}" width="{width:.1f}" height="{row_h - 4}" '
                    f'fill="{STAGE_COLOURS[stage]}"{extra}><title>{_e(tip)}</title></rect>'
                )
        height = row_h * len(lanes) + 20
        parts.append(
            f'<text x="{left}" y="{height - 4}" class="axis">0 s</text>'
            f'<text x="{left + plot}" y="{height - 4}" class="axis" text-anchor="end">{span:.1f} s</text>'
        )
        legend = "".join(
            f'<span class="key" style="background:{colour}"></span>{_e(stage)} '
            for stage, colour in STAGE_COLOURS.items()
            if stage != "other"
        )
        chart = (
            f'<svg class="chart" width="{left + plot + 10}" height="{height}" '
            f'viewBox="0 0 {left + plot + 10} {height}" xmlns="http://www.w3.org/2000/svg" role="img" '
            f'aria-label="steps on a timeline">{"".join(parts)}</svg><p class="legend">{legend}</p>'
        )
    rows = "".join(
        f"<tr class='{_e(info.get('state'))}'><td>{_e(node_id)}</td><td>{_e(stage_of(node_id))}</td>"
        f"<td>{_e(info.get('state'))}</td><td>{_seconds(info.get('seconds'))}</td>"
        f"<td>{_e(info.get('worker') or info.get('executor') or '')}</td><td>{_e(info.get('node') or '')}</td>"
        f"<td>{_e(info.get('gpu') or '')}</td><td>{_e(info.get('error') or '')}</td></tr>"
        for node_id, info in steps.items()
    )
    table = (
        f"<details><summary>All {len(steps)} steps ({_e(counts)})</summary><table>"
        "<tr><th>Node</th><th>Stage</th><th>State</th><th>Seconds</th><th>Actor or task</th>"
        f"<th>Ray node</th><th>GPU</th><th>Error</th></tr>{rows}</table></details>"
    )
    return (
        '<section id="timeline"><h2>Steps</h2>'
        f"<p>{len(cached)} of {len(steps)} steps came from the cache; each step that ran is a bar on the row "
        f"of the actor or task that ran it (hover for its node).</p>{chart}{table}</section>"
    )


def _messages(run: Mapping[str, Any]) -> str:
    warnings, notes = list(run.get("warnings") or []), list(run.get("notes") or [])
    if not warnings and not notes:
        return '<section id="messages"><h2>Warnings and notes</h2><p>None.</p></section>'
    items = "".join(f'<li class="warning">{_e(w)}</li>' for w in warnings)
    items += "".join(f'<li class="note">{_e(n)}</li>' for n in notes)
    return f'<section id="messages"><h2>Warnings and notes</h2><ul>{items}</ul></section>'


def scene_pictures(episode: Episode) -> list[tuple[int, Any, str | None]]:
    """(index, scene, picture path or None) for every scene of the script as run."""
    labels = layout.scene_labels(episode.script)
    out = []
    for index, scene in enumerate(episode.script.scenes):
        entry = episode.nodes.get(layout.node_id("image", labels[index]))
        outputs = (entry or {}).get("outputs") or []
        out.append((index, scene, outputs[0] if outputs else None))
    return out


def _strip(episode: Episode) -> str:
    from zray.review.preview import preview_jpeg

    cards = []
    for index, scene, path in scene_pictures(episode):
        picture = '<div class="missing">no picture</div>'
        if path is not None:
            try:
                data = preview_jpeg(episode.store.read_bytes(path), width=STRIP_WIDTH)
                picture = (
                    f'<img alt="scene {index + 1}" width="{STRIP_WIDTH}" '
                    f'src="data:image/jpeg;base64,{base64.b64encode(data).decode()}">'
                )
            except (OSError, ValueError) as exc:  # a missing or damaged picture: say so, go on
                picture = f'<div class="missing">{_e(path)}: {_e(exc)}</div>'
        prompt = str(scene.image_prompt)
        short = prompt if len(prompt) <= 140 else prompt[:137] + "…"
        cards.append(
            f"<figure>{picture}<figcaption><b>{index + 1}</b> · {_e(scene.scene_id)}"
            f'<br><span title="{_e(prompt)}">{_e(short)}</span></figcaption></figure>'
        )
    return f'<section id="scenes"><h2>Scenes</h2><div class="strip">{"".join(cards)}</div></section>'


_STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1100px;
padding:16px 20px;color:#1d1d1f;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:26px 0 8px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;width:100%;margin:4px 0}td,th{border-bottom:1px solid #eee;padding:3px 6px;
text-align:left;vertical-align:top}th{font-weight:600;background:#fafafa}table.kv th{width:170px}
code{font-size:11px;word-break:break-all}.chart{max-width:100%;height:auto;font:11px system-ui,sans-serif}
.chart .lane{fill:#333}.chart .axis{fill:#777}.legend{font-size:12px}.key{display:inline-block;width:10px;
height:10px;margin:0 3px 0 10px}.strip{display:flex;flex-wrap:wrap;gap:10px}figure{margin:0;width:192px}
figure img{display:block;border-radius:4px;background:#eee}figcaption{font-size:12px;color:#444}
.missing{width:192px;height:107px;background:#eee;font-size:11px;overflow:hidden}
li.warning{color:#9a4a00}tr.failed td{color:#b00020}tr.cached td{color:#666}
"""


def render_report(episode: Episode) -> str:
    """The report of the episode's last run, as one HTML document."""
    run = episode.record.get("last_run") or {}
    title = f"{episode.identity.code} {episode.script.project_title}: run report"
    body = "".join(
        [
            f"<h1>{_e(title)}</h1>",
            _summary(episode),
            _languages(episode),
            _engines(episode),
            _stage_chart(run),
            _timeline(run),
            _messages(run),
            _strip(episode),
        ]
    )
    return (
        "<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        "<meta name='viewport' content='width=device-width,initial-scale=1'>"
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>{body}</body></html>\n"
    )


def write_report(store: Store | str) -> bool:
    """Write `report.html` into the episode folder from its run.json; True if it was written,
    False when the file already held exactly this report."""
    episode = open_episode(store)
    text = render_report(episode)
    try:
        if episode.store.exists(layout.REPORT_FILE) and episode.store.read_text(layout.REPORT_FILE) == text:
            return False
    except (OSError, UnicodeDecodeError):
        pass  # unreadable: write it again
    episode.store.write_text(layout.REPORT_FILE, text)
    return True
