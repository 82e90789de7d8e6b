"""Kokoro engine through a tiny random-weight model, in Spanish (offline via espeak-ng).

The model (about 230 MB: Kokoro's decoder widths are fixed) is built in memory once per module and
handed to the engines; one test saves it and loads it from disk like a real model. English needs
spaCy's en_core_web_sm, which cannot be installed here: its timing test is skipped without it, and its
absence must be a clear error, never a download.
"""

from __future__ import annotations

import importlib.metadata
import itertools
import json
import pickle
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import needs_extra
from tiny_kokoro import VOICES, build_tiny_kokoro_components, tiny_kokoro_dir

import zray.engines.kokoro as kokoro_module
from zray.engines.base import EngineError, TTSEngine, WordTiming, check_engine_class
from zray.engines.kokoro import DEFAULT_VOICES, KokoroSettings, KokoroTTSEngine, english_ready

torch = needs_extra("models", "torch")
needs_extra("models", "kokoro")

HAS_SPACY_EN = english_ready()[0]
SHORT = "Hola, buenos días."
LONG = "Hola, buenos días. El mar brilla de noche bajo millones de estrellas."


@pytest.fixture(scope="module", autouse=True)
def offline_and_one_thread() -> Iterator[None]:
    """No Hub access (an accidental download fails loudly) and one torch thread: on this shared
    two-core machine, two threads spin against each other and make synthesis several times slower."""
    import huggingface_hub.constants as hub

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setattr(hub, "HF_HUB_OFFLINE", True)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def components() -> tuple[object, dict]:
    return build_tiny_kokoro_components()


@pytest.fixture(scope="module")
def tiny_engine(components):  # type: ignore[no-untyped-def]
    """Engines on the module's in-memory model and voice packs, with these settings."""
    model, packs = components

    def make(**changes: object) -> KokoroTTSEngine:
        return KokoroTTSEngine(KokoroSettings(**{"device": "cpu", **changes}), model=model, voices=packs)

    return make


@pytest.fixture(scope="module")
def engine(tiny_engine) -> KokoroTTSEngine:  # type: ignore[no-untyped-def]
    tts = tiny_engine()
    tts.load()
    return tts


def fake_model_folder(folder: Path, packs: dict | None = None) -> Path:
    """A folder laid out like the repo, for what reads only names and sizes (identity, voice lookup)."""
    (folder / "voices").mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / "kokoro-tiny.pth").write_bytes(b"\0" * 64)
    for name, pack in (packs or {}).items():
        torch.save(pack, folder / "voices" / f"{name}.pt")
    if packs is None:
        for name in VOICES:
            (folder / "voices" / f"{name}.pt").write_bytes(b"\0" * 32)
    return folder


# --- synthesis --------------------------------------------------------------------------------------


def test_spanish_is_non_silent_24_khz_mono(engine: KokoroTTSEngine) -> None:
    assert isinstance(engine, TTSEngine)
    assert check_engine_class(KokoroTTSEngine, "tts") == []
    assert (KokoroTTSEngine.name, KokoroTTSEngine.uses_gpu) == ("kokoro", True)
    result = engine.synthesize(SHORT, lang="es")
    assert result.sample_rate == 24_000
    assert result.samples.ndim == 2 and result.samples.shape[0] == 1
    assert result.samples.dtype == np.float32
    assert np.isfinite(result.samples).all()
    assert result.samples.std() > 1e-3
    # Each phoneme lasts at least one 600-sample duration frame.
    assert result.samples.shape[1] >= 600 * len("ola bwenos dias")
    assert [word.word for word in result.words or []] == ["Hola", "buenos", "días"]


