"""Files a user names (a script, a config, an intro, studio pictures and clips, fonts, the OAuth
client file): each must be a regular file, and is read with a size bound.

A FIFO given as an intro would hang a run forever (nothing ever writes to it), a device such as
/dev/zero never ends, and a folder is no file at all: each is told for what it is, in one line,
before any work. A file is opened without blocking and checked on the open descriptor, so one
swapped for a FIFO after the check cannot hang the read either. Stdlib only.
"""

from __future__ import annotations

import os
import stat

from zray.errors import ZrayError


class InputFileError(ZrayError):
    """A named input that is not a regular file, or is over its size bound; the message says which
    (without the path: callers put it where their messages put the file)."""


def kind_problem(mode: int) -> str | None:
    """What a file of this mode is when it is not a regular file, as a message; None if it is."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "it is a folder, not a file"
    if stat.S_ISFIFO(mode):
        return "it is a named pipe (FIFO), not a file"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "it is a device, not a file"
    if stat.S_ISSOCK(mode):
        return "it is a socket, not a file"
    return "it is not a regular file"


def file_problem(path: str | os.PathLike[str]) -> str | None:
    """Why `path` cannot be read as a file (missing, a folder, a FIFO, a device), or None."""
    try:
        mode = os.stat(path).st_mode  # a link is followed: a link to a regular file is one
    except FileNotFoundError:
        return "no such file"
    except OSError as exc:
        return f"cannot read it: {exc.strerror or exc}"
    return kind_problem(mode)


def read_input(path: str | os.PathLike[str], *, limit: int) -> bytes:
    """The bytes of a regular file of at most `limit` bytes; InputFileError otherwise."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise InputFileError("no such file") from None
    except IsADirectoryError:
        raise InputFileError("it is a folder, not a file") from None
    except OSError as exc:
        raise InputFileError(f"cannot read it: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        problem = kind_problem(info.st_mode)
        if problem:
            raise InputFileError(problem)
        if info.st_size > limit:
            raise InputFileError(
                f"it is {info.st_size:,} bytes, more than the {limit:,} such a file may have"
            )
        with os.fdopen(os.dup(fd), "rb") as fh:
            data = fh.read(limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:  # it grew while being read
        raise InputFileError(f"it is more than the {limit:,} bytes such a file may have")
    return data


def json_depth(data: object) -> int:
    """How deeply arrays and objects nest in parsed JSON (or TOML), without recursion."""
    deepest, stack = 0, [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            deepest = max(deepest, depth)
            stack += [(v, depth + 1) for v in value.values()]
        elif isinstance(value, list):
            deepest = max(deepest, depth)
            stack += [(v, depth + 1) for v in value]
    return deepest
