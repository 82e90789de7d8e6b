"""The seed's pickled OAuth tokens (`token_<project>_<lang>.pickle`) as zray's 0600 JSON tokens.

A pickle is a program: loading one may call any function it names. These are read by an
unpickler that knows only google-auth's `Credentials` (and the google-auth helpers a pickled
one carries), datetimes, and the standard reconstruction helpers; a pickle naming anything else
is refused before that name is resolved, so nothing in it runs. Even the allowed classes are not
google-auth's own: each is an inert stand-in that only keeps the state it is given, and the
token's fields are then read from that state and handed to `Credentials`' public constructor.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zray.adopt.seed import UnsafeFile, read_inside

# The state google-auth pickles for a user credential (`Credentials.__getstate__`), by field.
_FIELDS = ("token", "_refresh_token", "_token_uri", "_client_id", "_client_secret", "_scopes", "expiry")


class RefusedPickle(Exception):
    """A token pickle that names something other than a google-auth credential."""


class _State:
    """Stands in for a pickled google-auth object: keeps its state, runs nothing of google-auth's."""

    def __init__(self, *args: Any) -> None:  # a named tuple of google-auth's is rebuilt from its fields
        self.args = args

    def __setstate__(self, state: Any) -> None:
        self.state = state


class _Credentials(_State):
    pass


def _reconstructor(cls: type, base: type, state: Any) -> Any:
    """copyreg._reconstructor (protocols 0 and 1), for a stand-in only: it keeps `state` and calls
    nothing of `base` (an object or a named tuple of google-auth's)."""
    if base not in (object, tuple) or not (isinstance(cls, type) and issubclass(cls, _State)):
        raise RefusedPickle(f"it rebuilds {getattr(cls, '__name__', cls)!r} on {base!r}")
    made = object.__new__(cls)
    made.args = (state,)
    return made


def _encode(text: str, encoding: str = "utf-8") -> bytes:
    """_codecs.encode as protocols 0-2 use it for bytes: latin-1 only."""
    if not isinstance(text, str) or encoding != "latin1":
        raise RefusedPickle("it encodes text in an unexpected way")
    return text.encode("latin1")


_ALLOWED: dict[tuple[str, str], Any] = {
    ("google.oauth2.credentials", "Credentials"): _Credentials,
    ("datetime", "datetime"): dt.datetime,
    ("datetime", "timedelta"): dt.timedelta,
    ("datetime", "timezone"): dt.timezone,
    ("copyreg", "_reconstructor"): _reconstructor,
    ("copy_reg", "_reconstructor"): _reconstructor,
    **{
        (module, kind.__name__): kind
        for module in ("builtins", "__builtin__")  # protocols 0-2 spell it as Python 2 did
        for kind in (object, tuple, list, dict, set, frozenset)
    },
    ("_codecs", "encode"): _encode,
}
# google-auth's own helpers a pickled credential carries (newer versions): kept as inert state.
_GOOGLE_AUTH_HELPERS = "google.auth._"


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        found = _ALLOWED.get((module, name))
        if found is not None:
            return found
        if module.startswith(_GOOGLE_AUTH_HELPERS) and name.isidentifier() and "." not in name:
            return type(name, (_State,), {})
        raise RefusedPickle(f"it names {module}.{name}, which is not part of a google-auth credential")


