"""Narration with espeak-ng: the draft profile's TTS engine, CPU-only and offline.

espeak-ng comes from the `espeakng-loader` wheel (its shared library and voice data), driven through
ctypes. The library keeps global state: one callback, one voice, and wave-generator state (pitch
flutter, phase) that carries from one utterance into the next, so the same text comes out a few
milliseconds different each time. Each synthesis therefore loads the library afresh, speaks, and
unloads it (about 5 ms), under one process-wide lock. It loads a private copy of the library: dlopen
hands every user of one file the same instance, and kokoro's phonemizer also loads espeak-ng in this
process. The copy lives in an anonymous in-memory file (memfd) where Linux has them, so nothing is left
on disk however the process ends (a Ray actor is killed, not exited); elsewhere it is one file in the
user's cache, shared by every run.
"""

from __future__ import annotations

import _ctypes
import bisect
import ctypes
import difflib
import functools
import hashlib
import importlib.metadata
import os
import re
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from zray.engines.base import BaseEngine, EngineError, EngineSettings, Synthesis, WordTiming
from zray.engines.text import bare_word, normalize_language

ENGINE_VERSION = "1"
DEFAULT_RATE = 165
MIN_RATE, MAX_RATE = 80, 450
# Voices that differ from the language code; American English is the narration default.
DEFAULT_VOICES = {"en": "en-us"}

# espeak-ng's speak_lib.h
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_PARAM_RATE = 1
_EVENT_LIST_TERMINATED = 0
_EVENT_WORD = 1
_EE_OK = 0
_RAND_SEED = 1
_SSML = 0x10
_TAG = re.compile(r"<[^<>]*>")


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", ctypes.c_char * 8),
    ]


class _Voice(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        # Not c_char_p: a sequence of (priority byte, NUL-terminated name) ending with a zero byte.
        ("languages", ctypes.c_void_p),
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)


class _Espeak:
    """One loaded, initialized espeak-ng. Use through `_fresh_espeak()`, which holds the lock."""

    def __init__(self, library: Path, data_path: str) -> None:
        self.lib = ctypes.CDLL(str(library))
        self._declare()
        rate = self.lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path.encode(), _INITIALIZE_DONT_EXIT
        )
        if rate <= 0:
            self.close()
            raise EngineError(f"espeak-ng failed to initialize with its data at {data_path}")
        self.sample_rate: int = rate
        self._chunks: list[np.ndarray] = []
        self._words: list[tuple[int, int, int]] = []
        # Kept on the instance: ctypes does not keep a callback alive, and espeak calls it later.
        self._callback = _SynthCallback(self._on_audio)
        self.lib.espeak_SetSynthCallback(self._callback)

    def _declare(self) -> None:
        lib = self.lib
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_ListVoices.argtypes = [ctypes.c_void_p]
        lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_Voice))
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetVoiceByProperties.argtypes = [ctypes.POINTER(_Voice)]
        lib.espeak_SetVoiceByProperties.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        lib.espeak_ng_SetRandSeed.restype = None
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Synchronize.argtypes = []
        lib.espeak_Synchronize.restype = ctypes.c_int
        lib.espeak_Terminate.argtypes = []
        lib.espeak_Terminate.restype = ctypes.c_int

    def close(self) -> None:
        self.lib.espeak_Terminate()
        # Unloading drops the library's statics, so the next load starts from the same state.
        if sys.platform == "win32":
            _ctypes.FreeLibrary(self.lib._handle)  # type: ignore[attr-defined]
        else:
            _ctypes.dlclose(self.lib._handle)  # type: ignore[attr-defined]

    def list_languages(self) -> frozenset[str]:
        languages: set[str] = set()
        voices = self.lib.espeak_ListVoices(None)
        index = 0
        while voices[index]:
            address = voices[index].contents.languages
            offset = 0
            while address and ctypes.c_ubyte.from_address(address + offset).value != 0:
                name = ctypes.string_at(address + offset + 1)
                languages.add(name.decode("utf-8").lower())
                offset += len(name) + 2
            index += 1
        return frozenset(languages)

    def list_voice_files(self) -> frozenset[str]:
        """Voice file names (`es`, `en-us`, `ca`): what voice settings usually name."""
        files: set[str] = set()
        voices = self.lib.espeak_ListVoices(None)
        index = 0
        while voices[index]:
            identifier = voices[index].contents.identifier
            if identifier:
                files.add(identifier.decode("utf-8").rsplit("/", 1)[-1].lower())
            index += 1
        return frozenset(files)

    def has_voice(self, voice: str) -> bool:
        try:
            self._select_voice(voice)
        except EngineError:
            return False
        return True

    def _on_audio(self, wav: Any, count: int, events: Any) -> int:
        if count > 0 and wav:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
        index = 0
        while events[index].type != _EVENT_LIST_TERMINATED:
            event = events[index]
            if event.type == _EVENT_WORD:
                self._words.append((event.text_position, event.length, event.audio_position))
            index += 1
        return 0  # 0 = go on synthesizing

    def _select_voice(self, voice: str) -> None:
        """By voice name or file ("ca", "en-us"), else by language: some languages ("en-gb", "fr-fr")
        are spoken by a voice filed under another name."""
        encoded = voice.encode("utf-8")
        if self.lib.espeak_SetVoiceByName(encoded) == _EE_OK:
            return
        language = ctypes.create_string_buffer(encoded)
        spec = _Voice(languages=ctypes.cast(language, ctypes.c_void_p))
        if self.lib.espeak_SetVoiceByProperties(ctypes.byref(spec)) != _EE_OK:
            raise EngineError(f"espeak-ng has no voice named {voice!r}")

    def speak(
        self, text: str, *, voice: str, rate: int, ssml: bool = False
    ) -> tuple[np.ndarray, list[tuple[int, int, int]]]:
        self._select_voice(voice)
        self.lib.espeak_SetParameter(_PARAM_RATE, rate, 0)
        # Voicing noise comes from espeak's own PRNG and from libc's rand(): seed both. libc's seed is
        # process-wide, but nothing else in a zray worker depends on rand().
        self.lib.espeak_ng_SetRandSeed(_RAND_SEED)
        _libc().srand(_RAND_SEED)
        self._chunks, self._words = [], []
        encoded = text.encode("utf-8")
        buffer = ctypes.create_string_buffer(encoded)
        flags = _CHARS_UTF8 | (_SSML if ssml else 0)
        status = self.lib.espeak_Synth(buffer, len(encoded) + 1, 0, _POS_CHARACTER, 0, flags, None, None)
        self.lib.espeak_Synchronize()
        if status != _EE_OK:
            raise EngineError(f"espeak-ng failed to synthesize (status {status}) with voice {voice!r}")
        pcm = np.concatenate(self._chunks) if self._chunks else np.zeros(0, dtype=np.int16)
        words, self._chunks, self._words = self._words, [], []
        return pcm, words


