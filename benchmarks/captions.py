"""Benchmark: what burned-in captions cost before the encoder, for a 4-minute narration.

    python benchmarks/captions.py                  # the demo's Spanish narration, repeated to 4 minutes
    python benchmarks/captions.py --minutes 1

Times the three parts the encoder pays for, on one core: laying out every cue (`caption_states`),
drawing each caption state's overlay once (a page's glyphs once, then one word repainted per state),
and compositing an overlay on a frame, at 1920x1072 (lower third) and 1080x1920 (the Shorts box).
Word timings are synthetic (about 2.6 words a second), as an engine would give them.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from zray.media.captions import LOWER_THIRD, SHORTS_BOX, CaptionStyle, caption_states, composite
from zray.media.subtitles import scene_cues
from zray.media.words import WordTiming

DEMO = Path(__file__).parents[1] / "inputs" / "scripts" / "demo" / "SAGA_01_Episode_01.json"
FPS = 24


def narration(minutes: float) -> tuple[list[tuple[str, float, float]], list[list[WordTiming]]]:
    scenes_in = [scene["script_es"] for scene in json.loads(DEMO.read_text("utf-8"))["scenes"]]
    scenes, words, clock, index = [], [], 0.0, 0
    while clock < minutes * 60:
        text = scenes_in[index % len(scenes_in)]
        timings, at = [], 0.3
        for word in text.split():
            length = 0.05 * len(word) + 0.12
            timings.append(WordTiming(word, at, at + length))
            at += length + (0.35 if word[-1] in ".?!" else 0.03)
        scenes.append((text, clock, clock + at + 0.5))
        words.append(timings)
        clock += at + 0.5
        index += 1
    return scenes, words


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=4.0)
    args = parser.parse_args()
    scenes, words = narration(args.minutes)
    started = time.perf_counter()
    cues = scene_cues(scenes, words=words)
    cue_seconds = time.perf_counter() - started
    total_words = sum(len(w) for w in words)
    print(f"{len(scenes)} scenes, {total_words} words, {len(cues)} cues in {cue_seconds:.2f} s (subtitles)")
    for name, size, box, style in (
        ("long 1920x1072", (1920, 1072), LOWER_THIRD, CaptionStyle()),
        ("Shorts 1080x1920", (1080, 1920), SHORTS_BOX, CaptionStyle(size=0.045)),
    ):
        started = time.perf_counter()
        states = caption_states(cues, fps=FPS, size=size, box=box, style=style)
        layout = time.perf_counter() - started
        started = time.perf_counter()
        overlays = [state.overlay for state in states]
        drawing = time.perf_counter() - started
        frame = np.full((size[1], size[0], 3), 96, dtype=np.uint8)
        # Each overlay goes on every frame of its state, as the encoder lays it (in its own buffer).
        started = time.perf_counter()
        covered = 0
        for state, overlay in zip(states, overlays, strict=True):
            for _ in range(state.end_frame - state.start_frame):
                composite(frame, overlay, in_place=True)
                covered += 1
        compositing = time.perf_counter() - started
        pages = len({id(state.page) for state in states})
        print(
            f"{name}: {len(states)} states on {pages} pages; layout {layout:.2f} s, overlays {drawing:.2f} s "
            f"({1000 * drawing / len(states):.2f} ms a state), composite {1000 * compositing / covered:.2f} ms a "
            f"captioned frame ({compositing:.1f} s for {covered} frames)"
        )


if __name__ == "__main__":
    main()