def load_token(data: bytes) -> dict[str, Any]:
    """The authorized-user fields of a pickled google-auth `Credentials` (RefusedPickle otherwise)."""
    try:
        loaded = _Unpickler(io.BytesIO(data)).load()
    except RefusedPickle:
        raise
    except Exception as exc:  # a truncated or garbled file
        raise RefusedPickle(f"it is not a readable pickle ({type(exc).__name__})") from None
    if not isinstance(loaded, _Credentials) or not isinstance(getattr(loaded, "state", None), dict):
        raise RefusedPickle(f"it holds a {type(loaded).__name__}, not a google-auth Credentials")
    state = loaded.state
    fields = {name: state.get(name) for name in _FIELDS}
    for name in ("token", "_refresh_token", "_token_uri", "_client_id", "_client_secret"):
        if fields[name] is not None and not isinstance(fields[name], str):
            raise RefusedPickle(f"its {name.lstrip('_')} is not text")
    scopes = fields["_scopes"]
    if scopes is not None and (
        not isinstance(scopes, list | tuple | set | frozenset) or not all(isinstance(s, str) for s in scopes)
    ):
        raise RefusedPickle("its scopes are not a list of text")
    if fields["expiry"] is not None and not isinstance(fields["expiry"], dt.datetime):
        raise RefusedPickle("its expiry is not a date")
    if not fields["_refresh_token"]:
        raise RefusedPickle("it has no refresh token, so zray could not keep it working")
    return fields


def to_json(fields: dict[str, Any]) -> str:
    """The token as google-auth's own JSON (`Credentials.to_json`), which zray's token store holds."""
    from google.oauth2.credentials import Credentials

    scopes = fields["_scopes"]
    credentials = Credentials(
        fields["token"],
        refresh_token=fields["_refresh_token"],
        token_uri=fields["_token_uri"],
        client_id=fields["_client_id"],
        client_secret=fields["_client_secret"],
        scopes=list(scopes) if scopes else None,
    )
    expiry = fields["expiry"]
    if expiry is not None:
        # google-auth keeps naive UTC datetimes.
        credentials.expiry = expiry.astimezone(dt.UTC).replace(tzinfo=None) if expiry.tzinfo else expiry
    text = str(credentials.to_json())
    try:  # what zray's token store will read back (zray.publish.auth.load_credentials)
        Credentials.from_authorized_user_info(json.loads(text))
    except ValueError as exc:
        raise RefusedPickle(f"it is not a usable user token ({str(exc).split('.')[0]})") from None
    return text


@dataclass(frozen=True)
class TokenFile:
    name: str  # the pickle's file name
    project: str
    lang: str


def seed_tokens(folder: Path) -> list[TokenFile]:
    """The `token_<project>_<lang>.pickle` files of a folder (a language code has no underscore)."""
    found = []
    for path in sorted(folder.glob("token_*_*.pickle")):
        project, _, lang = path.name[len("token_") : -len(".pickle")].rpartition("_")
        if project and lang:
            found.append(TokenFile(path.name, project, lang.lower()))
    return found


@dataclass
class Converted:
    lines: list[str]  # one per token: converted, kept, or would be converted
    refused: list[str]  # one per token that could not be converted


def convert_tokens(
    folder: Path,
    *,
    seed_project: str,
    project: str,
    target: Callable[[str, str], Path],
    write: Callable[[Path, str], None],
    dry_run: bool,
) -> Converted:
    """Convert the tokens of the seed's project (`seed_project`) to zray's store under `project`;
    `target(project, lang)` is the token's path there, `write` writes a secret (0600)."""
    out = Converted([], [])
    tokens = seed_tokens(folder)
    if not tokens:
        out.refused.append(f"{folder}: no token_<project>_<lang>.pickle files here")
    for token in tokens:
        if token.project != seed_project:
            out.lines.append(
                f"{token.name}: project {token.project!r}, not this episode's ({seed_project!r}); skipped"
            )
            continue
        try:
            text = to_json(load_token(read_inside(folder, token.name).data))
        except (RefusedPickle, UnsafeFile) as exc:
            out.refused.append(f"{folder / token.name}: not converted, nothing in it was run: {exc}")
            continue
        except OSError as exc:
            out.refused.append(f"{folder / token.name}: cannot read it ({exc.strerror or exc})")
            continue
        path = target(project, token.lang)
        if path.exists():
            out.lines.append(
                f"{token.name}: zray already has a token at {path}; kept (delete it to convert again)"
            )
            continue
        if dry_run:
            out.lines.append(f"{token.name}: would be written as {path} (JSON, 0600)")
            continue
        write(path, text)
        out.lines.append(f"{token.name}: written as {path} (JSON, 0600)")
    return out
