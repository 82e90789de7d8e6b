""" "Rebuild": `zray run` for a reviewed episode, in the background, with the last run's options.

run.json keeps the last run's effective options (`last_run.options`: the script, languages, intro
and the whole config). A rebuild runs `zray run` on that script with that config, written to a
temporary TOML file, into this very folder (the output root and project are taken from where the
folder is, so the run cannot land anywhere else); the review record is read by the run's plan
like any other, so a new seed or thumbnail choice is what changes. `ZRAY_*` variables of the
review server's environment are left out: the recorded config is the one that counts.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zray.episode import Episode
from zray.errors import ZrayError
from zray.keys import safe_name

MAX_LINES = 5000


class RebuildError(ZrayError):
    """A rebuild that cannot start; the message says why and what to do."""


def to_toml(data: Mapping[str, Any]) -> str:
    """The config as TOML (settings that are None are left to their defaults)."""
    lines: list[str] = []

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int | float):
            return repr(v)
        if isinstance(v, str):
            return json.dumps(v, ensure_ascii=False)
        if isinstance(v, list | tuple):
            return "[" + ", ".join(value(x) for x in v if x is not None) + "]"
        raise TypeError(f"cannot write {type(v).__name__} to TOML")

    def table(path: list[str], node: Mapping[str, Any]) -> None:
        scalars = {k: v for k, v in node.items() if v is not None and not isinstance(v, Mapping)}
        tables = {k: v for k, v in node.items() if isinstance(v, Mapping)}
        if path and (scalars or not tables):
            lines.append("[" + ".".join(json.dumps(p) for p in path) + "]")
        lines.extend(f"{json.dumps(k)} = {value(v)}" for k, v in scalars.items())
        for key, sub in tables.items():
            table([*path, key], sub)

    table([], data)
    return "\n".join(lines) + "\n"


@dataclass
class RebuildCommand:
    argv: list[str]
    env: dict[str, str]
    config_text: str


def rebuild_command(episode: Episode, *, python: str = sys.executable) -> RebuildCommand:
    """The `zray run` that remakes this episode as its last run did, into this folder."""
    run = episode.record.get("last_run") or {}
    options = run.get("options")
    if not isinstance(options, dict) or not isinstance(options.get("config"), dict):
        raise RebuildError(
            f"{episode.url}: run.json does not say how the episode was last run; run `zray run` on its "
            "script once, then Rebuild works from here"
        )
    script = options.get("script")
    if not isinstance(script, str) or not script:
        raise RebuildError(
            f"{episode.url}: run.json does not name the episode's script; run `zray run` on it"
        )
    if "://" not in script and not Path(script).is_file():
        raise RebuildError(f"the episode's script {script} is gone; run `zray run` on it where it is now")
    folder = episode.store.root_url.rstrip("/")
    if safe_name(Path(script.rsplit("/", 1)[-1]).stem) != folder.rsplit("/", 1)[-1]:
        raise RebuildError(f"{script} does not make the episode folder {folder}; run `zray run` on it")
    project_store = episode.store.parent()
    config = dict(options["config"])
    # The run must land in this folder: its output root and project are where the folder is.
    config["output"] = project_store.parent().root_url
    config["project"] = project_store.root_url.rstrip("/").rsplit("/", 1)[-1]
    argv = [python, "-m", "zray", "run", script, "--quiet"]
    for lang in options.get("languages") or []:
        argv += ["--lang", str(lang)]
    intro = options.get("intro")
    if isinstance(intro, str) and intro:
        argv += ["--intro", intro]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZRAY_")}
    env.update(COLUMNS="160", NO_COLOR="1", PYTHONUNBUFFERED="1")
    return RebuildCommand(argv=argv, env=env, config_text=to_toml(config))


@dataclass
class Rebuild:
    """One background rebuild at a time; its output lines and exit code for the page to poll."""

    lines: list[str] = field(default_factory=list)
    exit_code: int | None = None
    started: float | None = None
    ended: float | None = None
    runs: int = 0  # how many rebuilds this server started (the page sees a new one begin)
    _process: subprocess.Popen[str] | None = None
    _guard: threading.Lock = field(default_factory=threading.Lock)

    @property
    def running(self) -> bool:
        return self._process is not None and self.exit_code is None

    def start(self, command: RebuildCommand) -> None:
        with self._guard:
            if self.running:
                raise RebuildError("a rebuild is already running; wait for it to finish")
            handle, config_path = tempfile.mkstemp(prefix="zray-review-", suffix=".toml")
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                out.write(command.config_text)
            argv = [*command.argv, "--config", config_path]
            self.lines, self.exit_code, self.ended = [f"$ {' '.join(argv[2:])}"], None, None
            self.started = time.time()
            self.runs += 1
            try:
                self._process = subprocess.Popen(
                    argv,
                    env=command.env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                    encoding="utf-8",
                    errors="replace",
                )
            except OSError as exc:
                os.unlink(config_path)
                raise RebuildError(f"could not start `zray run`: {exc}") from None
            threading.Thread(
                target=self._follow, args=(self._process, config_path), daemon=True, name="zray-rebuild"
            ).start()

    def _follow(self, process: subprocess.Popen[str], config_path: str) -> None:
        assert process.stdout is not None
        try:
            for line in process.stdout:
                if len(self.lines) < MAX_LINES:
                    self.lines.append(line.rstrip("\n"))
            code = process.wait()
        finally:
            with contextlib.suppress(OSError):
                os.unlink(config_path)
        with self._guard:
            self.exit_code, self.ended = code, time.time()

    def wait(self, timeout: float | None = None) -> int | None:
        process = self._process
        if process is None:
            return None
        process.wait(timeout)
        deadline = time.monotonic() + 5
        while self.exit_code is None and time.monotonic() < deadline:
            time.sleep(0.01)  # the reader thread records the exit code after the last line
        return self.exit_code

    def stop(self) -> None:
        process = self._process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()

    def status(self, since: int = 0) -> dict[str, Any]:
        since = max(0, since)
        return {
            "running": self.running,
            "runs": self.runs,
            "exit_code": self.exit_code,
            "started": self.started,
            "ended": self.ended,
            "lines": self.lines[since:],
            "next": len(self.lines),
        }
