"""Narration with Google Cloud Text-to-Speech over its REST API: production's voice where Kokoro has none.

Standard library only (urllib, json, wave, xml): nothing to install. The API key is read from the
environment (`GOOGLE_API_KEY`) or a `.env` file in the current directory at call time, so it never sits in
the engine's pickled state (engines travel to Ray actors), its identity, a log line or an error message.

Word timings: the text goes as SSML with a `<mark>` before each word to the v1beta1 endpoint with
`enableTimePointing: ["SSML_MARK"]`, which answers each mark's time (only v1beta1 does). The marks and
the XML escaping count toward the request limit, so text is split by the size of its SSML; the times of
a later request are offset by the audio of the ones before. A voice that answers no marks (and the
voice families that take no SSML at all) leave the words untimed, and subtitles fall back to timing
cues by their length.
"""

from __future__ import annotations

import base64
import http.client
import io
import json
import logging
import os
import random
import re
import time
import urllib.error
import urllib.parse
import urllib.request
import wave
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar
from xml.sax.saxutils import escape as xml_escape

import numpy as np

from zray.engines.base import BaseEngine, EngineError, EngineSettings, Synthesis, WordTiming
from zray.engines.text import bare_word, is_spoken, normalize_language, split_text, utf8_size

# 2: SSML with word marks on v1beta1 (1 sent plain text to v1); the audio may differ, so keys change.
ENGINE_VERSION = "2"
# Voices that take no SSML still send plain text to v1, exactly as version 1 did: their keys stay.
TEXT_ONLY_VERSION = "1"
SAMPLE_RATE = 24_000
DEFAULT_VOICES = {"ca": "ca-ES-Standard-B"}
KEY_VARIABLE = "GOOGLE_API_KEY"
# The API refuses input over 5,000 bytes (SSML counted with its tags); the margin keeps clear of that edge.
MAX_TEXT_BYTES = 4_800
# Google documents these voice families as not accepting SSML input: they get plain text, no marks.
TEXT_ONLY_FAMILIES = ("Journey", "Chirp")
# XML 1.0 forbids these control characters even escaped; a request carrying one is refused.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_SPEAK_OPEN, _SPEAK_CLOSE = "<speak>", "</speak>"
_RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
_MAX_DELAY = 60.0

log = logging.getLogger(__name__)


def _api_key() -> str | None:
    """The key from the environment, else from `.env` in the current directory; read on every call."""
    key = os.environ.get(KEY_VARIABLE, "").strip()
    if key:
        return key
    return _read_dotenv(Path.cwd() / ".env").get(KEY_VARIABLE) or None


def _read_dotenv(path: Path) -> dict[str, str]:
    """`NAME=value` lines, optionally `export`ed and quoted; `#` starts a comment line."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return {}
    values: dict[str, str] = {}
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        else:
            value = value.split(" #", 1)[0].strip()
        values[name.strip()] = value
    return values


def api_key_available() -> bool:
    """Whether a Google API key can be found now (start-up check; the key itself is not returned)."""
    return _api_key() is not None


_normalize = normalize_language


def _language_code(voice: str) -> str:
    """`ca-ES-Standard-B` -> `ca-ES`: Google voice names start with their BCP-47 language code."""
    parts = voice.split("-") if isinstance(voice, str) else []
    if len(parts) < 3 or not all(parts[:3]):
        raise EngineError(f"Google TTS voice {voice!r} is not a Google voice name like 'ca-ES-Standard-B'")
    return f"{parts[0]}-{parts[1]}"


@dataclass(frozen=True)
class GoogleTTSSettings(EngineSettings):
    """The service's address and voices; the API key is never a setting (see the module docstring)."""

    voices: dict[str, str] = field(default_factory=dict)  # language -> voice, over DEFAULT_VOICES
    endpoint: str = "https://texttospeech.googleapis.com"
    retries: int = 5
    timeout: float = 60.0
    retry_delay: float = 1.0

    def __post_init__(self) -> None:
        # Voice names are checked by check_voice, which engine setup reports as the voice's setting.
        if isinstance(self.retries, bool) or not isinstance(self.retries, int) or self.retries < 0:
            raise EngineError(f"Google TTS retries must be a whole number >= 0, got {self.retries!r}")
        if not isinstance(self.timeout, int | float) or self.timeout <= 0:
            raise EngineError(f"Google TTS timeout must be positive seconds, got {self.timeout!r}")
        if not isinstance(self.retry_delay, int | float) or self.retry_delay < 0:
            raise EngineError(f"Google TTS retry_delay must be >= 0 seconds, got {self.retry_delay!r}")
        if not isinstance(self.endpoint, str) or not self.endpoint.startswith(("https://", "http://")):
            raise EngineError(f"Google TTS endpoint must be an http(s) URL, got {self.endpoint!r}")


