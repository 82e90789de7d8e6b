"""The engine interface and registry: what an engine must declare, how a `module:Class` engine is held to
its role before use, the error boundary, and what importing engines costs."""

from __future__ import annotations

import pickle
import subprocess
import sys
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pytest
from PIL import Image

from zray.engines import registry
from zray.engines.ambient import AmbientMusicEngine, AmbientSettings
from zray.engines.base import (
    BaseEngine,
    EngineError,
    EngineSettings,
    Synthesis,
    WordTiming,
    check_engine_class,
)
from zray.engines.espeak import EspeakSettings
from zray.engines.registry import BUILTIN, ENGINES, GPU_ENGINES, EngineSpec, engine_class
from zray.engines.storyboard import StoryboardImageEngine
from zray.errors import ZrayError
from zray.media import words


class PlainImageEngine:
    """An image engine that subclasses nothing: the interface is structural."""

    name: ClassVar[str] = "plain"
    role: ClassVar[str] = "image"
    uses_gpu: ClassVar[bool] = False
    settings_type = EngineSettings

    @classmethod
    def from_settings(cls, settings: Any) -> PlainImageEngine:
        return cls()

    def load(self) -> None:
        pass

    def identity(self) -> dict[str, Any]:
        return {"engine": "plain", "version": "1"}

    def generate(self, prompt: str, *, width: int, height: int, seed: int, label: str = "") -> Image.Image:
        return Image.new("RGB", (width, height))


class PositionalSizes(PlainImageEngine):
    def generate(self, prompt, width, height, seed, label=""):  # type: ignore[override]
        return super().generate(prompt, width=width, height=height, seed=seed)


class WantsMore(PlainImageEngine):
    def generate(self, prompt, *, width, height, seed, label="", style):  # type: ignore[override]
        return super().generate(prompt, width=width, height=height, seed=seed)


class OldMusic(BaseEngine):
    """A music engine from before `file`: it would crash on a script's music_file."""

    name: ClassVar[str] = "old"
    role: ClassVar[str] = "music"
    accepts_file: ClassVar[bool] = False

    def load(self) -> None:
        pass

    def identity(self) -> dict[str, Any]:
        return {}

    def identity_for(self, prompt: str, *, file: str | None = None) -> dict[str, Any]:
        return {}

    def generate(self, prompt: str, *, seconds: float) -> np.ndarray:  # type: ignore[override]
        return np.zeros((2, 1), dtype=np.float32)


def test_every_builtin_engine_fits_its_role_and_declares_itself() -> None:
    for name, cls in BUILTIN.items():
        assert cls.name == name
        assert check_engine_class(cls, cls.role) == [], name
        assert ENGINES[name] == (cls.role, f"{cls.__module__}:{cls.__name__}")
    assert sorted(GPU_ENGINES) == ["kokoro", "musicgen", "wan", "zimage"]
    # The names and targets the pipeline knew before the classes declared them.
    assert ENGINES == {
        "storyboard": ("image", "zray.engines.storyboard:StoryboardImageEngine"),
        "espeak": ("tts", "zray.engines.espeak:EspeakTTSEngine"),
        "ambient": ("music", "zray.engines.ambient:AmbientMusicEngine"),
        "zimage": ("image", "zray.engines.zimage:ZImageEngine"),
        "kokoro": ("tts", "zray.engines.kokoro:KokoroTTSEngine"),
        "google": ("tts", "zray.engines.google_tts:GoogleTTSEngine"),
        "musicgen": ("music", "zray.engines.musicgen:MusicGenEngine"),
        "library": ("music", "zray.engines.library:LibraryMusicEngine"),
        "parallax": ("video", "zray.engines.parallax:ParallaxVideoEngine"),
        "wan": ("video", "zray.engines.wan:WanVideoEngine"),
    }


def test_a_structural_engine_and_a_subclass_of_a_builtin_are_accepted() -> None:
    assert check_engine_class(PlainImageEngine, "image") == []
    assert check_engine_class(PositionalSizes, "image") == []  # keywords reach positional parameters
    assert engine_class(f"{__name__}:PlainImageEngine", "image") is PlainImageEngine
    assert engine_class("fault_engines:GatedImageEngine", "image").__name__ == "GatedImageEngine"


