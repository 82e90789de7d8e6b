"""OAuth tokens for YouTube: one per project and language (each language is its own channel).

Tokens are stored as JSON (`Credentials.to_json`), never pickled, in files only the user can
read (0600, in a 0700 folder), and they are never logged. A token file anyone else could read is
refused rather than trusted.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import stat
import tempfile
import webbrowser
from collections.abc import Callable
from pathlib import Path
from typing import Any

from zray.input_files import InputFileError, file_problem, read_input
from zray.keys import safe_name
from zray.publish.errors import PUBLISH_EXTRA_HINT, AuthError, MissingExtra

try:
    import google.auth.exceptions
    import httplib2
    from google.oauth2.credentials import Credentials
    from google_auth_httplib2 import Request as HttplibRequest
except ImportError as exc:  # a base install: one line saying which extra to add
    raise MissingExtra(
        f"YouTube needs {exc.name or 'the Google client libraries'}: {PUBLISH_EXTRA_HINT}"
    ) from None

from zray.publish.settings import YouTubeConfig

SECRET_MAX_BYTES = 64 * 1024  # a client file or a token is a few hundred bytes
SCOPES = (
    "https://www.googleapis.com/auth/youtube.upload",
    # captions.insert and videos.update need the wider scope.
    "https://www.googleapis.com/auth/youtube.force-ssl",
)


def auth_hint(project: str, lang: str) -> str:
    return f"run: zray auth youtube --project {project} --lang {lang}"


def token_path(project: str, lang: str, config: YouTubeConfig) -> Path:
    return Path(config.token_dir).expanduser() / f"{safe_name(project)}_{safe_name(lang)}.json"


def write_private(path: Path, text: str) -> None:
    """Write a secret atomically: a 0600 temp file in a 0700 folder, then a rename."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")  # mkstemp: 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def read_private(path: Path) -> str:
    """Read a secret, refusing a file that others can read or write."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise AuthError(
            f"{path} has permissions {mode:04o}; zray reads secrets only from files private to you: "
            f"chmod 600 {path}"
        )
    try:
        return read_input(path, limit=SECRET_MAX_BYTES).decode("utf-8")
    except InputFileError as exc:
        raise AuthError(f"{path}: {exc}") from None


def load_client_config(config: YouTubeConfig) -> dict[str, Any]:
    """The OAuth client from client_secret.json (a Desktop app client), with token_uri overridden."""
    path = Path(config.client_secret).expanduser()
    problem = file_problem(path)
    if problem == "no such file":
        raise AuthError(
            f"no OAuth client file at {path}: download it from Google Cloud console "
            "(APIs & Services > Credentials > OAuth client ID, Desktop app) and set youtube.client_secret"
        )
    try:
        raw = read_input(path, limit=SECRET_MAX_BYTES)
    except InputFileError as exc:
        raise AuthError(f"youtube.client_secret {path}: {exc}") from None
    try:
        data = json.loads(raw.decode("utf-8"))
        kind = "installed" if "installed" in data else "web"
        client = data[kind]
        missing = [k for k in ("client_id", "auth_uri", "token_uri") if not client.get(k)]
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
        raise AuthError(f"{path} is not a Google OAuth client file (no installed or web client)") from None
    if missing:
        raise AuthError(f"{path} is not a Google OAuth client file: {kind}.{missing[0]} is missing")
    if config.token_uri:
        client["token_uri"] = config.token_uri
    return {kind: client}


def client_id(config: YouTubeConfig) -> str:
    config_data = load_client_config(config)
    return str(next(iter(config_data.values()))["client_id"])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        return int(sock.getsockname()[1])


def _has_browser() -> bool:
    try:
        webbrowser.get()
    except webbrowser.Error:
        return False
    return True


def authorize(
    project: str, lang: str, config: YouTubeConfig, *, open_browser: bool = True, port: int = 0
) -> Path:
    """Run the installed-app consent once for a channel and store its token; returns the token path.

    Google removed the copy-paste (out-of-band) flow, so a headless machine also listens on a
    local port: the user forwards it (`ssh -L`) and opens the printed URL on their own computer.
    """
    from google_auth_oauthlib.flow import InstalledAppFlow

    flow = InstalledAppFlow.from_client_config(load_client_config(config), scopes=list(SCOPES))
    port = port or _free_port()
    browser = open_browser and _has_browser()
    where = (
        "A browser window should open; if it does not, open this URL"
        if browser
        else f"On a machine without a browser, first forward the port: ssh -L {port}:localhost:{port} "
        "<this machine>; then open this URL on your own computer"
    )
    message = (
        f"Sign in with the YouTube channel for project {project}, language {lang}.\n{where}:\n{{url}}\n"
        f"Waiting on port {port}..."
    )
    credentials = flow.run_local_server(
        host="localhost",
        port=port,
        open_browser=browser,
        authorization_prompt_message=message,
        access_type="offline",
        prompt="consent",  # always return a refresh token, even for a channel that consented before
    )
    path = token_path(project, lang, config)
    write_private(path, credentials.to_json())
    return path


def load_credentials(
    project: str,
    lang: str,
    config: YouTubeConfig,
    *,
    interactive: bool,
    http: httplib2.Http | None = None,
) -> Credentials:
    """The channel's credentials, refreshed if expired (and saved back).

    Without a usable token, an interactive run starts the consent flow; a non-interactive one
    (a cluster, CI) raises AuthError with the command to run.
    """
    path = token_path(project, lang, config)
    hint = auth_hint(project, lang)
    if not path.exists():
        if not interactive:
            raise AuthError(f"no YouTube token for project {project}, language {lang}; {hint}")
        authorize(project, lang, config)
    text = read_private(path)
    try:
        credentials = Credentials.from_authorized_user_info(json.loads(text), scopes=list(SCOPES))
        # google-auth ignores a token file's token_uri (a tampered file cannot send the refresh
        # token elsewhere); only the config can point refreshes at another endpoint.
        if config.token_uri:
            expiry = credentials.expiry
            credentials = credentials.with_token_uri(config.token_uri)
            credentials.expiry = expiry  # the copy forgets it, and would pass for a fresh token
    except (ValueError, KeyError, TypeError, AttributeError):
        raise AuthError(f"unreadable YouTube token {path}; {hint}") from None
    if credentials.valid:
        return credentials
    if not credentials.refresh_token:
        raise AuthError(
            f"the YouTube token for project {project}, language {lang} cannot be refreshed; {hint}"
        )
    try:
        credentials.refresh(HttplibRequest(http or httplib2.Http(timeout=config.timeout_seconds)))
    except google.auth.exceptions.RefreshError:
        if interactive:
            authorize(project, lang, config)
            return load_credentials(project, lang, config, interactive=False, http=http)
        # The error text can echo the token endpoint's answer; say only what to do.
        raise AuthError(
            f"the YouTube token for project {project}, language {lang} was revoked or expired; {hint}"
        ) from None
    except (google.auth.exceptions.TransportError, OSError, httplib2.HttpLib2Error) as exc:
        raise AuthError(f"cannot reach Google to refresh the YouTube token ({type(exc).__name__})") from None
    write_private(path, credentials.to_json())
    return credentials


def credentials_provider(
    project: str, config: YouTubeConfig, *, interactive: bool, http: httplib2.Http | None = None
) -> Callable[[str], Credentials]:
    """`credentials_for(lang)` for `upload_episode`: one token per language of the project."""

    def credentials_for(lang: str) -> Credentials:
        return load_credentials(project, lang, config, interactive=interactive, http=http)

    return credentials_for
