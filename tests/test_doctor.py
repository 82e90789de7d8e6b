"""`zray doctor` on the embedded default: answers from this machine without starting Ray, says what
zray reserves for its actors, and treats a missing GOOGLE_API_KEY as a warning when a fallback voice
is set."""

from __future__ import annotations

import os

import pytest
from typer.testing import CliRunner

from zray.cli import app


@pytest.fixture
def no_ray(monkeypatch, tmp_path):
    """Starting or joining Ray is a failure here; no key in the environment or a .env file."""
    import ray

    def refuse(*args, **kwargs):
        raise AssertionError("zray doctor started Ray without --address")

    monkeypatch.setattr(ray, "init", refuse)
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    monkeypatch.chdir(tmp_path)


def doctor(*args: str, env: dict[str, str] | None = None):
    base = {k: None for k in os.environ if k.startswith("ZRAY_")}
    return CliRunner().invoke(
        app, ["doctor", "--output", "out", *args], env={**base, "COLUMNS": "300", **(env or {})}
    )


def test_doctor_describes_this_machine_without_starting_ray(no_ray):
    result = doctor()
    assert result.exit_code == 0, result.output
    cores = os.cpu_count() or 1
    assert f"this machine has {cores} CPUs and 0 GPUs; a run starts Ray here with {cores + 1} CPUs" in (
        result.output
    )
    assert "zray reserves 0.75 CPUs for its actors (image 0.25, voices 0.25, music 0.25)" in result.output
    result = doctor(env={"ZRAY_ACTORS__MUSIC__NUM_CPUS": "2"})
    assert "zray reserves 2.5 CPUs for its actors (image 0.25, voices 0.25, music 2)" in result.output


def test_a_missing_google_key_is_a_warning_when_a_fallback_voice_is_set(no_ray, tmp_path):
    result = doctor(env={"ZRAY_ENGINES__TTS__CA": "google"})
    assert result.exit_code == 0, result.output
    assert "warn GOOGLE_API_KEY is not set: ca will be narrated with espeak" in result.output
    assert "FAIL" not in result.output

    result = doctor(env={"ZRAY_ENGINES__TTS__CA": "google", "ZRAY_GOOGLE_TTS__FALLBACK": ""})
    assert result.exit_code == 1
    assert "FAIL GOOGLE_API_KEY for Google Cloud TTS (ca) is not set" in result.output

    (tmp_path / ".env").write_text("GOOGLE_API_KEY=k\n")  # doctor runs in tmp_path
    result = doctor(env={"ZRAY_ENGINES__TTS__CA": "google", "ZRAY_GOOGLE_TTS__FALLBACK": ""})
    assert result.exit_code == 0, result.output
    assert "ok   GOOGLE_API_KEY for Google Cloud TTS (ca)" in result.output