_LOCK = threading.Lock()
_private_library: Path | None = None
_languages: frozenset[str] | None = None
_voice_files: frozenset[str] | None = None
_voices_seen: dict[str, bool] = {}


@contextmanager
def _fresh_espeak() -> Iterator[_Espeak]:
    """A freshly loaded espeak-ng, unloaded on exit; holds the process-wide lock throughout."""
    import espeakng_loader

    global _private_library
    with _LOCK:
        if _private_library is None:
            _private_library = _private_copy(Path(espeakng_loader.get_library_path()))
        espeak = _Espeak(_private_library, espeakng_loader.get_data_path())
        try:
            yield espeak
        finally:
            espeak.close()


def _private_copy(library: Path) -> Path:
    """The library's bytes under another name, so dlopen gives this process its own instance."""
    data = library.read_bytes()
    if hasattr(os, "memfd_create") and Path("/proc/self/fd").is_dir():
        # Kept open for the life of the process; the kernel frees it when the process goes.
        fd = os.memfd_create("zray-espeak-ng")
        os.write(fd, data)
        return Path(f"/proc/self/fd/{fd}")
    from platformdirs import user_cache_dir

    digest = hashlib.sha256(data).hexdigest()[:16]
    copy = Path(user_cache_dir("zray")) / "espeak-ng" / f"{digest}-{library.name}"
    if not copy.is_file():
        copy.parent.mkdir(parents=True, exist_ok=True)
        partial = copy.with_name(f".{copy.name}.{os.getpid()}")
        partial.write_bytes(data)
        partial.replace(copy)  # atomic: a concurrent run sees the whole file or none
    return copy


@functools.cache
def _libc() -> ctypes.CDLL:
    # dlopen(NULL) is the running program, whose symbols include the C library's rand().
    libc = ctypes.CDLL("msvcrt" if sys.platform == "win32" else None)
    libc.srand.argtypes = [ctypes.c_uint]
    libc.srand.restype = None
    return libc


def _known_languages() -> frozenset[str]:
    global _languages, _voice_files
    if _languages is None or _voice_files is None:
        with _fresh_espeak() as espeak:
            _languages = espeak.list_languages()
            _voice_files = espeak.list_voice_files()
    return _languages


def _voice_exists(voice: str) -> bool:
    if voice not in _voices_seen:
        with _fresh_espeak() as espeak:
            _voices_seen[voice] = espeak.has_voice(voice)
    return _voices_seen[voice]


_normalize = normalize_language


@dataclass(frozen=True)
class EspeakSettings(EngineSettings):
    voices: dict[str, str] = field(default_factory=dict)  # language -> espeak voice (`en-gb`, `ca`)
    rate: int = DEFAULT_RATE  # words per minute

    def __post_init__(self) -> None:
        rate = self.rate
        if isinstance(rate, bool) or not isinstance(rate, int) or not MIN_RATE <= rate <= MAX_RATE:
            raise EngineError(f"espeak rate must be {MIN_RATE}..{MAX_RATE} words per minute, got {rate!r}")
        for lang, voice in self.voices.items():
            if not isinstance(voice, str) or not voice.strip():
                raise EngineError(f"espeak voice for {lang} must be a voice name, not {voice!r}")