def test_a_saved_model_folder_loads_like_a_model_id_and_speaks_the_same(
    engine: KokoroTTSEngine, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The one test through disk: the path a real Hub id or local folder takes (KModel from files)."""
    folder = tiny_kokoro_dir(tmp_path_factory)
    loaded = KokoroTTSEngine(KokoroSettings(model=str(folder), device="cpu"))
    loaded.check_voice("es")
    np.testing.assert_array_equal(
        loaded.synthesize(SHORT, lang="es").samples, engine.synthesize(SHORT, lang="es").samples
    )
    assert loaded.identity()["model"] == folder.name and loaded.identity()["model_files"]


def test_synthesis_is_deterministic_even_in_a_fresh_engine(engine: KokoroTTSEngine, tiny_engine) -> None:  # type: ignore[no-untyped-def]
    first = engine.synthesize(SHORT, lang="es")
    second = engine.synthesize(SHORT, lang="es")
    np.testing.assert_array_equal(first.samples, second.samples)
    np.testing.assert_array_equal(tiny_engine().synthesize(SHORT, lang="es").samples, first.samples)
    shipped = pickle.dumps(engine)  # as Ray ships it to an actor: settings only, never the model
    assert len(shipped) < 10_000
    copy = pickle.loads(shipped)
    assert copy.settings == engine.settings and copy.identity() == engine.identity()
    assert copy._model is None


def test_longer_text_gives_longer_audio_and_slower_speed_longer_still(
    engine: KokoroTTSEngine,
    tiny_engine,  # type: ignore[no-untyped-def]
) -> None:
    short = engine.synthesize(SHORT, lang="es")
    long = engine.synthesize(LONG, lang="es")
    assert long.seconds > 2 * short.seconds
    slow = tiny_engine(speeds={"es": 0.5})
    assert slow.synthesize(SHORT, lang="es").seconds > 1.5 * short.seconds


def test_text_is_fed_in_pieces_that_fit_kokoros_phoneme_window(
    engine: KokoroTTSEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Kokoro silently cuts phonemes past its window; the engine splits text so nothing is cut."""
    monkeypatch.setattr(kokoro_module, "_WINDOW", 40)
    pipeline = engine._pipeline("es")
    fed: list[str] = []
    generate = pipeline.generate_from_tokens

    def spy(phonemes: str, **options: object):  # type: ignore[no-untyped-def]
        fed.append(phonemes)
        return generate(phonemes, **options)

    monkeypatch.setattr(pipeline, "generate_from_tokens", spy)
    result = engine.synthesize(LONG, lang="es")
    whole, _ = pipeline.g2p(LONG)
    assert len(fed) >= 3
    assert all(len(phonemes) <= 40 for phonemes in fed)

    # Nothing dropped: every phoneme of the whole text is spoken, in order (stress may shift with
    # the phrase around a word, so it is left out of the comparison).
    def bare(phonemes: str) -> str:
        return "".join(c for c in phonemes if c not in " ˈˌ")

    assert bare("".join(fed)) == bare(whole)
    assert result.samples.shape[1] > 0


HOP = 600  # samples per predicted duration frame at 24 kHz (Kokoro's decoder)


def spy_durations(engine: KokoroTTSEngine, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, list[int]]]:
    """Records each model call's phonemes and the durations Kokoro predicted for them."""
    pipeline = engine._pipeline("es")
    calls: list[tuple[str, list[int]]] = []
    generate = pipeline.generate_from_tokens

    def spy(phonemes: str, **options: object):  # type: ignore[no-untyped-def]
        for result in generate(phonemes, **options):
            calls.append((phonemes, result.pred_dur.reshape(-1).tolist()))
            yield result

    monkeypatch.setattr(pipeline, "generate_from_tokens", spy)
    return calls


