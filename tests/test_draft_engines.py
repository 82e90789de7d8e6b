"""The draft profile's engines: storyboard cards, espeak-ng narration and the ambient music bed."""

from __future__ import annotations

import itertools
import json
import math
import pickle
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from zray.engines.ambient import AmbientMusicEngine, AmbientSettings
from zray.engines.base import (
    EngineError,
    ImageEngine,
    MusicEngine,
    Synthesis,
    TTSEngine,
    WordTiming,
    check_engine_class,
    seed_from,
)
from zray.engines.espeak import EspeakSettings, EspeakTTSEngine
from zray.engines.storyboard import SHORT_ASPECT, StoryboardImageEngine, safe_area

# --- base -------------------------------------------------------------------------------------------


def test_seed_from_is_a_stable_32_bit_value_not_pythons_salted_hash() -> None:
    # A fixed value: Python's hash() of a str changes from process to process.
    assert seed_from("scene", "3") == 2316820113
    assert 0 <= seed_from("anything") < 2**32
    assert seed_from("ab", "c") != seed_from("a", "bc")
    assert seed_from() != seed_from("")


def test_engines_satisfy_their_protocols() -> None:
    assert isinstance(StoryboardImageEngine(), ImageEngine)
    assert isinstance(EspeakTTSEngine(), TTSEngine)
    assert isinstance(AmbientMusicEngine(), MusicEngine)
    for cls, role in (
        (StoryboardImageEngine, "image"),
        (EspeakTTSEngine, "tts"),
        (AmbientMusicEngine, "music"),
    ):
        assert check_engine_class(cls, role) == []
        assert cls.role == role and not cls.uses_gpu


def test_the_draft_identities_are_pinned() -> None:
    """The cache keys of every draft image, narration and music bed hash these dicts: an upgrade that
    changed them would remake every studio's draft work. Package versions are part of them on
    purpose (Pillow draws the cards, espeakng-loader ships the voices)."""
    import importlib.metadata

    import PIL

    assert StoryboardImageEngine().identity() == {
        "engine": "storyboard",
        "version": "2",
        "model": None,
        "font": "pillow-default",
        "pillow": PIL.__version__,
    }
    espeak = {
        "engine": "espeak-ng",
        "version": "1",
        "model": None,
        "espeakng_loader": importlib.metadata.version("espeakng-loader"),
        "rate": 165,
    }
    assert EspeakTTSEngine().identity() == {**espeak, "voices": {"en": "en-us"}}
    for lang, voice in (("es", "es"), ("ca", "ca"), ("en", "en-us")):
        assert EspeakTTSEngine().identity_for(lang) == {**espeak, "voices": {lang: voice}}
    assert EspeakTTSEngine(EspeakSettings(voices={"es": "es-419"})).identity_for("es")["voices"] == {
        "es": "es-419"
    }
    assert AmbientMusicEngine().identity() == {
        "engine": "ambient",
        "version": "1",
        "model": None,
        "sample_rate": 48000,
    }
    assert AmbientMusicEngine().identity_for("any prompt") == AmbientMusicEngine().identity()


@pytest.mark.parametrize("engine", [StoryboardImageEngine(), EspeakTTSEngine(), AmbientMusicEngine()])
def test_identity_is_json_and_names_engine_and_version(engine: ImageEngine | TTSEngine | MusicEngine) -> None:
    identity = engine.identity()
    assert json.loads(json.dumps(identity)) == identity
    assert identity["engine"] and identity["version"]
    assert "model" in identity
    engine.load()
    engine.load()  # idempotent
    assert engine.identity() == identity
    # Ray ships engines to workers by pickling them, loaded or not.
    assert pickle.loads(pickle.dumps(engine)).identity() == identity


# --- storyboard -------------------------------------------------------------------------------------


def _pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image).astype(np.int16)


@pytest.mark.parametrize("size", [(1920, 1072), (1080, 1920), (333, 97), (16, 16)])
def test_storyboard_makes_an_rgb_card_of_any_size(size: tuple[int, int]) -> None:
    image = StoryboardImageEngine().generate("A lighthouse at dawn", width=size[0], height=size[1], seed=1)
    assert image.mode == "RGB"
    assert image.size == size


