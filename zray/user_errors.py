"""The command line's one error boundary: every error a user can cause or meet is one line and an
exit code (`zray.errors.ZrayError` carries it), never a traceback."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import typer

from zray import errors
from zray.errors import ZrayError, crash_report
from zray.script import ScriptError


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Every error a user can cause or meet is one line and an exit code, never a traceback; anything
    else is a bug, reported in one line with the path of a log file holding its traceback."""
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