@pytest.mark.parametrize("window", [510, 40])
def test_spanish_words_are_timed_by_kokoros_own_durations(
    engine: KokoroTTSEngine, monkeypatch: pytest.MonkeyPatch, window: int
) -> None:
    """The tiny model's durations are random, so the mapping is what is tested: every phoneme belongs
    to exactly one word, in order, and the words tile the audio (in several pieces too, at window 40)."""
    monkeypatch.setattr(kokoro_module, "_WINDOW", window)
    calls = spy_durations(engine, monkeypatch)
    text = "¿Y si el planeta tuviera 2.500 lunas? Hoy viajamos a ella, sin prisa — ¡qué rápido!"
    result = engine.synthesize(text, lang="es")
    words = result.words or []
    expected = ["Y", "si", "el", "planeta", "tuviera", "2.500", "lunas", "Hoy", "viajamos", "a", "ella"]
    assert [w.word for w in words] == [*expected, "sin", "prisa", "qué", "rápido"]
    if window == 510:
        assert len(calls) == 1
    else:
        assert len(calls) >= 3
    # The durations account for every sample, and the words for every frame after the first
    # boundary token: their total is the audio's length within one hop.
    frames = [frame for _, durations in calls for frame in durations]
    assert sum(frames) * HOP == result.samples.shape[1]
    assert words[0].start == pytest.approx(calls[0][1][0] * HOP / 24_000)
    total = sum(w.end - w.start for w in words) + words[0].start
    assert total == pytest.approx(result.seconds, abs=HOP / 24_000)
    assert words[-1].end == pytest.approx(result.seconds, abs=HOP / 24_000)
    assert all(a.end == pytest.approx(b.start) for a, b in itertools.pairwise(words))
    assert all(w.end > w.start for w in words)


@pytest.mark.skipif(not HAS_SPACY_EN, reason="needs spaCy's en_core_web_sm (python -m spacy download)")
def test_english_has_word_timings_within_the_audio(tiny_engine) -> None:  # type: ignore[no-untyped-def]
    tts = tiny_engine(voices={"en": "af_heart"})
    result = tts.synthesize("Hello world. This is a short test of the narration.", lang="en")
    assert result.words
    assert [word.word for word in result.words][:2] == ["Hello", "world"]
    starts = [word.start for word in result.words]
    assert starts == sorted(starts)
    assert all(0 <= word.start <= word.end <= result.seconds + 1e-6 for word in result.words)