@pytest.mark.parametrize(
    ("target", "role", "message"),
    [
        ("json:dumps", "image", "engine 'json:dumps' is not an image engine: it is a function, not a class"),
        ("os:getcwd", "tts", "engine 'os:getcwd' is not a tts engine: it is a function, not a class"),
        ("json:Nope", "music", "engine 'json:Nope': json has no Nope"),
        (
            "zray.engines.storyboard:StoryboardImageEngine",
            "tts",
            "engine 'zray.engines.storyboard:StoryboardImageEngine' is not a tts engine: it is an image engine",
        ),
        ("espeak", "image", "engine 'espeak' makes tts, not image"),
        (
            "nowhere",
            "image",
            "unknown engine 'nowhere'; known: ambient, espeak, google, kokoro, library, musicgen, parallax, "
            "storyboard, wan, zimage, or module:Class",
        ),
        (
            f"{__name__}:WantsMore",
            "image",
            f"engine '{__name__}:WantsMore' is not an image engine: it lacks "
            "generate(prompt, *, width, height, seed, label='')",
        ),
        (
            f"{__name__}:OldMusic",
            "music",
            f"engine '{__name__}:OldMusic' is not a music engine: it lacks "
            "generate(prompt, *, seconds, file=None)",
        ),
    ],
)
def test_anything_else_is_refused_in_one_line(target: str, role: str, message: str) -> None:
    with pytest.raises(EngineError) as info:
        engine_class(target, role)
    assert str(info.value) == message


