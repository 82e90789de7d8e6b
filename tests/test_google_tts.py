"""Google Cloud TTS engine against a fake REST server on 127.0.0.1: requests, splitting, retries, secrets."""

from __future__ import annotations

import base64
import io
import itertools
import json
import logging
import math
import pickle
import re
import socket
import threading
import wave
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from xml.etree import ElementTree

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zray.engines.base import EngineError, TTSEngine, WordTiming, check_engine_class
from zray.engines.google_tts import (
    DEFAULT_VOICES,
    MAX_TEXT_BYTES,
    GoogleTTSEngine,
    GoogleTTSSettings,
    api_key_available,
    build_ssml,
    words_from_marks,
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


def read_ssml(ssml: str) -> tuple[str, list[tuple[str, int]]]:
    """The text an SSML request speaks, and each mark's name with the UTF-8 bytes of text before it."""
    root = ElementTree.fromstring(ssml)
    assert root.tag == "speak"
    text, marks = root.text or "", []
    for child in root:
        assert child.tag == "mark" and not list(child), child.tag
        marks.append((child.attrib["name"], len(text.encode("utf-8"))))
        text += child.tail or ""
    return text, marks


@dataclass
class FakeGoogle:
    """Records each request; answers from `script` (status, JSON body) first, then with a tone of
    SAMPLES_PER_BYTE samples per byte of spoken text, and (with `marks`) each SSML mark's time: the
    time the tone reaches the bytes before it."""

    url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    script: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    rate: int = 24_000
    marks: bool = True

    def texts(self) -> list[str]:
        return [spoken(request["body"]) for request in self.requests]


def spoken(body: dict[str, Any]) -> str:
    source = body["input"]
    return read_ssml(source["ssml"])[0] if "ssml" in source else source["text"]


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
                size = len(spoken(body).encode("utf-8"))
                audio = tone_wav(SAMPLES_PER_BYTE * size * state.rate // 24_000, rate=state.rate)
                status, reply = 200, {"audioContent": base64.b64encode(audio).decode("ascii")}
                if (
                    "ssml" in body["input"]
                    and body.get("enableTimePointing") == ["SSML_MARK"]
                    and state.marks
                ):
                    _, marks = read_ssml(body["input"]["ssml"])
                    reply["timepoints"] = [
                        {"markName": name, "timeSeconds": SAMPLES_PER_BYTE * before / 24_000}
                        for name, before in marks
                    ]
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
    # Only v1beta1 answers the times of SSML marks.
    assert request["path"] == "/v1beta1/text:synthesize"
    assert request["query"] == {"key": [KEY]}
    assert request["body"] == {
        "input": {
            "ssml": '<speak><mark name="0"/>Bon <mark name="1"/>dia. <mark name="2"/>Això '
            '<mark name="3"/>és <mark name="4"/>una <mark name="5"/>prova.</speak>'
        },
        "voice": {"languageCode": "ca-ES", "name": "ca-ES-Standard-B"},
        "audioConfig": {"audioEncoding": "LINEAR16", "sampleRateHertz": 24_000},
        "enableTimePointing": ["SSML_MARK"],
    }
    expected_samples = SAMPLES_PER_BYTE * len(text.encode())
    assert result.sample_rate == 24_000
    assert result.samples.shape == (1, expected_samples)
    assert result.samples.dtype == np.float32
    # Each word starts where the fake's tone reaches it and ends where the next word starts.
    assert [word.word for word in result.words or []] == ["Bon", "dia", "Això", "és", "una", "prova"]
    starts = [SAMPLES_PER_BYTE * len(text[: text.index(w)].encode()) / 24_000 for w in ("Bon", "dia", "Això")]
    assert [word.start for word in (result.words or [])[:3]] == pytest.approx(starts)
    assert (result.words or [])[-1].end == pytest.approx(result.seconds)
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


# --- word timings -----------------------------------------------------------------------------------


def test_a_mark_stands_before_each_word_and_everything_is_escaped() -> None:
    request = build_ssml("¿Ves <esto> & «aquello»? — R&D\x0bok l'estel.")
    text, marks = read_ssml(request.ssml)  # well-formed XML, or this raises
    assert text == "¿Ves <esto> & «aquello»? — R&D ok l'estel."
    assert request.words == ("Ves", "esto", "aquello", "R&D", "ok", "l'estel")
    # Marks are named by word index and stand right before their word; bare punctuation gets none.
    assert [name for name, _ in marks] == ["0", "1", "2", "3", "4", "5"]
    assert [text.encode()[before:].decode().split()[0] for _, before in marks] == [
        "¿Ves",
        "<esto>",
        "«aquello»?",
        "R&D",
        "ok",
        "l'estel.",
    ]
    assert "&amp;" in request.ssml and "&lt;esto&gt;" in request.ssml


def test_marks_and_escaping_count_toward_the_request_limit(fake: FakeGoogle) -> None:
    # 4,500 bytes of text, far more as SSML: one mark per two-letter word, and escaped ampersands.
    text = " ".join(["yo &"] * 900)
    assert len(text.encode()) < MAX_TEXT_BYTES < len(build_ssml(text).ssml.encode())
    result = engine(fake).synthesize(text, lang="ca")
    assert len(fake.requests) >= 2
    for request in fake.requests:
        assert len(request["body"]["input"]["ssml"].encode("utf-8")) <= MAX_TEXT_BYTES
    assert " ".join(fake.texts()) == text
    assert len(result.words or []) == 900


def test_mark_times_carry_across_split_requests(fake: FakeGoogle) -> None:
    sentences = [
        f"Frase {i}: el vent bufava sobre les muntanyes àrides, i ningú no sabia per què." for i in range(160)
    ]
    text = " ".join(sentences)
    result = engine(fake).synthesize(text, lang="ca")
    pieces = fake.texts()
    assert len(pieces) >= 3
    words = result.words or []
    assert [w.word for w in words] == [bare for token in text.split() if (bare := token.strip(":,."))]
    # The fake times each word by the bytes before it in its own request; a later request's words are
    # offset by the audio of the requests before it, so each word's time is the bytes before it in
    # the whole text (the spaces between pieces are not spoken).
    expected, before = [], 0
    for piece in pieces:
        for match in re.finditer(r"\S+", piece):
            expected.append(SAMPLES_PER_BYTE * (before + len(piece[: match.start()].encode())) / 24_000)
        before += len(piece.encode())
    assert [w.start for w in words] == pytest.approx(expected)
    assert all(a.end == pytest.approx(b.start) for a, b in itertools.pairwise(words))
    assert words[-1].end == pytest.approx(result.seconds)


def test_a_voice_that_answers_no_marks_leaves_words_untimed_and_says_so(
    fake: FakeGoogle, caplog: pytest.LogCaptureFixture
) -> None:
    fake.marks = False
    caplog.set_level(logging.INFO, logger="zray.engines.google_tts")
    result = engine(fake).synthesize("Bon dia a tothom.", lang="ca")
    assert result.words is None
    assert result.samples.shape[1] == SAMPLES_PER_BYTE * len(b"Bon dia a tothom.")
    [record] = [r for r in caplog.records if "no time" in r.getMessage()]
    assert "ca-ES-Standard-B" in record.getMessage() and "4 of 4 words" in record.getMessage()


def test_marks_out_of_order_or_unknown_are_left_out() -> None:
    request = build_ssml("un dos tres quatre")
    points = [
        {"markName": "0", "timeSeconds": 0.0},
        {"markName": "2", "timeSeconds": 0.5},
        {"markName": "1", "timeSeconds": 0.9},  # after "tres": one of the two is out of order
        {"markName": "9", "timeSeconds": 1.0},  # no such word
        {"markName": "3", "timeSeconds": 7.0},  # past the audio
        {"markName": "x"},
    ]
    # In word order, a mark earlier than the one before it is the one dropped.
    assert words_from_marks(request, points, seconds=2.0) == [
        WordTiming("un", 0.0, 0.9),
        WordTiming("dos", 0.9, 2.0),
    ]


def test_voices_that_take_no_ssml_send_text_to_v1_with_their_old_identity(fake: FakeGoogle) -> None:
    tts = engine(fake, voices={"en": "en-US-Chirp3-HD-Kore", "ca": "ca-ES-Standard-B"})
    result = tts.synthesize("Hello there.", lang="en")
    [request] = fake.requests
    assert request["path"] == "/v1/text:synthesize" and request["body"]["input"] == {"text": "Hello there."}
    assert "enableTimePointing" not in request["body"]
    assert result.words is None
    assert tts.identity_for("en")["version"] == "1" and tts.identity_for("ca")["version"] == "2"


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
    """Studios' Catalan narration keys: they must not change with an upgrade. Version 2 (SSML with word
    marks on v1beta1 instead of plain text on v1) changed them on purpose: the request changed, so the
    audio may have."""
    assert GoogleTTSEngine().identity_for("ca") == {
        "engine": "google-tts",
        "version": "2",
        "model": None,
        "audio_encoding": "LINEAR16",
        "sample_rate": 24000,
        "voices": {"ca": "ca-ES-Standard-B"},
    }
