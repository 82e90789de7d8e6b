"""Engine setup: config to engine specs and settings, and everything checked before any work starts,
each problem one line that names the setting responsible."""

from __future__ import annotations

import json
import logging
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
from conftest import needs_extra

from zray.config import load_config
from zray.engines.base import EngineSettings
from zray.engines.espeak import EspeakSettings
from zray.engines.registry import BUILTIN
from zray.errors import ZrayError
from zray.pipeline.engine_setup import (
    SETTINGS_BUILDERS,
    EngineChoice,
    EngineSetup,
    EngineSetupError,
    choose_engines,
    prepare_engines,
    settings_for,
    unserved_languages,
)

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def no_google_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No key in the environment and a working directory without a .env, unless a test sets one."""
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    monkeypatch.chdir(tmp_path)


def config(**flags):  # type: ignore[no-untyped-def]
    return load_config(None, **flags)


def refused(languages: list[str], profile: str = "draft", **flags) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(EngineSetupError) as info:
        prepare_engines(languages, config(**flags), profile)
    message = str(info.value)
    assert "\n" not in message
    return message


# --- the draft default ----------------------------------------------------------------------------


def test_the_draft_setup_and_its_identities() -> None:
    import importlib.metadata

    import PIL

    setup = prepare_engines(["es", "ca", "en"], config(), "draft")
    assert isinstance(setup, EngineSetup) and isinstance(setup, EngineChoice)
    assert (setup.image.name, setup.music.name) == ("storyboard", "ambient")
    assert {lang: spec.name for lang, spec in setup.tts.items()} == {
        "es": "espeak",
        "ca": "espeak",
        "en": "espeak",
    }
    assert setup.tts["es"] is setup.tts["ca"]  # one engine serves every language it speaks
    assert (
        setup.describe()
        == "profile draft: images=storyboard, narration es=espeak, ca=espeak, en=espeak, music=ambient"
    )
    # The run record keeps its shape: engine name -> identity, and tts:<lang> -> that language's.
    espeak = {
        "engine": "espeak-ng",
        "version": "1",
        "model": None,
        "espeakng_loader": importlib.metadata.version("espeakng-loader"),
        "rate": 165,
    }
    assert setup.identities.records() == {
        "storyboard": {
            "engine": "storyboard",
            "version": "2",
            "model": None,
            "font": "pillow-default",
            "pillow": PIL.__version__,
        },
        "ambient": {"engine": "ambient", "version": "1", "model": None, "sample_rate": 48000},
        "espeak": {**espeak, "voices": {"en": "en-us"}},
        "tts:es": {**espeak, "voices": {"es": "es"}},
        "tts:ca": {**espeak, "voices": {"ca": "ca"}},
        "tts:en": {**espeak, "voices": {"en": "en-us"}},
    }
    assert setup.identities.image == setup.identities.records()["storyboard"]
    assert setup.music_identity(prompt="soft pads") == setup.identities.music


def test_the_setup_is_small_picklable_and_holds_no_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOOGLE_API_KEY", "secret-key-8d1f")
    setup = prepare_engines(["es", "ca"], config(engines={"tts": {"ca": "google"}}), "draft")
    shipped = pickle.dumps(setup)
    assert b"secret-key-8d1f" not in shipped and len(shipped) < 10_000
    assert pickle.loads(shipped) == setup
    assert "secret-key-8d1f" not in json.dumps(setup.identities.records())


def test_every_builtin_engine_has_a_settings_builder() -> None:
    assert set(SETTINGS_BUILDERS) == set(BUILTIN)
    cfg = config(voices={"es": "es-419", "ca": "ca"}, speeds={"es": 1.2})
    for name, cls in BUILTIN.items():
        settings = settings_for(name, cfg, ["es"])
        assert isinstance(settings, cls.settings_type), name
        assert json.loads(settings.canonical()) == settings.to_json()
    assert settings_for("espeak", cfg, ["es"]) == EspeakSettings(voices={"es": "es-419"})
    assert settings_for("fault_engines:GatedImageEngine", cfg, []) is None


def test_config_reaches_the_production_settings() -> None:
    cfg = config(
        models={
            "image": "/models/zimage",
            "image_steps": 4,
            "image_memory": "model_offload",
            "vae_tiling": True,
            "image_dtype": "float16",
            "musicgen": "facebook/musicgen-medium",
            "music_window": 20,
            "musicgen_dtype": "float32",
            "device": "cuda:1",
        },
        voices={"es": "em_alex", "ca": "ca-ES-Wavenet-A"},
        speeds={"es": 1.1},
        google_tts={"endpoint": "http://127.0.0.1:9", "retries": 2, "timeout": 5},
    )
    choice = choose_engines(cfg, ["es", "ca"], profile="production")
    assert choice.image.options == {
        "model": "/models/zimage",
        "memory": "model_offload",
        "vae_tiling": True,
        "steps": 4,
        "device": "cuda:1",
        "dtype": "float16",
        "attention": "default",  # speed levers config does not set (yet): the engine's defaults
        "compile": False,
    }
    assert choice.music.options == {
        "model": "facebook/musicgen-medium",
        "window": 20.0,
        "device": "cuda:1",
        "dtype": "float32",
        "method": "auto",
    }
    assert choice.tts["es"].name == "kokoro" and choice.tts["ca"].name == "google"
    assert choice.tts["es"].options["voices"] == {"es": "em_alex"}  # not Catalan's Google voice
    assert choice.tts["es"].options["speeds"] == {"es": 1.1}
    assert choice.tts["ca"].options["voices"] == {"ca": "ca-ES-Wavenet-A"}
    assert choice.tts["ca"].options["endpoint"] == "http://127.0.0.1:9"


# --- identities come from config, never from the planning host -----------------------------------


def test_production_identities_do_not_depend_on_the_planning_hosts_gpu(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    torch = needs_extra("models", "diffusers", "transformers", "torch")
    monkeypatch.setenv("GOOGLE_API_KEY", "k")

    def identities() -> dict:
        return prepare_engines(["es", "ca"], config(), "production").identities.records()

    head = identities()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a GPU worker plans the same
    assert identities() == head
    assert head["zimage"]["dtype"] == "bfloat16" and "dtype" not in head["musicgen"]
    on_cpu = prepare_engines(["es"], config(models={"device": "cpu"}), "production").identities
    assert (on_cpu.image["dtype"], on_cpu.music["dtype"]) == ("float32", "float32")


def test_the_library_key_names_the_folder_as_configured(tmp_path: Path) -> None:
    folder = tmp_path / "inputs" / "music"
    folder.mkdir(parents=True)
    soundfile.write(folder / "theme.wav", np.zeros((4800, 2), np.float32), 48_000)
    setup = prepare_engines(["es"], config(engines={"music": "library"}), "draft")
    records = json.dumps(setup.identities.records())
    assert str(tmp_path) not in records
    assert setup.identities.music["folder"] == "inputs/music"
    bed = setup.music_identity(prompt="calm", file="theme.wav")
    assert (bed["folder"], bed["track"]) == ("inputs/music", "theme.wav") and bed["track_sha256"]
    assert str(tmp_path) not in json.dumps(bed)
    # An actor in another working directory still finds the folder.
    os.chdir(REPO)
    assert setup.music.create().choose("calm").name == "theme.wav"


# --- one line for each thing a user can get wrong -------------------------------------------------


@pytest.mark.parametrize("target", ["json:dumps", "os:getcwd"])
def test_a_module_path_that_is_no_engine_is_one_line_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, target: str
) -> None:
    monkeypatch.setenv("ZRAY_ENGINES__IMAGE", target)
    assert refused(["es"]) == (
        f"engines.image = '{target}': engine '{target}' is not an image engine: it is a function, not a class"
    )


def test_an_unknown_engine_name_or_role_is_one_line() -> None:
    assert refused(["es"], engines={"music": "musicbox"}).startswith(
        "engines.music = 'musicbox': unknown engine 'musicbox'; known: ambient, espeak"
    )
    assert refused(["es"], engines={"tts": {"es": "storyboard"}}) == (
        "engines.tts.es = 'storyboard': engine 'storyboard' makes image, not tts"
    )
    with pytest.raises(EngineSetupError, match="profile must be draft or production, not 'auto'"):
        choose_engines(config(), ["es"], profile="auto")


def test_a_language_no_voice_engine_speaks_is_one_line() -> None:
    assert refused(["xx"]) == (
        "profile draft's xx voice engine espeak: the espeak engine has no voice for language 'xx'; "
        "set engines.tts.xx to another engine or run with --lang to skip it"
    )
    needs_extra("models", "kokoro")
    assert refused(["ca"], engines={"tts": {"ca": "kokoro"}}, models={"device": "cpu"}) == (
        "engines.tts.ca = 'kokoro': the kokoro engine has no voice for language 'ca'; "
        "set engines.tts.ca to another engine or run with --lang to skip it"
    )
    assert unserved_languages(["es", "xx"], config(), "draft") == {"xx": refused(["xx"])}


def test_an_unknown_voice_name_is_one_line_naming_voices_lang() -> None:
    message = refused(["es", "en"], voices={"en": "eng-us"})
    assert message.startswith("voices.en = 'eng-us': espeak-ng has no voice 'eng-us' (similar: en-us")
    needs_extra("models", "kokoro")
    assert refused(["es"], "production", voices={"es": "ef_dorra"}) == (
        "voices.es = 'ef_dorra': Kokoro has no voice 'ef_dorra' (similar: ef_dora, pf_dora; its es voices: "
        "ef_dora, em_alex, em_santa; 54 in all, see hexgrad/Kokoro-82M's VOICES.md)"
    )


def test_a_google_voice_name_of_the_wrong_form_names_its_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOOGLE_API_KEY", "k")
    assert refused(["ca"], engines={"tts": {"ca": "google"}}, voices={"ca": "ca"}) == (
        "voices.ca = 'ca': Google TTS voice 'ca' is not a Google voice name like 'ca-ES-Standard-B'"
    )
    assert refused(["ca"], engines={"tts": {"ca": "google"}}, google_tts={"voices": {"ca": "catalan"}}) == (
        "google_tts.voices.ca = 'catalan': Google TTS voice 'catalan' is not a Google voice name like "
        "'ca-ES-Standard-B'"
    )


def test_without_a_google_key_the_fallback_narrates_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="zray")
    setup = prepare_engines(["es", "ca"], config(engines={"tts": {"ca": "google"}}), "draft")
    assert setup.tts["ca"].name == "espeak" and setup.origins["tts:ca"] == "google_tts.fallback"
    assert "GOOGLE_API_KEY is not set: narrating ca with espeak" in caplog.text
    assert refused(["ca"], engines={"tts": {"ca": "google"}}, google_tts={"fallback": ""}) == (
        "GOOGLE_API_KEY is not set (environment or .env) and Google Cloud TTS voices ca; "
        'set it, or set google_tts.fallback = "espeak"'
    )
    assert refused(["ca"], engines={"tts": {"ca": "google"}}, google_tts={"fallback": "storyboard"}) == (
        "google_tts.fallback = 'storyboard': engine 'storyboard' makes image, not tts"
    )


def test_a_music_file_the_engine_cannot_play_is_one_line_before_any_work(tmp_path: Path) -> None:
    setup = prepare_engines(["es"], config(), "draft")
    setup.check_music_file(None)
    with pytest.raises(EngineSetupError) as info:
        setup.check_music_file("theme.mp3")
    assert str(info.value) == (
        "music_file 'theme.mp3': the ambient music engine (profile draft) makes its own music and cannot "
        'play a file; set engines.music = "library" with the track in library.folder, or remove music_file '
        "from the script"
    )
    folder = tmp_path / "inputs" / "music"
    folder.mkdir(parents=True)
    soundfile.write(folder / "theme.wav", np.zeros((480, 2), np.float32), 48_000)
    library = prepare_engines(["es"], config(engines={"music": "library"}), "draft")
    library.check_music_file("theme.wav")
    with pytest.raises(
        EngineSetupError, match=r"^music_file 'theme.mp3': music file 'theme.mp3' is not a track"
    ):
        library.check_music_file("theme.mp3")


def test_a_missing_library_folder_is_one_line_naming_the_setting() -> None:
    assert refused(["es"], engines={"music": "library"}).startswith(
        "engines.music = 'library': library music folder 'inputs/music' does not exist"
    )


def test_errors_are_zray_errors() -> None:
    assert issubclass(EngineSetupError, ZrayError)


# --- a base install: no torch, no models extra ----------------------------------------------------

PRELUDE = (
    "import sys\n"
    "for name in ('torch', 'diffusers', 'transformers', 'kokoro', 'accelerate'):\n"
    "    sys.modules[name] = None\n"
    "from zray.config import load_config\n"
    "from zray.pipeline.engine_setup import prepare_engines\n"
)


def run_base(code: str, tmp_path: Path) -> str:
    result = subprocess.run(
        [sys.executable, "-c", PRELUDE + code], capture_output=True, text=True, cwd=tmp_path, env=os.environ
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_a_base_install_asking_for_production_is_told_which_extra_to_install(tmp_path: Path) -> None:
    out = run_base(
        "try:\n"
        "    prepare_engines(['es'], load_config(None), 'production')\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__, exc)\n",
        tmp_path,
    )
    assert out == (
        "EngineSetupError profile production's image engine zimage: the zimage engine needs torch, diffusers, "
        "transformers, which are not installed: pip install 'zray[models]'"
    )
    # Joining a cluster whose workers hold the models: this machine plans without them, and the
    # identities need no torch.
    planned = run_base(
        "setup = prepare_engines(['es'], load_config(None, address='ray://head:10001'), 'production')\n"
        "print(setup.identities.image['dtype'], setup.tts['es'].name)\n",
        tmp_path,
    )
    assert planned == "bfloat16 kokoro"


def test_engine_settings_base_is_empty() -> None:
    assert EngineSettings().to_json() == {}