def test_a_module_that_fails_to_import_is_one_line(tmp_path, monkeypatch) -> None:
    (tmp_path / "broken_engines.py").write_text("raise RuntimeError('boom\\nsecond line')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(EngineError) as info:
        engine_class("broken_engines:Thing", "image")
    assert (
        str(info.value)
        == "engine 'broken_engines:Thing': cannot import broken_engines (RuntimeError: boom second line)"
    )
    with pytest.raises(EngineError, match=r"cannot import no_such_module \(ModuleNotFoundError"):
        engine_class("no_such_module:Thing", "image")


def test_a_class_missing_everything_is_told_what_it_lacks() -> None:
    problems = check_engine_class(dict, "tts")
    assert problems == [
        "class attribute name (str)",
        "class attribute role (str)",
        "class attribute uses_gpu (bool)",
        "class attribute settings_type (a dataclass)",
        "from_settings(settings)",
        "load()",
        "identity()",
        "supports(lang)",
        "check_voice(lang)",
        "identity_for(lang)",
        "synthesize(text, *, lang)",
    ]


def test_engine_error_is_a_zray_error_and_one_line() -> None:
    error = EngineError("first\nsecond")
    assert isinstance(error, ZrayError)
    assert str(error) == "first second"


def test_only_engine_error_leaves_an_engine() -> None:
    class Fragile(StoryboardImageEngine):
        def generate(self, prompt, *, width, height, seed, label=""):
            raise ZeroDivisionError("division by zero in a library")

        def identity(self):
            raise KeyError("font")

    with pytest.raises(EngineError) as info:
        Fragile().generate("x", width=32, height=32, seed=1)
    assert (
        str(info.value)
        == "the storyboard engine failed in generate: ZeroDivisionError: division by zero in a library"
    )
    assert isinstance(info.value.__cause__, ZeroDivisionError)
    with pytest.raises(EngineError, match=r"failed in identity: KeyError: 'font'"):
        Fragile().identity()
    # An EngineError passes through unchanged.
    with pytest.raises(EngineError, match=r"^storyboard width"):
        StoryboardImageEngine().generate("x", width=3, height=32, seed=1)


def test_settings_are_checked_by_type_and_are_json() -> None:
    with pytest.raises(EngineError, match="takes AmbientSettings, not EspeakSettings"):
        AmbientMusicEngine(EspeakSettings())  # type: ignore[arg-type]
    settings = EspeakSettings(voices={"es": "es-419"}, rate=180)
    assert EspeakSettings.from_json(settings.to_json()) == settings
    with pytest.raises(EngineError, match="has no setting colour"):
        EspeakSettings.from_json({"colour": "red"})
    assert AmbientMusicEngine.from_settings(AmbientSettings(sample_rate=44_100)).sample_rate == 44_100


def test_specs_are_small_picklable_hashable_and_build_their_engine() -> None:
    spec = EngineSpec("espeak", "tts", EspeakSettings(voices={"es": "es-419"}))
    same = EngineSpec("espeak", "tts", EspeakSettings(voices={"es": "es-419"}))
    assert spec == same and hash(spec) == hash(same)
    assert spec != EngineSpec("espeak", "tts", EspeakSettings())
    shipped = pickle.dumps(spec)
    assert len(shipped) < 1_000 and pickle.loads(shipped) == spec
    engine = spec.create()
    assert engine.voice_for("es") == "es-419"
    assert spec.options == {"voices": {"es": "es-419"}, "rate": 165}
    assert not spec.uses_gpu and EngineSpec("zimage", "image").uses_gpu
    custom = EngineSpec("fault_engines:GatedImageEngine", "image")
    assert custom.create().identity()["engine"] == "storyboard"  # a custom engine takes its defaults


def test_profiles_and_choices() -> None:
    from zray.engines.registry import KOKORO_LANGUAGES, PROFILES
    from zray.pipeline.engine_setup import EngineChoice, choose_engines

    assert PROFILES["draft"] == {
        "image": "storyboard",
        "tts": "espeak",
        "music": "ambient",
        "video": "parallax",
    }
    assert {"en", "en-us", "en-gb", "es", "pt-br", "zh"} <= KOKORO_LANGUAGES and "ca" not in KOKORO_LANGUAGES
    from zray.config import load_config

    choice = choose_engines(load_config(None), ["es"], profile="draft")
    assert isinstance(choice, EngineChoice) and choice.image.name == "storyboard"
    with pytest.raises(AttributeError):
        registry.no_such_name  # noqa: B018


def test_engines_word_timing_is_the_media_one() -> None:
    assert WordTiming is words.WordTiming
    speech = Synthesis(
        samples=np.zeros((1, 10), np.float32), sample_rate=10, words=[WordTiming("a", 0.0, 0.5)]
    )
    assert speech.seconds == 1.0 and speech.words[0].word == "a"


def test_importing_every_engine_loads_no_pyav_torch_scipy_ray_or_config() -> None:
    code = (
        "import sys\n"
        "import zray.engines.registry\n"
        "heavy = ('av', 'torch', 'scipy', 'ray', 'diffusers', 'transformers', 'kokoro', 'zray.config', 'pydantic')\n"
        "print(*[name for name in heavy if name in sys.modules])\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""


def test_draft_engines_run_where_pyav_is_not_installed() -> None:
    """A GPU benchmark loads engines where PyAV is absent: no engine may need it."""
    code = (
        "import sys\n"
        "sys.modules['av'] = None\n"
        "from zray.engines.registry import BUILTIN\n"
        "from zray.engines.ambient import AmbientMusicEngine\n"
        "from zray.engines.espeak import EspeakTTSEngine\n"
        "from zray.engines.storyboard import StoryboardImageEngine\n"
        "StoryboardImageEngine().generate('x', width=32, height=32, seed=1)\n"
        "EspeakTTSEngine().synthesize('Hola.', lang='es')\n"
        "AmbientMusicEngine().generate('x', seconds=0.5)\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "ok", result.stderr


@dataclass(frozen=True)
class _Nothing(EngineSettings):
    pass


def test_an_engine_without_settings_uses_the_empty_settings() -> None:
    assert PlainImageEngine.settings_type is EngineSettings
    assert EngineSpec(f"{__name__}:PlainImageEngine", "image").create().identity()["engine"] == "plain"
    assert _Nothing().to_json() == {} and _Nothing().canonical() == "{}"
