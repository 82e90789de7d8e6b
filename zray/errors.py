"""The root of every error a user can cause or meet: one class, one line, one exit code.

The CLI turns a `ZrayError` into its message on one line and `exit_code`; anything else that
escapes is a bug, which the CLI's last-resort handler logs with its traceback. Modules keep their
own error classes (so callers can tell a bad script from an unreachable store), all derived from
this one. Stdlib only: every layer, engines and media included, may import it.
"""

from __future__ import annotations


class ZrayError(Exception):
    """A problem with input, configuration or the world outside, told in one line with its fix."""

    exit_code: int = 1

    def __str__(self) -> str:
        # One line, whatever a wrapped library put in the message.
        text = super().__str__()
        return " ".join(text.split()) if "\n" in text else text


class RunError(ZrayError):
    """A run that cannot start or finish; the message is one line with the fix."""


class InvalidInput(ZrayError):
    """Input that can never work as given (a script, a setting, a flag): exit 2, like `validate`."""

    exit_code = 2


def crash_report(exc: BaseException, *, folder: str | None = None) -> str:
    """Write the traceback of an unexpected error to a log file; returns the file's path.

    The episode's `logs/` folder when it is local and writable, else the user's cache folder.
    """
    import datetime as dt
    import os
    import traceback
    from pathlib import Path

    import platformdirs

    stamp = dt.datetime.now().strftime("%Y%m%d_%H%M%S")
    text = "".join(traceback.format_exception(exc))
    candidates = [Path(folder) / "logs"] if folder else []
    candidates.append(Path(platformdirs.user_cache_dir("zray")) / "crashes")
    for where in candidates:
        try:
            where.mkdir(parents=True, exist_ok=True)
            path = where / f"crash_{stamp}_{os.getpid()}.log"
            path.write_text(text, encoding="utf-8")
            return str(path)
        except OSError:
            continue
    return "(no writable place for the traceback)"


# The local episode folder a command is working on, for `crash_report` (set by the commands).
current_folder: str | None = None