class EspeakTTSEngine(BaseEngine):
    """Speaks text with espeak-ng; mono float32 at espeak's native rate (22050 Hz) with word timings."""

    name: ClassVar[str] = "espeak"
    role: ClassVar[str] = "tts"
    uses_gpu: ClassVar[bool] = False
    requires: ClassVar[tuple[str, ...]] = ("espeakng_loader",)
    settings_type = EspeakSettings

    def __init__(self, settings: EspeakSettings | None = None) -> None:
        super().__init__(settings)
        self.voices = {_normalize(lang): voice for lang, voice in self.settings.voices.items()}
        self.rate = self.settings.rate
        self._languages: frozenset[str] | None = None

    def load(self) -> None:
        if self._languages is None:
            self._languages = _known_languages()

    def identity(self) -> dict[str, Any]:
        return {
            "engine": "espeak-ng",
            "version": ENGINE_VERSION,
            "model": None,
            # The wheel's version pins the library build and its voice data.
            "espeakng_loader": importlib.metadata.version("espeakng-loader"),
            "rate": self.rate,
            "voices": dict(sorted({**DEFAULT_VOICES, **self.voices}.items())),
        }

    def identity_for(self, lang: str) -> dict[str, Any]:
        """What decides one language's audio: another language's voice does not."""
        identity = self.identity()
        identity["voices"] = {_normalize(lang): self.voice_for(lang)}
        return identity

    def voice_for(self, lang: str) -> str:
        lang = _normalize(lang)
        return self.voices.get(lang) or DEFAULT_VOICES.get(lang) or lang

    def supports(self, lang: str) -> bool:
        lang = _normalize(lang)
        if lang in self.voices:
            return True
        self.load()
        assert self._languages is not None
        return lang in self._languages

    def check_voice(self, lang: str) -> None:
        voice = self.voice_for(lang)
        if _voice_exists(voice):
            return
        _known_languages()
        known = sorted((_voice_files or frozenset()) | (_languages or frozenset()))
        close = difflib.get_close_matches(voice.lower(), known, n=5, cutoff=0.6)
        hint = f"similar: {', '.join(close)}; " if close else ""
        raise EngineError(
            f"espeak-ng has no voice {voice!r} ({hint}it knows {len(known)}, named by language code, "
            "such as es, en-us, en-gb, ca)"
        )

    def synthesize(self, text: str, *, lang: str) -> Synthesis:
        if not text.strip():
            raise EngineError(f"espeak-ng was given no text to speak for language {lang!r}")
        if not self.supports(lang):
            raise EngineError(f"espeak-ng has no voice for language {lang!r}")
        speech = speak(text, voice=self.voice_for(lang), rate=self.rate)
        if speech.samples.size == 0:
            raise EngineError(f"espeak-ng produced no audio for {text[:40]!r} in language {lang!r}")
        return speech


def speak(text: str, *, voice: str, rate: int, ssml: bool = False) -> Synthesis:
    """Speech and word timings for `text` (SSML when `ssml`: the timing test's breaks of known length).

    Words are timed by espeak's word events, which mark where each word's sounds begin in the audio."""
    with _fresh_espeak() as espeak:
        pcm, events = espeak.speak(text, voice=voice, rate=rate, ssml=ssml)
        sample_rate = espeak.sample_rate
    samples = (pcm.astype(np.float32) / 32768.0)[None, :]
    return Synthesis(
        samples=samples,
        sample_rate=sample_rate,
        words=_word_timings(text, events, pcm.size / sample_rate, ssml=ssml),
    )


def _word_timings(
    text: str, events: list[tuple[int, int, int]], seconds: float, *, ssml: bool = False
) -> list[WordTiming]:
    """Word events to timings of the text's whitespace-separated words (punctuation stripped).

    espeak reports text positions in characters from 1. It may speak one written word as several (a
    number, Catalan "s'alça", "penya-segat"): a word starts at its first event and the others are
    dropped. Each word ends where the next one starts. SSML tags are not words.
    """
    plain = _TAG.sub(lambda tag: " " * len(tag.group()), text) if ssml else text
    tokens = [(match.start(), match.end()) for match in re.finditer(r"\S+", plain)]
    starts = [token_start for token_start, _ in tokens]
    timed: list[tuple[int, float]] = []  # (token index, start in seconds)
    for position, length, milliseconds in events:
        if length <= 0:
            continue
        token = bisect.bisect_right(starts, position - 1) - 1
        if token < 0 or (timed and token <= timed[-1][0]):
            continue
        timed.append((token, milliseconds / 1000))
    timings: list[WordTiming] = []
    for index, (token, at) in enumerate(timed):
        until = timed[index + 1][1] if index + 1 < len(timed) else seconds
        word = bare_word(plain[slice(*tokens[token])])
        if word:
            timings.append(WordTiming(word, at, max(at, until)))
    return timings