def test_storyboard_is_byte_identical_for_the_same_prompt_and_seed() -> None:
    first = StoryboardImageEngine().generate(
        "A market at noon", width=640, height=360, seed=5, label="Scene 2"
    )
    second = StoryboardImageEngine().generate(
        "A market at noon", width=640, height=360, seed=5, label="Scene 2"
    )
    assert first.tobytes() == second.tobytes()
    other_seed = StoryboardImageEngine().generate(
        "A market at noon", width=640, height=360, seed=6, label="Scene 2"
    )
    assert other_seed.tobytes() != first.tobytes()


def test_storyboard_different_prompts_look_different() -> None:
    engine = StoryboardImageEngine()
    prompts = [
        "A lighthouse on a cliff at dawn",
        "A lighthouse on a cliff at dusk",
        "Un mercado medieval lleno de gente",
        "An astronaut floating above the Earth",
        "Scene 1",
        "Scene 2",
        "a",
        "b",
    ]
    images = [_pixels(engine.generate(p, width=320, height=180, seed=1, label="Scene 1")) for p in prompts]
    differences = [np.abs(a - b).mean() for a, b in itertools.combinations(images, 2)]
    assert min(differences) > 10  # out of 255, every pair
    assert np.mean(differences) > 30


def test_storyboard_draws_the_label_and_the_caption() -> None:
    engine = StoryboardImageEngine()
    labelled = _pixels(engine.generate("A quiet harbour", width=960, height=540, seed=3, label="Scene 3"))
    untitled = _pixels(engine.generate("", width=960, height=540, seed=3, label="Scene 3"))
    label_fill = np.all(labelled == (250, 250, 245), axis=-1)
    assert label_fill[:120, 330:630].sum() > 500  # a tab at the top of the middle column
    # The caption is white text: nothing else on a card is that bright low down (shapes and ground are
    # darker by construction), so near-white pixels in the bottom fifth are the prompt's letters.
    assert (labelled[-108:] > 240).all(axis=-1).sum() > 200
    assert (untitled[-108:] > 240).all(axis=-1).sum() == 0


def test_an_unlabelled_card_is_the_bare_picture_for_a_thumbnail_headline() -> None:
    """A thumbnail's base is asked for without a label: no label tab and no prompt band, where the
    headline will be drawn; the picture itself is the labelled card's, above the band."""
    engine = StoryboardImageEngine()
    labelled = _pixels(engine.generate("A quiet harbour", width=960, height=540, seed=3, label="Scene 3"))
    bare = _pixels(engine.generate("A quiet harbour", width=960, height=540, seed=3))
    assert not np.all(bare == (250, 250, 245), axis=-1).any()
    assert (bare[-108:] > 240).all(axis=-1).sum() == 0
    # The band darkens the bottom of a labelled card; the bare card keeps its ground there.
    left, _, right, bottom = safe_area(960, 540)
    band = (slice(bottom - 40, bottom), slice(left, right))
    assert bare[band].mean() > labelled[band].mean() + 10
    assert np.abs(bare[150:300] - labelled[150:300]).mean() < 1


def _changed(a: np.ndarray, b: np.ndarray) -> tuple[int, int, int, int]:
    """The bounding box (left, top, right, bottom exclusive) of the pixels that differ."""
    rows, cols = np.nonzero(np.any(a != b, axis=-1))
    return int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1


def _inside(box: tuple[int, int, int, int], area: tuple[float, float, float, float]) -> bool:
    return area[0] <= box[0] and area[1] <= box[1] and box[2] <= area[2] and box[3] <= area[3]


