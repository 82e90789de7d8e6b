"""Burned-in captions: states on the frames where words start, text inside the box, every glyph drawn."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zray.media.captions import (
    LOWER_THIRD,
    SHORTS_BOX,
    CaptionBox,
    CaptionError,
    CaptionStyle,
    caption_states,
    check_font,
    composite,
    font_covers,
    state_at,
)
from zray.media.subtitles import Cue, scene_cues, time_cues
from zray.media.thumbnail import FONT_PATH
from zray.media.words import WordTiming

FPS = 24
LONG = (1920, 1072)
SHORT = (1080, 1920)
SHORTS_STYLE = CaptionStyle(size=0.045)
DEMO = json.loads(
    (Path(__file__).parents[1] / "inputs" / "scripts" / "demo" / "SAGA_01_Episode_01.json").read_text("utf-8")
)


def spoken(text: str, *, start: float = 0.4, seed: int = 0) -> list[WordTiming]:
    """Word timings as an engine gives them: uneven lengths, a pause after each sentence."""
    rng = np.random.default_rng(seed)
    timings, clock = [], start
    for word in text.split():
        length = 0.06 * len(word) + float(rng.uniform(0.05, 0.2))
        timings.append(WordTiming(word.strip("¿?¡!.,;:«»"), clock, clock + length))
        clock += length + (0.45 if word[-1] in ".?!" else 0.02)
    return timings


def demo_cues(lang: str) -> tuple[list[Cue], list[WordTiming]]:
    """The demo's narration as cues in a video, and the words.json timeline beside them."""
    scenes, words, timeline, clock = [], [], [], 2.0
    for index, scene in enumerate(DEMO["scenes"][:3]):
        text = scene[f"script_{lang}"]
        timings = spoken(text, seed=index)
        length = timings[-1].end + 0.5
        scenes.append((text, clock, clock + length))
        words.append(timings)
        timeline += [t.shifted(clock) for t in timings]
        clock += length
    return scene_cues(scenes, words=words), timeline


@pytest.mark.parametrize(
    ("size", "box", "style"), [(LONG, LOWER_THIRD, None), (SHORT, SHORTS_BOX, SHORTS_STYLE)]
)
def test_captions_change_on_the_frames_where_words_start(size, box, style) -> None:  # type: ignore[no-untyped-def]
    cues, timeline = demo_cues("es")
    states = caption_states(cues, fps=FPS, size=size, box=box, style=style)
    changes = {state.start_frame for state in states}
    starts = [round(word.start * FPS) for word in timeline]
    # Every word's start changes the picture, within one frame, to a state highlighting that word...
    for word, frame in zip(timeline, starts, strict=True):
        assert any(abs(change - frame) <= 1 for change in changes), word
        state = state_at(states, frame)
        assert state is not None and state.highlighted is not None
        assert state.text.split()[state.highlighted].strip("¿?¡!.,;:«»") == word.word
    # ...and nothing else does: no state starts away from a word's start.
    assert all(any(abs(change - frame) <= 1 for frame in starts) for change in changes)
    # States are in order and never overlap; at most two lines each.
    assert all(a.end_frame <= b.start_frame for a, b in itertools.pairwise(states))
    assert all(len(state.text.split("\n")) <= 2 for state in states)
    # Before the first word and in no cue: no caption.
    assert state_at(states, starts[0] - 2) is None


def test_the_spoken_word_is_painted_in_the_highlight_colour() -> None:
    cues = time_cues("Hola mundo lejano.", start=1.0, end=4.0, words=spoken("Hola mundo lejano."))
    style = CaptionStyle(highlight=(255, 0, 0))
    states = caption_states(cues, fps=FPS, size=LONG, style=style)
    assert [s.highlighted for s in states] == [0, 1, 2]
    for state in states:
        overlay = state.overlay
        box = state.page.boxes[state.highlighted]
        inside = overlay.pixels[
            box[1] - overlay.y : box[3] - overlay.y, box[0] - overlay.x : box[2] - overlay.x
        ]
        solid = inside[inside[..., 3] == 255]
        reds = solid[(solid[:, 0] > 200) & (solid[:, 1] < 60)]
        whites = overlay.pixels[(overlay.pixels[..., 3] == 255) & (overlay.pixels[..., 1] > 200)]
        assert len(reds) > 50  # the word's glyphs are red...
        assert len(whites) > 100  # ...the others white
        # High contrast: a black stroke around the letters.
        assert ((overlay.pixels[..., 3] == 255) & (overlay.pixels[..., :3].max(axis=-1) < 30)).sum() > 200


