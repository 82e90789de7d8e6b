"""One channel's YouTube client: the real googleapiclient resource over an authorized transport,
with exponential backoff for what YouTube or the network may fail for a while, and every answered
request counted in the quota ledger."""

from __future__ import annotations

import http.client
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httplib2
from google.oauth2.credentials import Credentials
from google_auth_httplib2 import AuthorizedHttp
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError
from googleapiclient.http import HttpRequest

from zray.errors import ZrayError
from zray.publish import auth
from zray.publish.errors import AuthError
from zray.publish.quota import QuotaLedger
from zray.publish.settings import YouTubeConfig

TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    httplib2.HttpLib2Error,
    http.client.HTTPException,
)
MAX_BACKOFF_SECONDS = 64.0


class UploadFailed(ZrayError, RuntimeError):
    """A step that YouTube refused or that kept failing after every retry."""


def authorized_http(
    credentials: Credentials,
    *,
    config: YouTubeConfig,
    http_factory: Callable[[], httplib2.Http] | None = None,
) -> AuthorizedHttp:
    inner = http_factory() if http_factory else httplib2.Http(timeout=config.timeout_seconds)
    # httplib2 follows 308 as a redirect; in the resumable protocol it means "chunk taken, go on".
    inner.redirect_codes = inner.redirect_codes - {308}
    return AuthorizedHttp(credentials, http=inner)


def build_client(http: AuthorizedHttp, *, config: YouTubeConfig) -> Any:
    """The real googleapiclient resource, from the discovery document shipped with the client."""
    options = {"api_endpoint": config.api_endpoint} if config.api_endpoint else None
    return build(
        "youtube", "v3", http=http, static_discovery=True, cache_discovery=False, client_options=options
    )


def describe(exc: BaseException) -> str:
    if isinstance(exc, HttpError):
        return f"HTTP {exc.status_code}: {exc.reason or 'no reason given'}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def describe_failure(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, UploadFailed) else describe(exc)


def retriable(exc: BaseException) -> bool:
    if isinstance(exc, HttpError):
        return exc.status_code >= 500 or exc.status_code == 429
    return isinstance(exc, TRANSPORT_ERRORS)


class Backoff:
    """Exponential backoff with jitter across consecutive failures of one step."""

    def __init__(self, config: YouTubeConfig, sleep: Callable[[float], None]):
        self.config = config
        self.sleep = sleep
        self.failures = 0

    def wait(self, exc: BaseException, what: str) -> None:
        self.failures += 1
        if self.failures > self.config.retries:
            raise UploadFailed(
                f"{what} failed {self.failures} times in a row; last: {describe(exc)}"
            ) from None
        delay = min(self.config.backoff_seconds * 2 ** (self.failures - 1), MAX_BACKOFF_SECONDS)
        self.sleep(delay * random.uniform(0.5, 1.0))

    def reset(self) -> None:
        self.failures = 0


@dataclass
class Api:
    """One channel's client with what every call needs: retries and the quota ledger."""

    youtube: Any
    http: AuthorizedHttp
    config: YouTubeConfig
    ledger: QuotaLedger | None
    sleep: Callable[[float], None]

    def backoff(self) -> Backoff:
        return Backoff(self.config, self.sleep)

    def record(self, method: str) -> None:
        if self.ledger is not None:
            self.ledger.record(method)

    def execute(self, request: HttpRequest, method: str) -> Any:
        backoff = self.backoff()
        while True:
            try:
                response = request.execute()
            except HttpError as exc:
                if retriable(exc):
                    backoff.wait(exc, method)
                    continue
                self.record(method)  # YouTube charges for requests it answered, refused ones too
                raise
            except TRANSPORT_ERRORS as exc:
                backoff.wait(exc, method)
                continue
            self.record(method)
            return response


def client_id(credentials: Credentials, config: YouTubeConfig) -> str:
    """The OAuth client a token belongs to: its quota is shared by every channel it uploads to."""
    found = getattr(credentials, "client_id", None)
    if found:
        return str(found)
    try:
        return auth.client_id(config)
    except AuthError:
        return "unknown-client"