@pytest.mark.parametrize("size", [(1920, 1072), (640, 352), (1080, 1920)])
def test_the_label_and_the_text_stay_where_moves_and_the_shorts_pan_show_them(size) -> None:
    """Every pixel the label or the prompt changes is inside the safe area, and the safe area is inside
    every window a gentle move can take and inside the middle of the Short's window."""
    from zray.media.moves import ZOOM, Move, cover_box, window

    width, height = size
    engine = StoryboardImageEngine()
    prompt = "A lighthouse on a cliff at dawn, waves breaking below and gulls circling its lamp " * 2
    one = _pixels(engine.generate(prompt, width=width, height=height, seed=5, label="Scene 1"))
    other = _pixels(engine.generate(prompt, width=width, height=height, seed=5, label="Scene 12"))
    plain = _pixels(engine.generate(prompt, width=width, height=height, seed=5))
    area = safe_area(width, height)
    assert _inside(_changed(one, other), area)  # the label
    assert _inside(_changed(one, plain), area)  # the label, the prompt and its band
    # The deepest zoom, pushed into each corner: the window a move shows there.
    base = cover_box(width, height, frame_width=width, frame_height=height)
    for fx, fy in itertools.product((0.0, 1.0), repeat=2):
        move = Move("zoom-in", 1.0 + ZOOM, 1.0 + ZOOM, (fx, fy), (fx, fy))
        shown = window(move, 0.0, base=base)
        assert _inside(area, (shown.left, shown.top, shown.right, shown.bottom)), (fx, fy)
    # The Short's window, centred, as wide as SHORT_ASPECT of the card's height.
    column = height * SHORT_ASPECT
    assert _inside(area, ((width - column) / 2, 0, (width + column) / 2, height))
    # No border: the card's edges are its backdrop, the same with or without a label.
    assert not np.any(np.all(one[0] == (20, 20, 20), axis=-1))
    assert np.array_equal(one[:, 0], plain[:, 0]) and np.array_equal(one[-1], plain[-1])


@settings(max_examples=25, deadline=None)
@given(
    prompt=st.text(max_size=300),
    width=st.integers(16, 400),
    height=st.integers(16, 400),
    seed=st.integers(0, 2**32 - 1),
)
def test_storyboard_handles_any_text_at_any_size(prompt: str, width: int, height: int, seed: int) -> None:
    image = StoryboardImageEngine().generate(prompt, width=width, height=height, seed=seed, label="Scene 1")
    assert image.size == (width, height)


@pytest.mark.parametrize("bad", [0, 15, -5, 20000, 12.5])
def test_storyboard_rejects_bad_sizes_naming_the_value(bad: object) -> None:
    with pytest.raises(EngineError, match=str(bad)):
        StoryboardImageEngine().generate("x", width=bad, height=100, seed=0)  # type: ignore[arg-type]


# --- espeak -----------------------------------------------------------------------------------------

SENTENCES = {
    "es": "El faro se alza sobre el acantilado desde hace más de cien años.",
    "en": "The lighthouse has stood on the cliff for more than a hundred years.",
    "ca": "El far s'alça sobre el penya-segat des de fa més de cent anys.",
}


@pytest.fixture(scope="module")
def tts() -> EspeakTTSEngine:
    return EspeakTTSEngine()


def test_espeak_supports_installed_languages_only(tts: EspeakTTSEngine) -> None:
    for lang in ("es", "en", "ca", "fr", "de", "EN", "pt_BR", "es-419"):
        assert tts.supports(lang), lang
    for lang in ("xx", "klingon", ""):
        assert not tts.supports(lang), lang


@pytest.mark.parametrize("lang", sorted(SENTENCES))
def test_espeak_speaks_es_en_ca_audibly_and_repeatably(tts: EspeakTTSEngine, lang: str) -> None:
    speech = tts.synthesize(SENTENCES[lang], lang=lang)
    assert isinstance(speech, Synthesis)
    assert speech.sample_rate == 22050
    assert speech.samples.dtype == np.float32
    assert speech.samples.ndim == 2 and speech.samples.shape[0] == 1
    assert 2.0 < speech.seconds < 8.0  # a dozen words at 165 words per minute
    assert np.sqrt(np.mean(speech.samples**2)) > 0.02
    assert np.abs(speech.samples).max() <= 1.0
    again = tts.synthesize(SENTENCES[lang], lang=lang)
    assert np.array_equal(again.samples, speech.samples)


def test_espeak_longer_text_gives_longer_audio(tts: EspeakTTSEngine) -> None:
    short = tts.synthesize("Hola.", lang="es")
    long = tts.synthesize(SENTENCES["es"] + " " + SENTENCES["es"], lang="es")
    assert long.seconds > 1.6 * tts.synthesize(SENTENCES["es"], lang="es").seconds
    assert long.seconds > 5 * short.seconds


