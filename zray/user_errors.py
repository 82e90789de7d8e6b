"""The command line's one error boundary: every error a user can cause or meet is one line and an
exit code (`zray.errors.ZrayError` carries it), never a traceback."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import typer

from zray import errors
from zray.errors import ZrayError, crash_report
from zray.script import ScriptError


def working_on(folder: str | os.PathLike[str]) -> None:
    """Name the episode folder the command works on: an unexpected error leaves its traceback in the
    folder's logs/ when the folder is local (one behind a URL leaves it in the user's cache)."""
    text = os.fspath(folder)
    errors.current_folder = text if text and "://" not in text else None


@contextlib.contextmanager
def user_errors(*, episode: str | None = None) -> Iterator[None]:
    """Every error a user can cause or meet is one line and an exit code, never a traceback; anything
    else is a bug, reported in one line with the path of a log file holding its traceback (in
    `episode`'s logs/, for a command that works on an episode folder)."""
    if episode is not None:
        working_on(episode)
    try:
        yield
    except ScriptError as exc:
        for line in exc.lines():
            typer.echo(line, err=True)
        raise typer.Exit(exc.exit_code) from None
    except ZrayError as exc:
        typer.echo(f"zray: {exc}", err=True)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        typer.echo(
            "zray: interrupted; finished steps are saved, run the same command again to resume", err=True
        )
        raise typer.Exit(130) from None
    except (typer.Exit, typer.Abort, SystemExit):
        raise
    except Exception as exc:
        where = crash_report(exc, folder=errors.current_folder)
        first = (str(exc).strip().splitlines() or [""])[0]
        typer.echo(
            f"zray: unexpected error {type(exc).__name__}: {first} (a bug in zray; the traceback is in {where})",
            err=True,
        )
        raise typer.Exit(70) from None
