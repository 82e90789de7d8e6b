"""Google Cloud TTS engine against a fake REST server on 127.0.0.1: requests, splitting, retries, secrets."""

from __future__ import annotations

import base64
import io
import json
import logging
import math
import pickle
import socket
import threading
import wave
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zray.engines.base import EngineError, TTSEngine, check_engine_class
from zray.engines.google_tts import (
    DEFAULT_VOICES,
    GoogleTTSEngine,
    GoogleTTSSettings,
    api_key_available,
)
from zray.engines.text import split_text

KEY = "test-key-4f7a9c"
SAMPLES_PER_BYTE = 40  # the fake's tone lasts this many samples per byte of input text


def tone_wav(samples: int, *, rate: int = 24_000) -> bytes:
    """A mono LINEAR16 WAV of a 440 Hz tone, like the API's audioContent."""
    t = np.arange(samples) / rate
    pcm = (0.5 * 32767 * np.sin(2 * math.pi * 440 * t)).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm.tobytes())
    return buffer.getvalue()


@dataclass
class FakeGoogle:
    """Records each request; answers from `script` (status, JSON body) first, then with a tone."""

    url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    script: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    rate: int = 24_000

    def texts(self) -> list[str]:
        return [request["body"]["input"]["text"] for request in self.requests]