def test_espeak_word_timings_follow_the_text(tts: EspeakTTSEngine) -> None:
    speech = tts.synthesize("Uno dos tres cuatro cinco.", lang="es")
    assert speech.words is not None
    assert [w.word for w in speech.words] == ["Uno", "dos", "tres", "cuatro", "cinco"]
    starts = [w.start for w in speech.words]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)
    assert all(isinstance(w, WordTiming) and 0 <= w.start <= w.end <= speech.seconds for w in speech.words)
    # A number read as several words is one timing for its text.
    numbered = tts.synthesize("En 2024 llegó.", lang="es")
    assert numbered.words is not None
    assert [w.word for w in numbered.words] == ["En", "2024", "llegó"]


def test_espeak_rate_and_voice_change_the_audio_and_the_identity(tts: EspeakTTSEngine) -> None:
    fast = EspeakTTSEngine(EspeakSettings(rate=300))
    assert (
        fast.synthesize(SENTENCES["en"], lang="en").seconds
        < 0.8 * tts.synthesize(SENTENCES["en"], lang="en").seconds
    )
    british = EspeakTTSEngine(EspeakSettings(voices={"en": "en-gb"}))
    assert (
        british.voice_for("en") == "en-gb" and tts.voice_for("en") == "en-us" and tts.voice_for("ca") == "ca"
    )
    american = tts.synthesize(SENTENCES["en"], lang="en").samples
    assert not np.array_equal(british.synthesize(SENTENCES["en"], lang="en").samples, american)
    identities = {json.dumps(e.identity(), sort_keys=True) for e in (tts, fast, british)}
    assert len(identities) == 3


def test_espeak_unknown_language_and_empty_text_fail_clearly(tts: EspeakTTSEngine) -> None:
    with pytest.raises(EngineError, match="'xx'"):
        tts.synthesize("Hello", lang="xx")
    for text in ("", "   \n\t"):
        with pytest.raises(EngineError, match="no text"):
            tts.synthesize(text, lang="es")
    with pytest.raises(EngineError, match="nonexistent-voice"):
        EspeakTTSEngine(EspeakSettings(voices={"es": "nonexistent-voice"})).synthesize("Hola", lang="es")
    with pytest.raises(EngineError, match="1000"):
        EspeakSettings(rate=1000)


def test_espeak_checks_voice_names_before_speaking(tts: EspeakTTSEngine) -> None:
    for lang in ("es", "en", "ca", "pt-br"):
        tts.check_voice(lang)
    EspeakTTSEngine(EspeakSettings(voices={"en": "en-gb", "es": "es-419"})).check_voice("es")
    with pytest.raises(EngineError) as info:
        EspeakTTSEngine(EspeakSettings(voices={"en": "eng-us"})).check_voice("en")
    assert str(info.value).startswith("espeak-ng has no voice 'eng-us' (similar: en-us")


def test_espeak_leaves_no_copy_of_its_library_behind(tmp_path) -> None:
    """A voice actor is killed, not exited: its private copy of the library must need no cleanup."""
    import os
    import subprocess
    import sys

    code = (
        "import os\n"
        "from zray.engines.espeak import EspeakTTSEngine\n"
        "EspeakTTSEngine().synthesize('Hola.', lang='es')\n"
        "os._exit(0)  # like a killed actor: no atexit\n"
    )
    subprocess.run([sys.executable, "-c", code], env={**os.environ, "TMPDIR": str(tmp_path)}, check=True)
    assert list(tmp_path.iterdir()) == []


