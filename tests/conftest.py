"""Shared fixtures: one Ray instance per test session, small scripts, fast settings."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import pytest

TESTS = Path(__file__).resolve().parent

# The optional extras (pyproject.toml) and a module that shows each is installed.
EXTRA_MODULES = {
    "publish": ("googleapiclient", "google_auth_httplib2", "httplib2", "google_auth_oauthlib"),
    "cloud": ("s3fs",),
    "review": ("starlette", "uvicorn"),
    "models": ("torch", "diffusers", "transformers", "kokoro", "accelerate"),
}


def skip_reason(extra: str, module: str = "") -> str:
    """Why a test that needs an extra is skipped, and how to install it."""
    what = f" ({module})" if module else ""
    return f"needs the {extra} extra{what}: .venv/bin/pip install -e '.[{extra}]'"


def needs_extra(extra: str, *modules: str) -> Any:
    """Skip the test (or, at module level, the file) unless the extra is installed; the skip names
    the extra and how to install it. `modules`: the ones this test needs (default: all of them);
    returns the last one imported."""
    imported = None
    for module in modules or EXTRA_MODULES[extra]:
        imported = pytest.importorskip(module, reason=skip_reason(extra, module))
    return imported


# Tests never download a model: an accidental Hub call fails at once. One thread per torch/BLAS
# process: tiny models on a busy 2-core machine run many times faster without thread contention.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("OMP_NUM_THREADS", "1")
# Settings come from each test's own config: a developer's exported ZRAY_* settings (or a CI
# variable that happens to share the prefix) must not change what the tests check.
for _name in [n for n in os.environ if n.startswith("ZRAY_")]:
    del os.environ[_name]


@pytest.fixture(autouse=True)
def _zray_logger_reset():
    """A run sets up the `zray` logger for its console (no propagation to the root); undo that after
    each test, so a later test's caplog sees zray's records whatever ran before it."""
    yield
    logger = logging.getLogger("zray")
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    logger.propagate = True
    logger.setLevel(logging.NOTSET)


@pytest.fixture
def ray_session():
    """One local Ray shared by the tests (starting Ray costs seconds), started when a test first
    needs it and again after a module that runs its own cluster has shut it down (a run would
    otherwise start an embedded Ray without the tests' folder on its workers' path).

    Logical CPUs may exceed the real two cores; workers get the tests folder on their path so
    test-only engines (fault injection) can be named as `module:Class`.
    """
    ray = pytest.importorskip("ray")
    if not ray.is_initialized():
        ray.init(
            address="local",  # never attach to a cluster another process started on this machine
            num_cpus=4,
            include_dashboard=False,
            log_to_driver=False,
            runtime_env={
                "env_vars": {"PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
            },
        )
    return ray


@pytest.fixture(scope="session", autouse=True)
def _ray_stopped_at_the_end():
    import sys

    yield
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        ray.shutdown()


# Each scene speaks for about ten seconds, so every chapter is long enough for YouTube.
ES = [
    "Hola. Esto es una prueba de zray, y cada escena habla durante unos diez segundos, "
    "porque YouTube solo acepta capítulos que duran al menos diez segundos.",
    "El mar brilla de noche bajo millones de estrellas. Las olas llegan despacio a la orilla, "
    "una tras otra, sin ninguna prisa, como si tuvieran todo el tiempo del mundo.",
    "Y el bosque espera en silencio entre la niebla. Nadie sabe cuántos años tienen sus árboles, "
    "pero todos recuerdan la última gran tormenta del invierno, cuando el viento sopló durante tres días.",
]
CA = [
    "Hola. Això és una prova de zray, i cada escena parla durant uns deu segons, "
    "perquè YouTube només accepta capítols que duren com a mínim deu segons.",
    "El mar brilla de nit sota milions d'estrelles. Les onades arriben a poc a poc a la vora, "
    "una darrere l'altra, sense cap pressa, com si tinguessin tot el temps del món.",
    "I el bosc espera en silenci entre la boira. Ningú no sap quants anys tenen els seus arbres, "
    "però tots recorden l'última gran tempesta de l'hivern, quan el vent va bufar durant tres dies.",
]


def small_script(**overrides) -> dict:
    """Three scenes, Spanish and Catalan, three chapters."""
    scenes = [
        {
            "scene_id": i,
            "image_prompt": prompt,
            "script_es": es,
            "script_ca": ca,
            "chapter_es": chapter,
            "chapter_ca": chapter,
        }
        for i, (prompt, es, ca, chapter) in enumerate(
            [
                ("A red desert at dawn", ES[0], CA[0], "Uno"),
                ("A blue ocean at night", ES[1], CA[1], "Dos"),
                ("A green forest in fog", ES[2], CA[2], "Tres"),
            ]
        )
    ]
    data = {
        "project_title": "Prueba de zray",
        "saga": 1,
        "episode": 2,
        "global_music_prompt": "soft test pads",
        "scenes": scenes,
        "seo": {
            "es": {"variants": [{"title": "Título de prueba", "thumb_text": "¡PRUEBA!"}], "tags": ["test"]},
            "ca": {"variants": [], "description": "Sense variants"},
        },
    }
    data.update(overrides)
    return data


def write_script(folder: Path, data: dict | None = None, name: str = "SAGA_01_Episode_02.json") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(json.dumps(data or small_script(), ensure_ascii=False), encoding="utf-8")
    return path


FAST_VIDEO = {"width": 320, "height": 176, "fps": 24, "preset": "fast", "gop": 24}
