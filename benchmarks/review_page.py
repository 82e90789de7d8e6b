"""Load time of the review page on a generated 40-scene episode, in headless Chromium.

    python benchmarks/review_page.py [--scenes 40] [--workdir DIR] [--out benchmarks/results/review_page.json]

The episode (draft profile, full-size 1920x1072 pictures, two languages) is made once in the
work folder and reused. Each measurement starts `zray review` afresh, as a user would, and opens
its URL in a new browser context (an empty cache):

- `api_ms`: `GET /api/episode` alone (what the page asks for first);
- `first_render_ms`: from navigation start (the browser's own clock) to the page rendered from
  the API (the `zray-rendered` performance mark);
- `pictures_ms`: from navigation start until the last picture of the page arrived (every scene
  preview and thumbnail variant, loaded at once as if the whole page were scrolled through);
- `with_playwright_ms`: the same seen from the driving script (Playwright's round trips added);
- `picture_bytes`: what the pictures cost on the wire, against the full PNGs they stand for.

Cold is the first load after the server starts (previews made while the page asks for them);
warm is a second browser context against the same server.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

SENTENCES = [
    "La luz de una estrella roja llega débil a este bosque.",
    "Las hojas son casi negras para no perder ni un fotón.",
    "El viento mueve las ramas despacio durante la larga tarde.",
]


def script(scenes: int) -> dict:
    return {
        "project_title": "Benchmark de revisión",
        "saga": 1,
        "episode": 40,
        "global_music_prompt": "soft pads",
        "scenes": [
            {
                "scene_id": i,
                "image_prompt": f"Scene {i}: an alien forest under a red sun, variation {i}",
                "script_es": SENTENCES[i % 3],
                "script_ca": "La llum d'una estrella vermella arriba feble a aquest bosc.",
                "chapter_es": f"Parte {i}" if i % 10 == 0 else "",
            }
            for i in range(scenes)
        ],
        "seo": {
            "es": {
                "variants": [{"title": "Uno", "thumb_text": "UNO"}, {"title": "Dos", "thumb_text": "DOS"}]
            },
            "ca": {"variants": [{"title": "U", "thumb_text": "U"}]},
        },
    }


def make_episode(workdir: Path, scenes: int) -> tuple[Path, int]:
    from zray.config import load_config
    from zray.pipeline.run import RunRequest, run_episode

    folder = workdir / "scripts" / "bench"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"SAGA_01_Episode_{scenes:02d}.json"
    path.write_text(json.dumps(script(scenes), ensure_ascii=False), encoding="utf-8")
    config = load_config(
        None,
        output=str(workdir / "out"),
        profile="draft",
        quiet=True,
        executor="in-process",
        video={"preset": "fast"},
        audio={"music_seconds": 20.0},
    )
    report = run_episode(RunRequest(script=path), config)
    assert report.ok, report.failed
    return workdir / "out" / "bench" / path.stem, report.built


def start_server(folder: Path) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "zray", "review", str(folder), "--no-browser"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    return process, process.stdout.readline().strip()


# As if the reader scrolled through the whole page at once: every lazy picture loads as soon as
# the page creates it (in the page, so no round trip of the driving script is counted).
EAGER = """new MutationObserver(() => document.querySelectorAll('img[loading=lazy]').forEach(i => {
    i.loading = 'eager';
})).observe(document, {childList: true, subtree: true});"""
# When the last picture arrived, on the page's own clock (navigation start = 0).
LAST_PICTURE = """Math.max(...performance.getEntriesByType('resource')
    .filter(e => e.name.includes('/previews/')).map(e => e.responseEnd))"""


def measure(browser, url: str) -> dict[str, float]:
    from review_episode import LOAD_ALL_IMAGES

    context = browser.new_context(viewport={"width": 1366, "height": 800})
    context.add_init_script(EAGER)
    page = context.new_page()
    sizes: list[int] = []
    page.on(
        "response",
        lambda r: (
            sizes.append(int(r.headers.get("content-length", "0")))
            if "/previews/" in r.url or ("/files/" in r.url and r.url.split("?")[0].endswith(".png"))
            else None
        ),
    )
    start = time.perf_counter()
    page.goto(url)
    page.wait_for_selector("body[data-loaded]", timeout=0)
    loaded = page.evaluate(LOAD_ALL_IMAGES)  # the page's CSP forbids eval: no wait_for_function
    wall = time.perf_counter() - start
    rendered = page.evaluate("performance.getEntriesByName('zray-rendered')[0].startTime")
    last = page.evaluate(LAST_PICTURE)
    assert all(image["width"] > 0 for image in loaded), loaded
    context.close()
    return {
        "first_render_ms": round(rendered, 1),
        "pictures_ms": round(last, 1),
        "with_playwright_ms": round(wall * 1000, 1),
        "pictures": len(loaded),
        "picture_bytes": sum(sizes),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=40)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/zray-bench-review"))
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/review_page.json")
    args = parser.parse_args()
    from review_episode import CHROMIUM, CHROMIUM_ARGS

    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    from playwright.sync_api import sync_playwright

    started = time.perf_counter()
    folder, built = make_episode(args.workdir, args.scenes)
    made = time.perf_counter() - started
    full_png = sum(p.stat().st_size for p in (folder / "assets/common").glob("img_*.png"))
    full_png += sum(p.stat().st_size for p in (folder / "assets/thumbnails").glob("thumbnail_*_v*.png"))

    process, url = start_server(folder)
    try:
        base, token = url.split("/?", 1)[0], url.split("token=", 1)[1]
        request = urllib.request.Request(base + "/api/episode", headers={"X-Zray-Token": token})
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            cold = measure(browser, url)
            warm = measure(browser, url)
            browser.close()
        api = []
        for _ in range(5):
            t = time.perf_counter()
            with urllib.request.urlopen(request) as response:
                response.read()
            api.append((time.perf_counter() - t) * 1000)
    finally:
        process.terminate()
        process.wait()

    result = {
        "scenes": args.scenes,
        "languages": 2,
        "picture_size": "1920x1072",
        "episode_seconds": round(made, 1),
        "episode_steps_built": built,  # 0: reused from --workdir
        "api_ms_median": round(sorted(api)[len(api) // 2], 1),
        "cold": cold,
        "warm": warm,
        "full_png_bytes": full_png,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
        "command": f"python benchmarks/review_page.py --scenes {args.scenes}",
    }
    print(json.dumps(result, indent=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