def test_espeak_is_safe_from_threads_and_from_other_users_of_the_library(tts: EspeakTTSEngine) -> None:
    expected = {lang: tts.synthesize(text, lang=lang).samples for lang, text in SENTENCES.items()}

    # Another user of the wheel's library (as kokoro's phonemizer is) picking its own voice.
    import ctypes

    import espeakng_loader

    other = ctypes.CDLL(espeakng_loader.get_library_path())
    other.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    other.espeak_Initialize(2, 0, espeakng_loader.get_data_path().encode(), 0x8000)
    other.espeak_SetVoiceByName(b"fr")

    results: dict[str, np.ndarray] = {}

    def speak(lang: str) -> None:
        results[lang] = tts.synthesize(SENTENCES[lang], lang=lang).samples

    threads = [threading.Thread(target=speak, args=(lang,)) for lang in SENTENCES]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for lang, samples in expected.items():
        assert np.array_equal(results[lang], samples), lang


# --- ambient ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def music() -> AmbientMusicEngine:
    return AmbientMusicEngine()


@pytest.fixture(scope="module")
def bed(music: AmbientMusicEngine) -> np.ndarray:
    return music.generate("calm hopeful piano ambient", seconds=20)


def _seam_and_steps(audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """|x[0] - x[-1]| per channel, and every ordinary sample-to-sample step."""
    return np.abs(audio[:, 0] - audio[:, -1]), np.abs(np.diff(audio, axis=1))


def test_ambient_shape_level_and_stereo(bed: np.ndarray) -> None:
    assert bed.shape == (2, 20 * 48000)
    assert bed.dtype == np.float32
    assert np.isfinite(bed).all()
    peak = np.abs(bed).max()
    assert 0.45 < peak < 0.55  # about -6 dBFS, well below clipping
    assert np.sqrt(np.mean(bed**2)) > 0.05
    # Every second has sound: an ambient bed has no gaps.
    per_second = np.sqrt(np.mean(bed.reshape(2, 20, 48000) ** 2, axis=(0, 2)))
    assert per_second.min() > 0.02
    assert np.corrcoef(bed[0], bed[1])[0, 1] < 0.99


def test_ambient_is_deterministic_per_prompt(music: AmbientMusicEngine, bed: np.ndarray) -> None:
    assert np.array_equal(music.generate("calm hopeful piano ambient", seconds=20), bed)
    other = music.generate("dark tense drone for a mystery", seconds=20)
    assert np.abs(other - bed).mean() > 0.05


def test_ambient_loops_seamlessly(music: AmbientMusicEngine, bed: np.ndarray) -> None:
    beds = [
        bed,
        music.generate("dark tense drone for a mystery", seconds=7.3),
        music.generate("x", seconds=1.0),
    ]
    for audio in beds:
        seam, steps = _seam_and_steps(audio)
        assert (seam <= np.percentile(steps, 99.9, axis=1)).all()
        # The check has teeth: a cut anywhere else in the bed is no loop.
        cut_seam, _ = _seam_and_steps(audio[:, : audio.shape[1] * 2 // 3])
        assert (cut_seam > np.percentile(steps, 99.9, axis=1)).any()


@pytest.mark.parametrize("seconds", [0.05, 1.0, 60.0])
def test_ambient_any_length(music: AmbientMusicEngine, seconds: float) -> None:
    audio = music.generate("short sting", seconds=seconds)
    assert audio.shape == (2, round(seconds * 48000))
    assert np.abs(audio).max() < 1.0


def test_ambient_other_sample_rate() -> None:
    audio = AmbientMusicEngine(AmbientSettings(sample_rate=44100)).generate("x", seconds=2.0)
    assert audio.shape == (2, 88200)
    with pytest.raises(EngineError, match="8000"):
        AmbientSettings(sample_rate=8000)


@pytest.mark.parametrize("seconds", [0, -1, math.nan, math.inf, 10_000])
def test_ambient_rejects_bad_lengths_naming_the_value(music: AmbientMusicEngine, seconds: float) -> None:
    with pytest.raises(EngineError, match=str(seconds)):
        music.generate("x", seconds=seconds)


def test_ambient_takes_a_music_file_argument_and_refuses_it_in_one_line(music: AmbientMusicEngine) -> None:
    with pytest.raises(EngineError) as info:
        music.generate("x", seconds=1.0, file="theme.mp3")
    assert str(info.value) == (
        "the ambient music engine makes its own music and cannot play music_file 'theme.mp3'; "
        'set engines.music = "library" (tracks in library.folder) or remove music_file'
    )