@settings(max_examples=25, deadline=None)
@given(
    words=st.lists(
        st.text(alphabet="abcdefghijklmnopqrstuvwxyzÁÉÍÓÚÀÈÒÇàèòçñÑ¿?¡!.,", min_size=1, max_size=14),
        min_size=1,
        max_size=40,
    ),
    shorts=st.booleans(),
    backdrop=st.sampled_from([0.0, 0.6]),
)
def test_text_stays_inside_the_box(words: list[str], shorts: bool, backdrop: float) -> None:
    text = " ".join(words)
    size, box = (SHORT, SHORTS_BOX) if shorts else (LONG, LOWER_THIRD)
    style = CaptionStyle(size=0.045 if shorts else 0.06, backdrop=backdrop)
    cues = time_cues(text, start=0.0, end=0.5 * len(words) + 1, words=spoken(text))
    left, top, right, bottom = box.pixels(size)
    for state in caption_states(cues, fps=FPS, size=size, box=box, style=style):
        overlay = state.overlay
        ys, xs = np.nonzero(overlay.pixels[..., 3])
        assert xs.size
        assert left <= overlay.x + xs.min() and overlay.x + xs.max() < right, state.text
        assert top <= overlay.y + ys.min() and overlay.y + ys.max() < bottom, state.text
        assert len(state.text.split("\n")) <= 2


def test_a_long_cue_is_paged_into_screens_that_follow_the_words() -> None:
    text = DEMO["scenes"][5]["script_es"]
    cues = time_cues(text, start=0.0, end=30.0, words=spoken(text), max_chars=84, max_lines=2)
    states = caption_states(cues, fps=FPS, size=SHORT, box=SHORTS_BOX, style=SHORTS_STYLE)
    pages = list(dict.fromkeys(state.text for state in states))
    assert len(pages) > len(cues)  # the Shorts box holds fewer words than a subtitle cue
    assert " ".join(pages).split() == text.split()


def test_every_glyph_of_the_demos_languages_renders() -> None:
    letters = " ".join(
        str(value)
        for scene in DEMO["scenes"]
        for key, value in scene.items()
        if key.startswith(("script_", "chapter_"))
    )
    extra = "ÀÈÉÍÏÒÓÚÜÇàèéíïòóúüçÑñ¿¡«»·—… l·l NO SERIA VERD · ÀÉÍÒÓÚÇ"
    assert font_covers(letters + extra) == []
    check_font(letters + extra)
    # Each renders as itself, not as the font's missing-glyph box: a real overlay for each letter.
    cues = [Cue(float(k), k + 1.0, character) for k, character in enumerate("ÀÉÍÒÓÚÇÑ¿¡·")]
    shown = caption_states(cues, fps=FPS, size=LONG)
    assert len({state.overlay.pixels.tobytes() for state in shown}) == len(cues)


def test_a_language_the_font_cannot_write_is_refused_naming_the_setting() -> None:
    assert font_covers("नमस्ते दुनिया") == ["न", "म", "स", "्", "त", "े", "द", "ु", "ि", "य", "ा"]
    assert font_covers("Olá, 世界") == ["世", "界"]
    with pytest.raises(CaptionError) as caught:
        check_font("Hola नमस्ते", FONT_PATH, what="the hi narration")
    message = str(caught.value)
    assert message.startswith("captions.font Roboto-Black.ttf has no glyph for न म स")
    assert "the hi narration" in message and "\n" not in message


def test_a_cue_without_word_timings_is_one_state_without_a_highlight() -> None:
    states = caption_states([Cue(1.0, 2.5, "Sin tiempos\npor palabra")], fps=FPS, size=LONG)
    assert [(s.start_frame, s.end_frame, s.highlighted) for s in states] == [(24, 60, None)]
    assert states[0].text == "Sin tiempos por palabra"


def test_composite_lays_the_overlay_over_the_frame_exactly() -> None:
    cues = time_cues("Hola mundo.", start=0.0, end=2.0, words=spoken("Hola mundo."))
    overlay = caption_states(cues, fps=FPS, size=LONG)[0].overlay
    frame = np.full((LONG[1], LONG[0], 3), 128, dtype=np.uint8)
    out = composite(frame, overlay)
    assert (frame == 128).all()  # the input is untouched
    h, w = overlay.pixels.shape[:2]
    region = out[overlay.y : overlay.y + h, overlay.x : overlay.x + w].astype(int)
    alpha = overlay.pixels[..., 3:4].astype(int)
    expected = overlay.pixels[..., :3].astype(int) + 128 * (255 - alpha) / 255
    assert np.abs(region - expected).max() <= 1
    outside = np.ones(out.shape[:2], bool)
    outside[overlay.y : overlay.y + h, overlay.x : overlay.x + w] = False
    assert (out[outside] == 128).all()


def test_bad_boxes_and_styles_are_refused_in_one_line() -> None:
    with pytest.raises(CaptionError, match=r"x 0\.9-0\.2"):
        CaptionBox(left=0.9, top=0.5, right=0.2, bottom=0.8)
    with pytest.raises(CaptionError, match="highlight"):
        CaptionStyle(highlight=(300, 0, 0))
    with pytest.raises(CaptionError, match="too small"):
        caption_states(
            [Cue(0.0, 1.0, "Supercalifragilístico")],
            fps=FPS,
            size=(64, 64),
            box=CaptionBox(0.4, 0.4, 0.5, 0.5),
        )