@pytest.fixture
def fake() -> Iterator[FakeGoogle]:
    state = FakeGoogle()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            split = urlsplit(self.path)
            length = int(self.headers["Content-Length"])
            body = json.loads(self.rfile.read(length).decode("utf-8"))
            state.requests.append({"path": split.path, "query": parse_qs(split.query), "body": body})
            if state.script:
                status, reply = state.script.pop(0)
            else:
                size = len(body["input"]["text"].encode("utf-8"))
                audio = tone_wav(SAMPLES_PER_BYTE * size * state.rate // 24_000, rate=state.rate)
                status, reply = 200, {"audioContent": base64.b64encode(audio).decode("ascii")}
            payload = json.dumps(reply).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture(autouse=True)
def key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """A key in the environment, and a working directory without a .env."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GOOGLE_API_KEY", KEY)
    return KEY


def google(**settings: Any) -> GoogleTTSEngine:
    return GoogleTTSEngine(GoogleTTSSettings(**settings))


def engine(fake: FakeGoogle, **settings: Any) -> GoogleTTSEngine:
    return google(endpoint=fake.url, retry_delay=0.001, **settings)


def error_body(code: int, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "status": "INVALID_ARGUMENT"}}


# --- requests and audio -----------------------------------------------------------------------------


def test_synthesize_sends_the_voice_text_and_key_and_decodes_linear16(fake: FakeGoogle) -> None:
    tts = engine(fake)
    assert isinstance(tts, TTSEngine)
    assert check_engine_class(GoogleTTSEngine, "tts") == []
    text = "Bon dia. Això és una prova."
    result = tts.synthesize(text, lang="ca")

    [request] = fake.requests
    assert request["path"] == "/v1/text:synthesize"
    assert request["query"] == {"key": [KEY]}
    assert request["body"] == {
        "input": {"text": text},
        "voice": {"languageCode": "ca-ES", "name": "ca-ES-Standard-B"},
        "audioConfig": {"audioEncoding": "LINEAR16", "sampleRateHertz": 24_000},
    }
    expected_samples = SAMPLES_PER_BYTE * len(text.encode())
    assert result.sample_rate == 24_000
    assert result.samples.shape == (1, expected_samples)
    assert result.samples.dtype == np.float32
    assert result.words is None
    t = np.arange(expected_samples) / 24_000
    np.testing.assert_allclose(result.samples[0], 0.5 * np.sin(2 * math.pi * 440 * t), atol=1e-4)


def test_voice_per_language_and_language_code_from_the_voice_name(fake: FakeGoogle) -> None:
    tts = engine(fake, voices={"es": "es-US-Neural2-A", "CA": "ca-ES-Wavenet-A"})
    assert tts.supports("es") and tts.supports("ca") and tts.supports("Ca")
    assert not tts.supports("fr")
    tts.synthesize("Hola.", lang="es")
    tts.synthesize("Hola.", lang="ca")
    voices = [request["body"]["voice"] for request in fake.requests]
    assert voices == [
        {"languageCode": "es-US", "name": "es-US-Neural2-A"},
        {"languageCode": "ca-ES", "name": "ca-ES-Wavenet-A"},
    ]
    with pytest.raises(EngineError, match="'fr'"):
        tts.synthesize("Bonjour.", lang="fr")
    assert len(fake.requests) == 2


def test_a_wav_at_another_rate_is_resampled_to_24_khz(fake: FakeGoogle) -> None:
    fake.rate = 16_000
    result = engine(fake).synthesize("Bon dia.", lang="ca")
    assert result.sample_rate == 24_000
    assert result.samples.shape[1] == pytest.approx(SAMPLES_PER_BYTE * len(b"Bon dia."), abs=2)


def test_bare_pcm_audio_content_is_accepted(fake: FakeGoogle) -> None:
    pcm = (np.arange(100, dtype="<i2") * 100).tobytes()
    fake.script = [(200, {"audioContent": base64.b64encode(pcm).decode()})]
    result = engine(fake).synthesize("Hola.", lang="ca")
    np.testing.assert_array_equal(result.samples[0], np.arange(100) * 100 / 32768.0)


def test_bad_voice_names_and_settings_are_refused(fake: FakeGoogle) -> None:
    google().check_voice("ca")
    with pytest.raises(EngineError, match=r"'ca' is not a Google voice name like 'ca-ES-Standard-B'"):
        google(voices={"ca": "ca"}).check_voice("ca")
    with pytest.raises(EngineError, match=r"no voice configured for language 'fr'.*google_tts.voices.fr"):
        google().check_voice("fr")
    with pytest.raises(EngineError, match="not a Google voice name"):
        engine(fake, voices={"ca": "ca"}).synthesize("Bon dia.", lang="ca")
    assert fake.requests == []
    with pytest.raises(EngineError, match="retries"):
        GoogleTTSSettings(retries=-1)
    with pytest.raises(EngineError, match="endpoint"):
        GoogleTTSSettings(endpoint="texttospeech.googleapis.com")


# --- splitting --------------------------------------------------------------------------------------


def test_a_long_text_goes_in_several_requests_under_5000_bytes_split_at_sentences(fake: FakeGoogle) -> None:
    sentences = [
        f"Frase número {i}: el vent bufava sobre les muntanyes àrides, i ningú no sabia per què."
        for i in range(150)
    ]
    text = " ".join(sentences)
    assert len(text.encode()) > 12_000
    result = engine(fake).synthesize(text, lang="ca")

    texts = fake.texts()
    assert len(texts) >= 3
    assert all(len(piece.encode("utf-8")) < 5_000 for piece in texts)
    assert " ".join(texts) == text
    assert all(piece.endswith("per què.") for piece in texts)  # whole sentences only
    assert result.samples.shape[1] == SAMPLES_PER_BYTE * sum(len(piece.encode()) for piece in texts)


def test_a_monster_sentence_is_split_at_clauses_then_spaces(fake: FakeGoogle) -> None:
    clauses = ", ".join(f"i després el pas {i} del camí llarg" for i in range(300))  # no full stop
    words = " ".join(["paraula"] * 1_500)  # not even a comma
    text = f"{clauses}. {words}."
    engine(fake).synthesize(text, lang="ca")
    texts = fake.texts()
    assert all(len(piece.encode()) < 5_000 for piece in texts)
    assert " ".join(texts) == text
    clause_pieces = [piece for piece in texts if "camí" in piece]
    assert len(clause_pieces) >= 2
    assert all(piece.endswith(("llarg,", "llarg.")) for piece in clause_pieces)


def test_split_text_prefers_sentences_then_clauses_then_spaces_then_characters() -> None:
    assert split_text("Un. Dos. Tres.", max_bytes=9) == ["Un. Dos. ", "Tres."]
    assert split_text("uno, dos y tres", max_bytes=10) == ["uno, ", "dos y tres"]
    assert split_text("abcdefghij", max_bytes=4) == ["abcd", "efgh", "ij"]
    assert split_text("你好。我们走吧！", max_bytes=9) == ["你好。", "我们走", "吧！"]
    assert split_text("ééé", max_bytes=5) == ["éé", "é"]  # never inside a UTF-8 character
    assert split_text("", max_bytes=10) == []


@settings(max_examples=200, deadline=None)
@given(
    text=st.text(alphabet="ab é中.,;!?。\n", max_size=300),
    max_bytes=st.integers(min_value=4, max_value=60),
)
def test_split_text_pieces_rejoin_exactly_and_fit(text: str, max_bytes: int) -> None:
    pieces = split_text(text, max_bytes=max_bytes)
    assert "".join(pieces) == text
    assert all(piece and len(piece.encode()) <= max_bytes for piece in pieces)


@settings(max_examples=100, deadline=None)
@given(
    sentences=st.lists(st.text(alphabet="abc ,", min_size=1, max_size=20), min_size=1, max_size=15),
    max_bytes=st.integers(min_value=22, max_value=80),
)
def test_split_text_cuts_only_between_sentences_when_each_sentence_fits(
    sentences: list[str], max_bytes: int
) -> None:
    whole = [sentence.strip(" ,") + "." for sentence in sentences if sentence.strip(" ,")]
    text = " ".join(whole)
    pieces = split_text(text, max_bytes=max_bytes)
    assert all(piece.rstrip().endswith(".") for piece in pieces)


# --- retries and errors -----------------------------------------------------------------------------


def test_503_twice_then_success_makes_exactly_three_requests(fake: FakeGoogle) -> None:
    fake.script = [(503, error_body(503, "unavailable")), (503, error_body(503, "unavailable"))]
    result = engine(fake).synthesize("Bon dia.", lang="ca")
    assert len(fake.requests) == 3
    assert result.samples.shape[1] == SAMPLES_PER_BYTE * len(b"Bon dia.")


def test_429_until_retries_run_out_names_language_and_status(fake: FakeGoogle) -> None:
    fake.script = [(429, error_body(429, "quota exceeded"))] * 3
    with pytest.raises(EngineError, match="HTTP 429") as caught:
        engine(fake, retries=2).synthesize("Bon dia.", lang="ca")
    assert len(fake.requests) == 3
    assert "'ca'" in str(caught.value) and "quota exceeded" in str(caught.value)


def test_a_400_fails_at_once_with_the_apis_message(fake: FakeGoogle) -> None:
    fake.script = [(400, error_body(400, "Voice 'ca-ES-Standard-Z' does not exist."))]
    with pytest.raises(EngineError) as caught:
        engine(fake).synthesize("Bon dia.", lang="ca")
    assert len(fake.requests) == 1
    message = str(caught.value)
    assert "HTTP 400" in message and "'ca'" in message and "does not exist" in message


def test_connection_errors_are_retried_then_reported() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    tts = google(endpoint=f"http://127.0.0.1:{port}", retries=2, retry_delay=0.001)
    with pytest.raises(EngineError, match=r"after 3 attempts: no response") as caught:
        tts.synthesize("Bon dia.", lang="ca")
    assert KEY not in str(caught.value)


# --- the key ----------------------------------------------------------------------------------------


def test_no_key_is_an_engine_error_before_any_request(
    fake: FakeGoogle, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GOOGLE_API_KEY")
    assert not api_key_available()
    with pytest.raises(EngineError, match="GOOGLE_API_KEY"):
        engine(fake).synthesize("Bon dia.", lang="ca")
    assert fake.requests == []


def test_the_key_can_come_from_dotenv_read_at_call_time(
    fake: FakeGoogle, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("GOOGLE_API_KEY")
    tts = engine(fake)  # made before the key exists
    (tmp_path / ".env").write_text('# secrets\nOTHER=1\nexport GOOGLE_API_KEY="from-dotenv"\n')
    assert api_key_available()
    tts.synthesize("Bon dia.", lang="ca")
    assert fake.requests[0]["query"]["key"] == ["from-dotenv"]
    monkeypatch.setenv("GOOGLE_API_KEY", "from-env")  # the environment wins
    tts.synthesize("Bon dia.", lang="ca")
    assert fake.requests[1]["query"]["key"] == ["from-env"]


def test_the_key_is_never_in_errors_logs_pickles_or_identity(
    fake: FakeGoogle, caplog: pytest.LogCaptureFixture
) -> None:
    tts = engine(fake, retries=1)
    tts.synthesize("Bon dia.", lang="ca")
    # An API that echoes the request URL, key included, in its error message.
    echo = f"Bad request to /v1/text:synthesize?key={KEY}&alt=json ({KEY})"
    fake.script = [(503, error_body(503, echo)), (503, error_body(503, echo)), (403, error_body(403, echo))]
    caplog.set_level(logging.DEBUG)
    with pytest.raises(EngineError) as after_retries:
        tts.synthesize("Bon dia.", lang="ca")
    with pytest.raises(EngineError) as at_once:
        tts.synthesize("Bon dia.", lang="ca")
    for caught in (after_retries, at_once):
        assert KEY not in str(caught.value)
        assert "key=REDACTED" in str(caught.value)
        assert caught.value.__cause__ is None and caught.value.__context__ is None
        assert KEY.encode() not in pickle.dumps(caught.value)
    assert "HTTP 503" in str(after_retries.value) and "HTTP 403" in str(at_once.value)
    assert caplog.records and all(KEY not in record.getMessage() for record in caplog.records)
    assert KEY.encode() not in pickle.dumps(tts)
    assert KEY not in json.dumps(tts.identity()) and KEY not in json.dumps(tts.identity_for("ca"))


def test_an_unexpected_failure_keeps_the_key_out_too(
    fake: FakeGoogle, monkeypatch: pytest.MonkeyPatch
) -> None:
    import zray.engines.google_tts as google_tts

    def broken(reply: dict, *, lang: str) -> np.ndarray:
        raise KeyError(f"https://texttospeech.googleapis.com/v1/text:synthesize?key={KEY}")

    monkeypatch.setattr(google_tts, "_decode", broken)
    with pytest.raises(EngineError) as caught:
        engine(fake).synthesize("Bon dia.", lang="ca")
    assert str(caught.value).startswith("the google engine failed in synthesize: KeyError:")
    assert KEY not in str(caught.value) and "key=REDACTED" in str(caught.value)
    assert caught.value.__cause__ is None


# --- identity ---------------------------------------------------------------------------------------


def test_identity_is_json_and_per_language_identity_ignores_other_voices() -> None:
    plain = GoogleTTSEngine()
    more = google(voices={"es": "es-ES-Standard-A"})
    other_ca = google(voices={"ca": "ca-ES-Wavenet-A"})
    identity = plain.identity()
    assert json.loads(json.dumps(identity)) == identity
    assert identity["engine"] == "google-tts" and identity["version"]
    assert identity["voices"] == DEFAULT_VOICES
    assert plain.identity_for("ca") == more.identity_for("ca")
    assert plain.identity_for("ca") != other_ca.identity_for("ca")
    assert plain.identity() != more.identity()
    # Endpoint, retries and timeout change how, not what.
    assert google(endpoint="http://127.0.0.1:1", retries=0, timeout=1).identity() == identity
    assert pickle.loads(pickle.dumps(plain)).identity() == identity


def test_default_identity_is_pinned() -> None:
    """Studios' Catalan narration keys: they must not change with an upgrade."""
    assert GoogleTTSEngine().identity_for("ca") == {
        "engine": "google-tts",
        "version": "1",
        "model": None,
        "audio_encoding": "LINEAR16",
        "sample_rate": 24000,
        "voices": {"ca": "ca-ES-Standard-B"},
    }
