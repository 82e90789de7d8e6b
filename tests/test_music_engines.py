"""Production music engines: MusicGen (a tiny random-weight model built in memory, and once saved and
loaded like a real model) and the studio's library."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
from conftest import needs_extra

from zray.engines.base import EngineError, MusicEngine, check_engine_class
from zray.engines.library import LibraryMusicEngine, LibrarySettings
from zray.engines.musicgen import (
    JOIN_CROSSFADE_S,
    LICENSE_NOTE,
    PEAK_CEILING,
    MusicGenEngine,
    MusicGenSettings,
    seamless_loop,
)

# huggingface_hub reads HF_HUB_OFFLINE once, when it is imported: set it before transformers comes in.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch = needs_extra("models", "torch")
needs_extra("models", "transformers")

from tiny_musicgen import (  # noqa: E402
    FRAME_RATE,
    SAMPLING_RATE,
    build_tiny_musicgen,
    build_tiny_musicgen_components,
)

RATE = 48_000
PROMPT = "calm piano music with soft strings"
# Short windows keep the tiny model's runs small while still needing several of them.
WINDOW = 1.5
SECONDS = 3.0
HOP = SAMPLING_RATE // FRAME_RATE


def tiny_engine(*, stereo: bool = False, **changes) -> MusicGenEngine:
    """An engine on fresh in-memory tiny components (fresh: loading casts and places them)."""
    model, processor = build_tiny_musicgen_components(stereo=stereo)
    settings = MusicGenSettings(**{"model": "tiny-musicgen", "window": WINDOW, "device": "cpu", **changes})
    return MusicGenEngine(settings, model=model, processor=processor)


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # Two cores shared with other jobs: torch's spinning worker threads make a tiny model 30x slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def bed() -> np.ndarray:
    return tiny_engine().generate(PROMPT, seconds=SECONDS)


# -- MusicGen ----------------------------------------------------------------------------------------------


def test_bed_is_mono_48k_of_the_asked_length_finite_and_audible(bed: np.ndarray) -> None:
    assert isinstance(MusicGenEngine(), MusicEngine)
    assert check_engine_class(MusicGenEngine, "music") == []
    assert (MusicGenEngine.name, MusicGenEngine.uses_gpu, MusicGenEngine.accepts_file) == (
        "musicgen",
        True,
        False,
    )
    # The tiny model is mono, like musicgen-small: (1, n), exactly seconds * 48000 samples.
    assert bed.shape == (1, round(SECONDS * RATE))
    assert bed.dtype == np.float32
    assert np.isfinite(bed).all()
    assert float(np.std(bed)) > 1e-3
    assert float(np.max(np.abs(bed))) <= PEAK_CEILING + 1e-6


def test_a_saved_model_folder_loads_like_a_model_id_and_makes_the_same_bed(
    tmp_path: Path, bed: np.ndarray
) -> None:
    """The one test through disk: the path a real Hub id or local folder takes (from_pretrained)."""
    folder = build_tiny_musicgen(tmp_path / "tiny-musicgen")
    engine = MusicGenEngine(MusicGenSettings(model=str(folder), window=WINDOW, device="cpu"))
    np.testing.assert_array_equal(engine.generate(PROMPT, seconds=SECONDS), bed)
    assert len(engine.identity()["model_files"]) == 16


def test_same_prompt_same_bed_other_prompt_other_bed(bed: np.ndarray) -> None:
    engine = tiny_engine()
    torch.manual_seed(1234)
    expected_next = torch.rand(3)
    torch.manual_seed(1234)
    again = engine.generate(PROMPT, seconds=SECONDS)
    # Seeding happens in a forked RNG: the caller's random stream is left where it was.
    assert torch.equal(torch.rand(3), expected_next)
    np.testing.assert_array_equal(again, bed)
    other = engine.generate("epic orchestral soundtrack", seconds=SECONDS)
    assert other.shape == bed.shape
    assert not np.allclose(other, bed)


def test_bed_loops_without_a_step_at_the_seam(bed: np.ndarray) -> None:
    steps = np.abs(np.diff(bed, axis=1))
    seam = np.abs(bed[:, 0] - bed[:, -1])
    assert float(seam.max()) <= float(np.percentile(steps, 99.5))
    # Around the seam, the wrapped signal moves like its neighbourhood does.
    wrapped = np.concatenate([bed[:, -2000:], bed[:, :2000]], axis=1)
    local = np.abs(np.diff(wrapped, axis=1))
    assert float(local[:, 1999].max()) <= float(np.percentile(local, 99.5))


def test_seamless_loop_crossfades_the_extra_end_into_the_head() -> None:
    n, fade = 10_000, 2_000
    t = np.arange(n + fade)
    # 440 Hz at 48 kHz: the period does not divide n, so a plain cut would jump at the seam.
    audio = np.sin(2 * np.pi * 440 * t / RATE)[None].astype(np.float32)
    smooth_step = float(np.max(np.abs(np.diff(audio))))
    plain = audio[:, :n]
    assert abs(float(plain[0, 0] - plain[0, -1])) > 3 * smooth_step

    looped = seamless_loop(audio, n)
    assert looped.shape == (1, n)
    circular = np.abs(np.diff(np.concatenate([looped, looped[:, :1]], axis=1)))
    assert float(circular.max()) <= smooth_step * 1.05
    np.testing.assert_array_equal(looped[:, fade:], audio[:, fade:n])  # the middle is untouched
    with pytest.raises(ValueError, match="loop"):
        seamless_loop(audio, 100)


def test_long_beds_are_built_window_by_window_on_the_previous_tail(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = tiny_engine()
    engine.load()
    model = engine._model
    calls: list[dict] = []
    real_generate = model.generate

    def recording_generate(**kwargs):
        out = real_generate(**kwargs)
        calls.append({**kwargs, "out": out[0].float().numpy().copy()})
        return out

    monkeypatch.setattr(model, "generate", recording_generate)
    samples = round(SECONDS * SAMPLING_RATE)
    audio = engine.generate_model_rate(PROMPT, samples=samples)
    assert audio.shape[1] >= samples

    window_frames = round(WINDOW * FRAME_RATE)
    context = round(WINDOW / 3 * FRAME_RATE) * HOP
    assert len(calls) >= 3, "3 s in 1.5 s windows needs several windows"
    assert "input_values" not in calls[0]
    assert calls[0]["max_new_tokens"] <= window_frames
    for previous, call in itertools.pairwise(calls):
        # Each later window is conditioned on the tail of what was made so far, as audio...
        prompt_audio = call["input_values"][0].numpy()
        assert prompt_audio.shape == (1, context)
        np.testing.assert_allclose(prompt_audio, previous["out"][:, -context:], atol=1e-6)
        # ...and prompt and new tokens together stay within one window.
        assert context // HOP + call["max_new_tokens"] <= window_frames

    # The bed is the first window, then what each later window wrote after its reconstructed tail; the
    # tail's last moments crossfade into the reconstruction, where the new music continues.
    fade = round(JOIN_CROSSFADE_S * SAMPLING_RATE)
    ramp = (np.arange(fade) + 0.5) / fade
    pieces = [calls[0]["out"]] + [call["out"][:, context:] for call in calls[1:]]
    position = 0
    for index, piece in enumerate(pieces):
        assert piece.shape[1] > 0
        end = position + piece.shape[1]
        last = index == len(pieces) - 1
        keep = end if last else end - fade
        np.testing.assert_array_equal(audio[:, position:keep], piece[:, : keep - position])
        if not last:
            reconstruction = calls[index + 1]["out"][:, context - fade : context]
            blend = piece[:, -fade:] * (1 - ramp) + reconstruction * ramp
            np.testing.assert_allclose(audio[:, keep:end], blend, atol=1e-6)
        position = end
    assert position == audio.shape[1]

    # The same through generate(): more than one window for seconds > window.
    calls.clear()
    engine.generate(PROMPT, seconds=2 * WINDOW)
    assert len(calls) >= 2
    assert all("input_values" in call for call in calls[1:])


def test_one_window_suffices_for_a_short_bed(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = tiny_engine()
    engine.load()
    calls = []
    real_generate = engine._model.generate
    monkeypatch.setattr(engine._model, "generate", lambda **kw: calls.append(kw) or real_generate(**kw))
    bed = engine.generate(PROMPT, seconds=0.5)
    assert bed.shape == (1, RATE // 2)
    assert len(calls) == 1
    assert calls[0]["max_new_tokens"] < round(WINDOW * FRAME_RATE)  # no more tokens than needed


def test_stereo_model_gives_stereo_beds_and_stereo_audio_prompts(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = tiny_engine(stereo=True)
    engine.load()
    prompts = []
    real_generate = engine._model.generate
    monkeypatch.setattr(
        engine._model, "generate", lambda **kw: prompts.append(kw.get("input_values")) or real_generate(**kw)
    )
    bed = engine.generate(PROMPT, seconds=2 * WINDOW)
    assert bed.shape == (2, round(2 * WINDOW * RATE))
    assert np.isfinite(bed).all()
    assert float(np.max(np.abs(bed[0] - bed[1]))) > 1e-3  # two channels, not one copied
    assert prompts[0] is None and len(prompts) >= 2
    assert all(tail.shape[:2] == (1, 2) for tail in prompts[1:])


def test_half_precision_path_keeps_the_codec_in_float32() -> None:
    # What a GPU gets by default, run on CPU: the language model in bfloat16, EnCodec in float32.
    engine = tiny_engine(dtype="bfloat16")
    engine.load()
    assert engine._model.decoder.lm_heads[0].weight.dtype == torch.bfloat16
    assert next(engine._model.audio_encoder.parameters()).dtype == torch.float32
    bed = engine.generate(PROMPT, seconds=2 * WINDOW)
    assert bed.shape == (1, round(2 * WINDOW * RATE))
    assert np.isfinite(bed).all() and float(np.std(bed)) > 1e-3


@pytest.mark.parametrize(
    ("device", "dtype", "expected"),
    [
        ("auto", "auto", "bfloat16"),
        ("cuda", "auto", "bfloat16"),
        ("cpu", "auto", "float32"),
        ("cpu", "bfloat16", "bfloat16"),
        ("cuda", "float16", "float16"),
    ],
)
def test_dtype_comes_from_the_settings_and_is_in_the_identity(monkeypatch, device, dtype, expected) -> None:
    settings = MusicGenSettings(device=device, dtype=dtype)
    assert settings.resolved_dtype == expected
    identity = MusicGenEngine(settings).identity()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # the planning host's GPU changes nothing
    assert MusicGenEngine(settings).identity() == identity
    # bfloat16, the dtype of every bed made before the dtype was recorded, keeps their keys.
    assert identity.get("dtype", "bfloat16") == expected
    assert ("dtype" in identity) == (expected != "bfloat16")


def test_the_engine_runs_in_exactly_the_identitys_dtype() -> None:
    engine = tiny_engine()  # device cpu: float32
    assert engine.identity()["dtype"] == "float32"
    engine.load()
    assert engine._model.decoder.lm_heads[0].weight.dtype == torch.float32


def test_default_identity_is_pinned() -> None:
    """Studios' music keys: a GPU studio's beds must not be remade after an upgrade."""
    assert MusicGenEngine(MusicGenSettings()).identity() == {
        "engine": "musicgen",
        "version": "1",
        "model": "facebook/musicgen-small",
        "window": 30.0,
        "context_fraction": 0.333333,
        "guidance_scale": 3.0,
        "top_k": 250,
        "loop_crossfade": 2.0,
        "sample_rate": 48000,
        "license": LICENSE_NOTE,
    }


def test_identity_names_model_window_license_and_local_files(tmp_path: Path) -> None:
    # identity() reads a local model's file names and sizes, never its weights: any files will do.
    folder = tmp_path / "tiny-musicgen"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"\0" * 64)
    identity = MusicGenEngine(MusicGenSettings(model=str(folder), window=WINDOW)).identity()
    assert identity["engine"] == "musicgen"
    assert identity["model"] == str(folder)
    assert identity["window"] == WINDOW
    assert identity["license"] == LICENSE_NOTE and "CC-BY-NC-4.0" in LICENSE_NOTE
    assert MusicGenEngine(MusicGenSettings(model=str(folder), window=20)).identity() != identity

    hub = MusicGenEngine().identity()
    assert hub["model"] == "facebook/musicgen-small" and "model_files" not in hub

    copy = tmp_path / "model"
    copy.mkdir()
    for path in folder.iterdir():
        (copy / path.name).write_bytes(path.read_bytes())
    before = MusicGenEngine(MusicGenSettings(model=str(copy))).identity()["model_files"]
    assert MusicGenEngine(MusicGenSettings(model=str(copy))).identity()["model_files"] == before
    with (copy / "model.safetensors").open("ab") as handle:
        handle.write(b"\0")
    assert MusicGenEngine(MusicGenSettings(model=str(copy))).identity()["model_files"] != before


def test_import_is_cheap_and_never_loads_pyav_or_scipy() -> None:
    code = (
        "import sys, zray.engines.musicgen, zray.engines.library\n"
        "print(*(name in sys.modules for name in ('torch', 'av', 'scipy', 'zray.media.audio')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False"] * 4


def test_errors_name_the_bad_value(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match="zray-test/no-such-musicgen"):
        MusicGenEngine(MusicGenSettings(model="zray-test/no-such-musicgen", device="cpu")).load()
    missing = str(tmp_path / "nowhere")
    with pytest.raises(EngineError, match="nowhere"):
        MusicGenEngine(MusicGenSettings(model=missing)).load()
    with pytest.raises(EngineError, match="nowhere"):
        MusicGenEngine(MusicGenSettings(model=missing)).identity()
    with pytest.raises(EngineError, match="window"):
        MusicGenSettings(window=45)
    with pytest.raises(EngineError, match="window"):
        MusicGenSettings(window=0.2)
    with pytest.raises(EngineError, match="'int8'"):
        MusicGenSettings(dtype="int8")
    with pytest.raises(EngineError, match="banana"):
        MusicGenEngine(MusicGenSettings(device="banana")).load()
    with pytest.raises(EngineError, match="-1"):
        MusicGenEngine().generate(PROMPT, seconds=-1)
    with pytest.raises(EngineError, match=r"music_file 'theme.mp3'.*engines.music = \"library\""):
        MusicGenEngine().generate(PROMPT, seconds=1, file="theme.mp3")
    model, _ = build_tiny_musicgen_components()
    with pytest.raises(EngineError, match="together"):
        MusicGenEngine(model=model)


# -- library -----------------------------------------------------------------------------------------------


def _tone(
    path: Path, frequency: float, *, seconds: float = 0.5, rate: int = 44_100, channels: int = 1
) -> None:
    t = np.arange(round(seconds * rate)) / rate
    wave = 0.3 * np.sin(2 * np.pi * frequency * t)
    soundfile.write(path, np.repeat(wave[:, None], channels, axis=1), rate)


@pytest.fixture
def library(tmp_path: Path) -> Path:
    folder = tmp_path / "music"
    folder.mkdir()
    _tone(folder / "a_morning.wav", 220)
    _tone(folder / "b_evening.flac", 330, rate=48_000, channels=2)
    _tone(folder / "c_night.ogg", 440, seconds=0.75)
    (folder / "notes.txt").write_text("not a track")
    (folder / ".hidden.wav").write_bytes(b"")
    return folder


def library_engine(folder: Path | str, **changes) -> LibraryMusicEngine:
    return LibraryMusicEngine(LibrarySettings(folder=str(folder), **changes))


def test_library_picks_a_track_by_the_prompts_sha256(library: Path) -> None:
    engine = library_engine(library)
    assert isinstance(engine, MusicEngine)
    assert check_engine_class(LibraryMusicEngine, "music") == [] and LibraryMusicEngine.accepts_file
    engine.load()
    names = [track.name for track in engine.tracks()]
    assert names == ["a_morning.wav", "b_evening.flac", "c_night.ogg"]
    prompts = [f"prompt {i}" for i in range(30)]
    for prompt in prompts:
        index = int.from_bytes(hashlib.sha256(prompt.encode()).digest()[:8], "big") % 3
        assert engine.choose(prompt).name == names[index]
        assert library_engine(library).choose(prompt) == engine.choose(prompt)
    assert {engine.choose(prompt).name for prompt in prompts} == set(names)


def test_library_returns_the_whole_track_48k_stereo(library: Path) -> None:
    engine = library_engine(library)
    mono_44k = engine.generate("anything", seconds=60.0, file="a_morning.wav")
    assert mono_44k.shape[0] == 2 and mono_44k.dtype == np.float32
    assert abs(mono_44k.shape[1] - RATE // 2) <= 2  # 0.5 s, resampled, not looped to 60 s
    np.testing.assert_allclose(mono_44k[0], mono_44k[1])
    # The tone survived decoding: its strongest frequency is 220 Hz.
    spectrum = np.abs(np.fft.rfft(mono_44k[0]))
    assert abs(np.argmax(spectrum) * RATE / mono_44k.shape[1] - 220) < 4

    ogg = engine.generate("anything", file="c_night.ogg")
    assert ogg.shape[0] == 2 and abs(ogg.shape[1] - round(0.75 * RATE)) < RATE // 50

    chosen = engine.choose(PROMPT)
    np.testing.assert_array_equal(
        engine.generate(PROMPT, seconds=10), engine.generate(PROMPT, seconds=10, file=chosen.name)
    )


def test_library_errors_name_the_folder_file_and_fix(tmp_path: Path, library: Path) -> None:
    missing = tmp_path / "no-music-here"
    with pytest.raises(EngineError, match=r"no-music-here.*create it"):
        library_engine(missing).generate(PROMPT)
    with pytest.raises(EngineError, match="no-music-here"):
        library_engine(missing).identity()
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("tracks go here")
    with pytest.raises(EngineError, match=r"empty.*has no tracks"):
        library_engine(empty).load()
    engine = library_engine(library)
    with pytest.raises(EngineError, match=r"'d_missing.wav'.*a_morning.wav"):
        engine.generate(PROMPT, file="d_missing.wav")
    with pytest.raises(EngineError, match=r"notes.txt"):
        engine.generate(PROMPT, file="notes.txt")
    with pytest.raises(EngineError, match=r"broken.wav"):
        (library / "broken.wav").write_bytes(b"RIFF....not a wav at all")
        engine.generate(PROMPT, file="broken.wav")
    with pytest.raises(EngineError, match="0"):
        engine.generate(PROMPT, seconds=0)
    with pytest.raises(EngineError, match="folder"):
        LibrarySettings(folder=" ")
    (library / "broken.wav").unlink()
    os.mkfifo(library / "e_pipe.wav")  # would hang the decoder: named as what it is, before any work
    with pytest.raises(EngineError, match=r"e_pipe.wav: it is a named pipe \(FIFO\), not a file"):
        library_engine(library).load()


def test_library_identity_follows_the_folders_listing(library: Path) -> None:
    engine = library_engine(library)
    first = engine.identity()
    assert first["engine"] == "library" and first["folder"] == str(library)
    assert engine.identity() == first
    (library / "notes.txt").write_text("edited, still not a track")
    assert engine.identity() == first

    _tone(library / "d_dawn.wav", 550)
    added = engine.identity()
    assert added != first

    # Same name, same size, new content: the modification time gives it away.
    track = library / "a_morning.wav"
    stat = track.stat()
    _tone(track, 660)
    os.utime(track, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert track.stat().st_size == stat.st_size
    assert engine.identity() != added

    (library / "d_dawn.wav").unlink()
    assert engine.identity() not in (first, added)


def test_library_keys_name_the_folder_as_configured_and_the_chosen_tracks_content(
    library: Path, tmp_path: Path
) -> None:
    """No absolute folder in a key: the same library in another checkout (another node, another
    working directory) gives the same keys; the key of a bed follows the content of its track."""
    here = library_engine("music", base_dir=str(tmp_path))
    elsewhere = tmp_path / "other-checkout"
    shutil.copytree(library, elsewhere / "music")
    there = library_engine("music", base_dir=str(elsewhere))
    assert here.identity_for(PROMPT) == there.identity_for(PROMPT)
    named = here.identity_for(PROMPT, file="b_evening.flac")
    assert named["folder"] == "music" and named["track"] == "b_evening.flac"
    assert str(tmp_path) not in json.dumps([named, here.identity()])

    # An unrelated track added: the named bed keeps its key. Its own track re-recorded: a new key.
    _tone(library / "z_extra.wav", 770)
    assert here.identity_for(PROMPT, file="b_evening.flac") == named
    track = library / "b_evening.flac"
    stat = track.stat()
    _tone(track, 880, rate=48_000, channels=2)
    os.utime(track, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert here.identity_for(PROMPT, file="b_evening.flac")["track_sha256"] != named["track_sha256"]
    with pytest.raises(EngineError, match=r"'nope\.wav'"):
        here.identity_for(PROMPT, file="nope.wav")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_real_musicgen_small_makes_a_looping_bed_on_gpu() -> None:
    from huggingface_hub import try_to_load_from_cache

    if not isinstance(try_to_load_from_cache("facebook/musicgen-small", "config.json"), str):
        pytest.skip("facebook/musicgen-small is not in the Hugging Face cache (tests never download)")
    engine = MusicGenEngine(MusicGenSettings(model="facebook/musicgen-small"))
    bed = engine.generate("calm piano with soft strings, slow tempo", seconds=40.0)  # two 30 s windows
    assert bed.shape == (1, 40 * RATE)
    assert np.isfinite(bed).all()
    rms = float(np.sqrt(np.mean(bed**2)))
    assert 0.01 < rms < 0.5
    steps = np.abs(np.diff(bed, axis=1))
    assert float(np.abs(bed[:, 0] - bed[:, -1]).max()) <= float(np.percentile(steps, 99.9))