class _Failure(Exception):
    """One failed request: `status` is the HTTP status, or None when no response came back."""

    def __init__(self, status: int | None, detail: str, *, retry: bool, after: float | None = None):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.retry = retry
        self.after = after


class GoogleTTSEngine(BaseEngine):
    """Speaks text with Google Cloud TTS voices; mono float32 LINEAR16 at 24 kHz, words timed by marks."""

    name: ClassVar[str] = "google"
    role: ClassVar[str] = "tts"
    uses_gpu: ClassVar[bool] = False
    settings_type = GoogleTTSSettings
    # A library's exception could hold the request URL, and with it the key: keep no cause.
    _chain_failures: ClassVar[bool] = False

    def __init__(self, settings: GoogleTTSSettings | None = None) -> None:
        super().__init__(settings)
        settings = self.settings
        merged = {**DEFAULT_VOICES, **{_normalize(lang): voice for lang, voice in settings.voices.items()}}
        self.voices = dict(sorted(merged.items()))
        self.endpoint = settings.endpoint.rstrip("/")
        self.retries = settings.retries
        self.timeout = float(settings.timeout)
        self.retry_delay = float(settings.retry_delay)

    def _failure(self, method: str, exc: Exception) -> str:
        return _redact(super()._failure(method, exc), _api_key() or "")

    def load(self) -> None:
        """Nothing to load: the service holds the voices."""

    def identity(self) -> dict[str, Any]:
        return {
            "engine": "google-tts",
            "version": ENGINE_VERSION,
            "model": None,
            "audio_encoding": "LINEAR16",
            "sample_rate": SAMPLE_RATE,
            "voices": dict(self.voices),
        }

    def identity_for(self, lang: str) -> dict[str, Any]:
        """What decides one language's audio: another language's voice does not, nor (for a voice that
        takes no SSML, whose request did not change) the SSML version."""
        identity = self.identity()
        voice = self.voice_for(lang)
        identity["voices"] = {_normalize(lang): voice}
        if not takes_ssml(voice):
            identity["version"] = TEXT_ONLY_VERSION
        return identity

    def voice_for(self, lang: str) -> str:
        lang = _normalize(lang)
        if lang not in self.voices:
            raise EngineError(
                f"Google TTS has no voice configured for language {lang!r}; "
                f"set google_tts.voices.{lang} (configured: {', '.join(self.voices)})"
            )
        return self.voices[lang]

    def supports(self, lang: str) -> bool:
        return _normalize(lang) in self.voices

    def check_voice(self, lang: str) -> None:
        # The service's voice list needs the key and the network: only the name's form is checked here.
        _language_code(self.voice_for(lang))

    def synthesize(self, text: str, *, lang: str) -> Synthesis:
        voice = self.voice_for(lang)
        if not text.strip():
            raise EngineError(f"Google TTS was given no text to speak for language {lang!r}")
        key = _api_key()
        if key is None:
            raise EngineError(
                f"Google TTS needs an API key for language {lang!r}: set {KEY_VARIABLE} in the "
                "environment or in a .env file in the current directory"
            )
        marks = takes_ssml(voice)
        measure = (lambda piece: utf8_size(build_ssml(piece.strip()).ssml)) if marks else utf8_size
        pieces = [piece.strip() for piece in split_text(text, max_bytes=MAX_TEXT_BYTES, measure=measure)]
        audio: list[np.ndarray] = []
        words: list[WordTiming] = []
        unmarked = 0
        offset = 0
        for piece in pieces:
            if not piece:
                continue
            if marks:
                request = build_ssml(piece)
                samples, timepoints = self._speak({"ssml": request.ssml}, voice=voice, lang=lang, key=key)
                timed = words_from_marks(request, timepoints, seconds=samples.size / SAMPLE_RATE)
                unmarked += len(request.words) - len(timed)
                words += [word.shifted(offset / SAMPLE_RATE) for word in timed]
            else:
                samples, _ = self._speak({"text": piece}, voice=voice, lang=lang, key=key)
            audio.append(samples)
            offset += samples.size
        samples = np.concatenate(audio) if audio else np.zeros(0, dtype=np.float32)
        if samples.size == 0:
            raise EngineError(f"Google TTS returned no audio for {text[:40]!r} in language {lang!r}")
        if not marks:
            log.info("Google TTS voice %s takes no SSML: subtitles time its words by their length", voice)
        elif unmarked:
            log.warning(
                "Google TTS voice %s answered no time for %d of %d words in %s; subtitles time those "
                "in proportion to their length",
                voice,
                unmarked,
                unmarked + len(words),
                lang,
            )
        return Synthesis(samples=samples[None, :], sample_rate=SAMPLE_RATE, words=words or None)

    def _speak(
        self, source: dict[str, str], *, voice: str, lang: str, key: str
    ) -> tuple[np.ndarray, list[dict[str, Any]]]:
        """Audio and the reply's timepoints for one request; `source` is {"ssml": ...} or {"text": ...}."""
        request: dict[str, Any] = {
            "input": source,
            "voice": {"languageCode": _language_code(voice), "name": voice},
            "audioConfig": {"audioEncoding": "LINEAR16", "sampleRateHertz": SAMPLE_RATE},
        }
        version = "v1"
        if "ssml" in source:
            request["enableTimePointing"] = ["SSML_MARK"]
            version = "v1beta1"  # the only version that answers mark times
        body = json.dumps(request, ensure_ascii=False).encode("utf-8")
        url = f"{self.endpoint}/{version}/text:synthesize?" + urllib.parse.urlencode({"key": key})
        attempts = self.retries + 1
        for attempt in range(attempts):
            try:
                reply = self._post(url, body)
                return _decode(reply, lang=lang), _timepoints(reply)
            except _Failure as caught:
                failure = caught
            # Raised outside the except block, so no exception that saw the URL rides along as context.
            what = f"HTTP {failure.status}" if failure.status else "no response"
            detail = _redact(failure.detail, key)
            if not failure.retry:
                raise EngineError(f"Google TTS refused language {lang!r} (voice {voice}): {what}: {detail}")
            if attempt + 1 == attempts:
                raise EngineError(
                    f"Google TTS failed for language {lang!r} (voice {voice}) after {attempts} "
                    f"attempts: {what}: {detail}"
                )
            delay = self._backoff(attempt, failure.after)
            log.warning(
                "Google TTS %s for %s, retrying in %.1f s (retry %d of %d)",
                what,
                lang,
                delay,
                attempt + 1,
                self.retries,
            )
            time.sleep(delay)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _post(self, url: str, body: bytes) -> dict[str, Any]:
        request = urllib.request.Request(
            url, data=body, method="POST", headers={"Content-Type": "application/json; charset=utf-8"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                payload = response.read()
        except urllib.error.HTTPError as error:
            # HTTPError carries the URL (and so the key): keep only the status and the API's message.
            status = error.code
            message = _api_message(error.read() if error.fp else b"") or error.reason
            after = _retry_after(error.headers.get("Retry-After") if error.headers else None)
            raise _Failure(status, str(message), retry=status in _RETRY_STATUSES, after=after) from None
        except (OSError, http.client.HTTPException) as error:  # URLError, timeouts, resets
            reason = getattr(error, "reason", error)
            raise _Failure(None, f"{type(reason).__name__}: {reason}", retry=True) from None
        try:
            reply = json.loads(payload)
        except ValueError:
            raise _Failure(None, "the reply was not JSON", retry=True) from None
        if not isinstance(reply, dict):
            raise _Failure(None, "the reply was not a JSON object", retry=True)
        return reply

    def _backoff(self, attempt: int, after: float | None) -> float:
        # Exponential with full jitter on top, so parallel actors do not retry in lockstep.
        delay = self.retry_delay * 2**attempt
        delay += random.uniform(0, delay)
        if after is not None:
            delay = max(delay, after)
        return min(delay, _MAX_DELAY)


def _api_message(body: bytes) -> str:
    """The `error.message` of a Google API error body, else the start of the body."""
    text = body.decode("utf-8", "replace")
    try:
        error = json.loads(text).get("error", {})
        message = error.get("message") if isinstance(error, dict) else None
        if message:
            return str(message)
    except (ValueError, AttributeError):
        pass
    return " ".join(text.split())[:200]


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None  # an HTTP date: the backoff is good enough


def takes_ssml(voice: str) -> bool:
    """Whether a voice takes SSML, and so can time words by marks (see TEXT_ONLY_FAMILIES)."""
    return not any(family.lower() in voice.lower() for family in TEXT_ONLY_FAMILIES)


@dataclass(frozen=True)
class MarkedText:
    """One request's SSML and the words it marks: mark `str(i)` stands before `words[i]`."""

    ssml: str
    words: tuple[str, ...]


def build_ssml(text: str) -> MarkedText:
    """`<speak>` with a `<mark name="i"/>` before each word of `text`, everything XML-escaped.

    Words are the whitespace-separated tokens that hold a letter or digit; bare punctuation ("—", a
    French "?") is spoken around its neighbours and gets no mark. Mark names are the word's index in
    this request, short on purpose: every byte counts toward the request limit.
    """
    parts: list[str] = []
    words: list[str] = []
    for token in _XML_INVALID.sub(" ", text).split():
        escaped = xml_escape(token)
        if is_spoken(token):
            parts.append(f'<mark name="{len(words)}"/>{escaped}')
            words.append(bare_word(token))
        else:
            parts.append(escaped)
    return MarkedText(ssml=_SPEAK_OPEN + " ".join(parts) + _SPEAK_CLOSE, words=tuple(words))


def words_from_marks(
    request: MarkedText, timepoints: Sequence[dict[str, Any]], *, seconds: float
) -> list[WordTiming]:
    """The request's words at their marks' times; each ends where the next timed word starts (the last
    where the audio ends). Marks the reply lacks, repeats, or places out of order are left out."""
    starts: dict[int, float] = {}
    for point in timepoints:
        name, at = point.get("markName"), point.get("timeSeconds", 0.0)
        if not isinstance(name, str) or not name.isdigit() or isinstance(at, bool):
            continue
        index = int(name)
        if index < len(request.words) and isinstance(at, int | float) and 0 <= at <= seconds:
            starts.setdefault(index, float(at))
    ordered: list[tuple[int, float]] = []
    for index in sorted(starts):
        if not ordered or starts[index] >= ordered[-1][1]:
            ordered.append((index, starts[index]))
    timings: list[WordTiming] = []
    for position, (index, at) in enumerate(ordered):
        until = ordered[position + 1][1] if position + 1 < len(ordered) else seconds
        timings.append(WordTiming(request.words[index], at, until))
    return timings


def _timepoints(reply: dict[str, Any]) -> list[dict[str, Any]]:
    points = reply.get("timepoints")
    if not isinstance(points, list):
        return []
    return [point for point in points if isinstance(point, dict)]


def _redact(text: str, key: str) -> str:
    text = re.sub(r"(key=)[^&\s\"']+", r"\1REDACTED", text)
    return text.replace(key, "REDACTED") if key else text


def _decode(reply: dict[str, Any], *, lang: str) -> np.ndarray:
    """LINEAR16 `audioContent`: a WAV file (what the API returns), or bare 16-bit little-endian PCM."""
    content = reply.get("audioContent")
    if not isinstance(content, str) or not content:
        raise EngineError(f"Google TTS replied without audioContent for language {lang!r}")
    try:
        data = base64.b64decode(content, validate=True)
    except ValueError:
        raise EngineError(f"Google TTS audioContent for language {lang!r} is not base64") from None
    rate = SAMPLE_RATE
    if data[:4] == b"RIFF":
        try:
            with wave.open(io.BytesIO(data)) as wav:
                if wav.getsampwidth() != 2 or wav.getnchannels() != 1:
                    raise EngineError(
                        f"Google TTS sent {wav.getnchannels()}-channel {8 * wav.getsampwidth()}-bit "
                        f"audio for language {lang!r}, not mono LINEAR16"
                    )
                rate = wav.getframerate()
                data = wav.readframes(wav.getnframes())
        except (wave.Error, EOFError) as error:
            raise EngineError(f"Google TTS sent an unreadable WAV for language {lang!r}: {error}") from None
    samples = np.frombuffer(data[: len(data) // 2 * 2], dtype="<i2").astype(np.float32) / 32768.0
    if rate != SAMPLE_RATE:
        from scipy.signal import resample_poly

        divisor = np.gcd(rate, SAMPLE_RATE)
        samples = resample_poly(samples, SAMPLE_RATE // divisor, rate // divisor).astype(np.float32)
    return samples