class LetterG2P:
    """Stands in for misaki's English G2P (spaCy's model cannot be installed here): one token per word
    or mark, spelled with its own lowercase letters, which are all in the tiny model's vocabulary."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        pass

    def __call__(self, text: str) -> tuple[str, list]:
        from misaki.token import MToken

        tokens = []
        for match in re.finditer(r"(\w+|[^\w\s])(\s*)", text):
            word, space = match.groups()
            tokens.append(MToken(text=word, tag="NN", whitespace=space, phonemes=word.lower()))
        return "".join(t.phonemes + t.whitespace for t in tokens), tokens


def test_english_words_are_timed_through_kokoros_own_pipeline(
    tiny_engine,  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import misaki.en

    monkeypatch.setattr(misaki.en, "G2P", LetterG2P)
    monkeypatch.setattr(kokoro_module, "english_ready", lambda: (True, "stand-in G2P"))
    tts = tiny_engine(voices={"en": "af_heart"})
    result = tts.synthesize("Hello world, this is narration.", lang="en")
    assert [word.word for word in result.words or []] == ["Hello", "world", "this", "is", "narration"]
    words = result.words or []
    assert words[0].start >= 0 and words[-1].end <= result.seconds + 1e-6
    assert all(a.end <= b.start + 1e-6 for a, b in itertools.pairwise(words))
    assert all(word.end > word.start for word in words)


def test_english_word_times_are_offset_by_the_chunks_before_them(engine: KokoroTTSEngine) -> None:
    from misaki.token import MToken

    def token(text: str, start: float | None, end: float | None) -> MToken:
        return MToken(text=text, tag="NN", whitespace=" ", phonemes=text, start_ts=start, end_ts=end)

    chunks = [
        SimpleNamespace(audio=torch.zeros(48_000), tokens=[token("One", 0.1, 0.5), token(".", 0.5, 0.6)]),
        SimpleNamespace(audio=None, tokens=[token("lost", 0.0, 0.1)]),  # a quiet pipeline's chunk
        SimpleNamespace(audio=torch.ones(24_000), tokens=[token("Two", 0.2, 0.4), token("x", None, None)]),
    ]
    audio, words = engine._english(lambda *args, **kwargs: iter(chunks), "", pack=None, speed=1.0)
    assert [chunk.size for chunk in audio] == [48_000, 24_000]
    assert words == [WordTiming("One", 0.1, 0.5), WordTiming("Two", 2.2, 2.4)]


@pytest.mark.skipif(HAS_SPACY_EN, reason="en_core_web_sm is installed")
def test_english_without_spacys_model_is_a_clear_error_not_a_download(
    tiny_engine,  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import spacy.cli

    def no_download(*args: object, **kwargs: object) -> None:
        raise AssertionError("misaki tried to download a spaCy model")

    monkeypatch.setattr(spacy.cli, "download", no_download)
    ready, message = english_ready()
    assert not ready and "python -m spacy download en_core_web_sm" in message
    tts = tiny_engine()
    with pytest.raises(EngineError, match="python -m spacy download en_core_web_sm"):
        tts.synthesize("Hello world.", lang="en-US")


# --- errors -----------------------------------------------------------------------------------------


def test_languages_kokoro_speaks_and_one_it_does_not(engine: KokoroTTSEngine) -> None:
    for lang in ("en", "en-US", "en-gb", "es", "fr", "hi", "it", "pt", "pt-BR", "ja", "zh"):
        assert engine.supports(lang), lang
    assert not engine.supports("ca")
    with pytest.raises(EngineError, match="'ca'"):
        engine.synthesize("Bon dia.", lang="ca")
    with pytest.raises(EngineError, match="'ca'"):
        KokoroSettings(voices={"ca": "ef_dora"})
    with pytest.raises(EngineError, match="speed"):
        KokoroSettings(speeds={"es": 9.0})
    with pytest.raises(EngineError, match="voice name"):
        KokoroSettings(voices={"es": " "})


def test_unknown_or_broken_voices_are_named(components, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    model, packs = components
    folder = fake_model_folder(tmp_path / "tiny-kokoro", packs)

    def local(voice: str) -> KokoroTTSEngine:
        return KokoroTTSEngine(
            KokoroSettings(model=str(folder), voices={"es": voice}, device="cpu"), model=model
        )

    with pytest.raises(EngineError, match=r"'ef_nobody'.*af_heart, ef_dora"):
        local("ef_nobody").check_voice("es")
    with pytest.raises(EngineError, match=r"'ef_nobody'.*af_heart, ef_dora"):
        local("ef_nobody").synthesize(SHORT, lang="es")
    local("ef_dora").check_voice("es")

    with pytest.raises(EngineError, match=r"gone\.pt does not exist"):
        local(str(tmp_path / "gone.pt")).check_voice("es")

    torch.save(torch.zeros(10, 256), tmp_path / "flat.pt")
    with pytest.raises(EngineError, match=r"shape \(10, 256\)"):
        local(str(tmp_path / "flat.pt")).synthesize(SHORT, lang="es")


def test_voice_names_of_the_hub_model_are_checked_before_any_download() -> None:
    KokoroTTSEngine(KokoroSettings(voices={"es": "em_alex"})).check_voice("es")
    KokoroTTSEngine(KokoroSettings(voices={"es": "af_heart"})).check_voice("es")  # another accent is allowed
    KokoroTTSEngine().check_voice("fr")  # the defaults exist
    with pytest.raises(EngineError) as info:
        KokoroTTSEngine(KokoroSettings(voices={"es": "ef_dorra"})).check_voice("es")
    assert str(info.value) == (
        "Kokoro has no voice 'ef_dorra' (similar: ef_dora, pf_dora; its es voices: ef_dora, em_alex, em_santa; "
        "54 in all, see hexgrad/Kokoro-82M's VOICES.md)"
    )
    # Another repo's voices cannot be listed offline: its download will say.
    KokoroTTSEngine(KokoroSettings(model="someone/kokoro-fork", voices={"es": "x_custom"})).check_voice("es")


def test_injected_voice_packs_are_voices(components) -> None:  # type: ignore[no-untyped-def]
    model, packs = components
    mine = KokoroTTSEngine(
        KokoroSettings(voices={"es": "studio_voice"}, device="cpu"),
        model=model,
        voices={"studio_voice": packs["ef_dora"]},
    )
    mine.check_voice("es")
    assert mine.synthesize("Hola.", lang="es").samples.std() > 1e-3


def test_a_voice_pack_path_is_used(components, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    model, packs = components
    pack = tmp_path / "mine.pt"
    torch.save(packs["af_heart"], pack)
    tts = KokoroTTSEngine(KokoroSettings(voices={"es": str(pack)}, device="cpu"), model=model)
    tts.check_voice("es")
    assert tts.synthesize("Hola.", lang="es").samples.std() > 1e-3
    assert tts.identity_for("es")["voices"]["es"].startswith("mine@")


def test_a_model_missing_from_the_hub_cache_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub.constants as hub

    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(EngineError, match=r"hexgrad/Kokoro-82M.*hf download hexgrad/Kokoro-82M"):
        KokoroTTSEngine().load()
    with pytest.raises(EngineError, match="neither a local directory"):
        KokoroTTSEngine(KokoroSettings(model=str(tmp_path / "no-such-folder"))).identity()
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.json").write_text("{}")
    with pytest.raises(EngineError, match=r"exactly one \.pth"):
        KokoroTTSEngine(KokoroSettings(model=str(tmp_path / "half"))).load()


# --- identity ---------------------------------------------------------------------------------------


def test_identity_for_changes_only_with_that_languages_voice_and_speed(tmp_path: Path) -> None:
    folder = fake_model_folder(tmp_path / "tiny-kokoro")

    def local(**changes: object) -> KokoroTTSEngine:
        return KokoroTTSEngine(KokoroSettings(model=str(folder), **changes))

    base = local()
    identity = base.identity()
    assert json.loads(json.dumps(identity)) == identity
    assert identity["engine"] == "kokoro" and identity["version"]
    assert identity["model"] == folder.name and identity["model_files"]
    assert identity["voices"]["es"].startswith("ef_dora@")  # a local voice file: name and digest
    assert identity["voices"]["fr"] == DEFAULT_VOICES["fr"]
    other_es = local(voices={"es": "af_heart"})
    slower_es = local(speeds={"es": 0.8})
    for changed in (other_es, slower_es):
        assert changed.identity_for("es") != base.identity_for("es")
        for lang in ("en", "fr", "it", "pt"):
            assert changed.identity_for(lang) == base.identity_for(lang)
    assert base.identity_for("pt-BR") == base.identity_for("pt")
    assert base.identity_for("es")["voices"] == {"es": identity["voices"]["es"]}


def test_identity_names_a_hub_model_by_id_and_a_local_one_by_its_files(tmp_path: Path) -> None:
    hub = KokoroTTSEngine().identity()
    assert hub["model"] == "hexgrad/Kokoro-82M" and hub["model_files"] is None
    assert hub["voices"]["es"] == "ef_dora"

    folder = fake_model_folder(tmp_path / "a" / "tiny-kokoro")
    copy = tmp_path / "b" / folder.name
    copy.mkdir(parents=True)
    shutil.copy(folder / "config.json", copy / "config.json")
    (copy / "voices").symlink_to(folder / "voices")
    (copy / "kokoro-tiny.pth").symlink_to(folder / "kokoro-tiny.pth")

    def identity(at: Path) -> dict:
        return KokoroTTSEngine(KokoroSettings(model=str(at))).identity()

    # The same files elsewhere: the same identity, so another node's copy reuses the cache.
    assert identity(copy) == identity(folder)
    (copy / "config.json").write_text((folder / "config.json").read_text() + "\n")
    assert identity(copy) != identity(folder)


def test_default_identity_is_pinned() -> None:
    """Studios' narration keys: production's Kokoro voices must not be remade after an upgrade."""
    expected_es = {
        "engine": "kokoro",
        "version": "1",
        "model": "hexgrad/Kokoro-82M",
        "model_files": None,
        "kokoro": importlib.metadata.version("kokoro"),
        "misaki": importlib.metadata.version("misaki"),
        "sample_rate": 24000,
        "voices": {"es": "ef_dora"},
        "speeds": {"es": 1.0},
    }
    assert KokoroTTSEngine().identity_for("es") == expected_es


def test_importing_and_identity_need_no_torch() -> None:
    code = (
        "import sys; from zray.engines.kokoro import KokoroTTSEngine; "
        "KokoroTTSEngine().identity(); "
        "assert 'torch' not in sys.modules and 'kokoro' not in sys.modules, 'heavy import'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
