"""The engine interface: what an image, voice or music engine is, and the plumbing zray's own share.

An engine is a plain class (never Ray) that declares, as class attributes, its `name`, its `role`
("image", "tts", "music" or "video"), whether it `uses_gpu`, the Python modules it `requires` to load, and
its `settings_type` (a frozen dataclass of JSON values, never a secret). It is built with
`from_settings(settings)`; `load()` is lazy and idempotent; `identity()` is a JSON-able dict of
everything that changes its output, derived from its settings alone (never from the machine that
happens to compute it), which the pipeline hashes into cache keys. Audio is float32 numpy of shape
(channels, n); mono is (1, n).

Only `EngineError` leaves an engine: `BaseEngine` wraps every public method of its subclasses so
that a library's exception becomes one line naming the engine and what it was doing. An engine
named as `module:Class` need not subclass anything; `check_engine_class` holds it to the interface
of its role (the protocols below) before it is used.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.util
import inspect
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, TypeVar, runtime_checkable

import numpy as np
from PIL import Image

from zray.errors import ZrayError
from zray.media.words import WordTiming

__all__ = [
    "ROLES",
    "BaseEngine",
    "EngineError",
    "EngineSettings",
    "ImageEngine",
    "MusicEngine",
    "Synthesis",
    "TTSEngine",
    "VideoEngine",
    "WordTiming",
    "check_engine_class",
    "seed_from",
]

ROLES = ("image", "tts", "music", "video")


class EngineError(ZrayError):
    """An engine could not produce an artifact (unsupported language, missing voice, bad model)."""


@dataclass
class Synthesis:
    """Speech from a TTS engine: mono float32 samples of shape (1, n) at `sample_rate`."""

    samples: np.ndarray
    sample_rate: int
    words: list[WordTiming] | None = None

    @property
    def seconds(self) -> float:
        return self.samples.shape[-1] / self.sample_rate


S = TypeVar("S", bound="EngineSettings")


@dataclass(frozen=True)
class EngineSettings:
    """Base of every engine's settings: frozen, JSON values only, no secrets (settings travel to
    Ray actors and into run records). An engine with nothing to set uses this class itself."""

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls: type[S], data: Mapping[str, Any]) -> S:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise EngineError(
                f"{cls.__name__} has no setting {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        return cls(**data)

    def canonical(self) -> str:
        """Canonical JSON: equal settings give equal text (settings hold dicts, so they hash by this)."""
        return json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"), default=str)


# --- the interface, one protocol per role ---------------------------------------------------------


@runtime_checkable
class Engine(Protocol):
    name: ClassVar[str]
    role: ClassVar[str]
    uses_gpu: ClassVar[bool]
    settings_type: ClassVar[type[EngineSettings]]

    @classmethod
    def from_settings(cls, settings: Any) -> Any: ...

    def load(self) -> None: ...

    def identity(self) -> dict[str, Any]: ...


@runtime_checkable
class ImageEngine(Engine, Protocol):
    def generate(
        self, prompt: str, *, width: int, height: int, seed: int, label: str = ""
    ) -> Image.Image: ...


@runtime_checkable
class TTSEngine(Engine, Protocol):
    def supports(self, lang: str) -> bool:
        """Whether this engine can speak `lang` at all (cheap; loads no model)."""
        ...

    def check_voice(self, lang: str) -> None:
        """EngineError naming the voice when the one configured for `lang` does not exist, listing
        the known voices when the engine can; cheap (loads no model), called before any work."""
        ...

    def identity_for(self, lang: str) -> dict[str, Any]:
        """What decides one language's audio: `identity()` without other languages' voices."""
        ...

    def synthesize(self, text: str, *, lang: str) -> Synthesis: ...


@runtime_checkable
class MusicEngine(Engine, Protocol):
    """Returns stereo or mono float32 (channels, n) at 48 kHz.

    `file` is a script's `music_file`: a track an engine with `accepts_file` uses (the library);
    the others refuse it with an EngineError, and engine setup refuses it before any work.
    """

    accepts_file: ClassVar[bool]

    def identity_for(self, prompt: str, *, file: str | None = None) -> dict[str, Any]:
        """What decides the bed for this prompt and file (for most engines, `identity()`)."""
        ...

    def generate(self, prompt: str, *, seconds: float, file: str | None = None) -> np.ndarray: ...


@runtime_checkable
class VideoEngine(Engine, Protocol):
    """A clip that starts from a picture: `frames` uint8 RGB arrays shaped (height, width, 3), at
    24 frames a second (`zray.media.generated.CLIP_FPS`), in order, the first being the picture
    cover-fitted to width x height. An array of all of them is such an iterable; the draft engine
    yields them one at a time.

    `prompt` says how the picture should move; `seed` makes it reproducible; `frames` is 4n + 1
    (`zray.media.generated.clip_frames`, as Wan needs). `layers` is (prompt, seed, label) of the
    storyboard card the picture is, when the draft image engine drew it: the parallax engine
    rebuilds the card's layers from it. Other engines ignore it.
    """

    def generate(
        self,
        image: Image.Image,
        prompt: str,
        *,
        width: int,
        height: int,
        frames: int,
        seed: int,
        layers: tuple[str, int, str] | None = None,
    ) -> Iterable[np.ndarray]: ...


INTERFACES: dict[str, type] = {
    "image": ImageEngine,
    "tts": TTSEngine,
    "music": MusicEngine,
    "video": VideoEngine,
}
_CLASS_ATTRIBUTES: dict[str, dict[str, type]] = {
    "image": {"name": str, "role": str, "uses_gpu": bool},
    "video": {"name": str, "role": str, "uses_gpu": bool},
    "tts": {"name": str, "role": str, "uses_gpu": bool},
    "music": {"name": str, "role": str, "uses_gpu": bool, "accepts_file": bool},
}


def check_engine_class(cls: Any, role: str) -> list[str]:
    """What keeps `cls` from being an engine of `role`, as short phrases; empty when it is one.

    Checked: a class; its class attributes (name, role, uses_gpu, settings_type, and for music
    accepts_file); and every method of the role's protocol, present and callable with the
    protocol's arguments (each positional one by position, each keyword-only one by name, and no
    other required argument).
    """
    if role not in INTERFACES:
        return [f"role must be one of {', '.join(ROLES)}, not {role!r}"]
    if not inspect.isclass(cls):
        kind = "a function" if callable(cls) else f"a {type(cls).__name__}"
        return [f"it is {kind}, not a class"]
    declared = getattr(cls, "role", None)
    if declared in INTERFACES and declared != role:
        return [f"it is {'an' if declared == 'image' else 'a'} {declared} engine"]
    problems: list[str] = []
    for attribute, kind in _CLASS_ATTRIBUTES[role].items():
        value = getattr(cls, attribute, None)
        if not isinstance(value, kind) or (kind is str and not value):
            problems.append(f"class attribute {attribute} ({kind.__name__})")
    settings_type = getattr(cls, "settings_type", None)
    if not (inspect.isclass(settings_type) and dataclasses.is_dataclass(settings_type)):
        problems.append("class attribute settings_type (a dataclass)")
    protocol = INTERFACES[role]
    for method_name in _protocol_methods(protocol):
        reference = inspect.signature(getattr(protocol, method_name))
        candidate = getattr(cls, method_name, None)
        if not callable(candidate) or not _fits(candidate, reference, bound=method_name != "from_settings"):
            problems.append(f"{method_name}{_describe(reference)}")
    return problems


def _protocol_methods(protocol: type) -> list[str]:
    names: list[str] = []
    for klass in reversed(protocol.__mro__):
        for name, value in vars(klass).items():
            if name.startswith("_") or name in names:
                continue
            if inspect.isfunction(value) or isinstance(value, classmethod):
                names.append(name)
    return names


def _fits(candidate: Callable[..., Any], reference: inspect.Signature, *, bound: bool) -> bool:
    """Whether `candidate` accepts every call `reference` allows (self dropped from both)."""
    try:
        signature = inspect.signature(candidate)
    except (TypeError, ValueError):
        return False
    params = list(signature.parameters.values())
    wanted = [p for p in reference.parameters.values() if p.name not in ("self", "cls")]
    if bound and inspect.isfunction(candidate):  # a plain function on the class: drop its self
        if not params or params[0].kind not in (params[0].POSITIONAL_ONLY, params[0].POSITIONAL_OR_KEYWORD):
            return False
        params = params[1:]
    by_name = {p.name: p for p in params}
    var_positional = any(p.kind is p.VAR_POSITIONAL for p in params)
    var_keyword = any(p.kind is p.VAR_KEYWORD for p in params)
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    used: set[str] = set()
    index = 0
    for want in wanted:
        if want.kind in (want.POSITIONAL_ONLY, want.POSITIONAL_OR_KEYWORD):
            if index < len(positional):
                used.add(positional[index].name)
                index += 1
            elif not var_positional:
                return False
        else:  # keyword-only in the interface
            have = by_name.get(want.name)
            if have is not None and have.kind in (have.KEYWORD_ONLY, have.POSITIONAL_OR_KEYWORD):
                used.add(have.name)
            elif not var_keyword:
                return False
    # Nothing else may be required: the pipeline passes only what the interface names.
    return all(
        p.name in used or p.default is not p.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        for p in params
    )


def _describe(signature: inspect.Signature) -> str:
    params = [
        p.replace(annotation=p.empty) for p in signature.parameters.values() if p.name not in ("self", "cls")
    ]
    return str(signature.replace(parameters=params, return_annotation=inspect.Signature.empty))


# --- the plumbing of zray's own engines -----------------------------------------------------------

# Public methods whose library exceptions become EngineError (see BaseEngine.__init_subclass__).
_GUARDED = (
    "load",
    "identity",
    "identity_for",
    "supports",
    "check_voice",
    "synthesize",
    "generate",
    "generate_many",
)


class BaseEngine:
    """What zray's engines share: settings, `from_settings`, pickling, and the error boundary.

    Subclassing it is optional (the interface is structural), but it keeps the promise that only
    `EngineError` leaves an engine: every public interface method a subclass defines is wrapped
    so that any other exception becomes an EngineError naming the engine and the method, with the
    original as its cause (for the log file). Pickling carries the settings only, never a loaded
    or injected model: Ray ships engines to actors, which load their own.
    """

    name: ClassVar[str] = ""
    role: ClassVar[str] = ""
    uses_gpu: ClassVar[bool] = False
    # Top-level modules `load()` imports; engine setup names the extra to install when one is missing.
    requires: ClassVar[tuple[str, ...]] = ()
    install_hint: ClassVar[str] = "pip install 'zray[models]'"
    settings_type: ClassVar[type[EngineSettings]] = EngineSettings
    # False for engines whose exceptions may carry a secret (a URL with an API key): no cause kept.
    _chain_failures: ClassVar[bool] = True

    def __init__(self, settings: EngineSettings | None = None) -> None:
        if settings is None:
            settings = self.settings_type()
        if not isinstance(settings, self.settings_type):
            raise EngineError(
                f"the {self.name} engine takes {self.settings_type.__name__}, not {type(settings).__name__}"
            )
        self.settings = settings

    @classmethod
    def from_settings(cls, settings: EngineSettings | None = None) -> Any:
        return cls(settings)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for method_name in _GUARDED:
            method = cls.__dict__.get(method_name)
            if inspect.isfunction(method) and not getattr(method, "_engine_boundary", False):
                setattr(cls, method_name, _boundary(method))

    def __getstate__(self) -> dict[str, Any]:
        return {"settings": self.settings}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["settings"])  # type: ignore[misc]

    def _failure(self, method: str, exc: Exception) -> str:
        return f"the {self.name} engine failed in {method}: {describe_exception(exc)}"


def _boundary(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def guarded(self: BaseEngine, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except EngineError:
            raise
        except Exception as exc:
            error = EngineError(self._failure(method.__name__, exc))
            if self._chain_failures:
                raise error from exc
            raise error from None

    guarded._engine_boundary = True  # type: ignore[attr-defined]
    return guarded


def missing_modules(modules: tuple[str, ...] | list[str]) -> list[str]:
    """The modules of `modules` that cannot be imported here (found without importing them)."""
    missing = []
    for module in modules:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(module)
    return missing


def requirement_problem(engine: Any) -> str | None:
    """Which of an engine class's (or instance's) `requires` are missing, with the fix; None if none."""
    missing = missing_modules(tuple(getattr(engine, "requires", ())))
    if not missing:
        return None
    verb = "is" if len(missing) == 1 else "are"
    hint = getattr(engine, "install_hint", "") or "install them"
    return f"the {engine.name} engine needs {', '.join(missing)}, which {verb} not installed: {hint}"


def require(engine: Any) -> None:
    """EngineError with the install command when a module the engine's `load()` needs is missing."""
    problem = requirement_problem(engine)
    if problem:
        raise EngineError(problem)


def describe_exception(exc: BaseException) -> str:
    """`Type: first line of the message`, for one-line errors that wrap a library's exception."""
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def seed_from(*parts: str) -> int:
    """A stable unsigned 32-bit seed from strings.

    sha256 over a JSON list, so ("ab", "c") and ("a", "bc") differ and the value is the same in every
    process (Python's hash() is salted per process).
    """
    payload = json.dumps(list(parts), ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return int.from_bytes(hashlib.sha256(payload).digest()[:4], "big")
