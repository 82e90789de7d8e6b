"""Errors a user can cause while publishing, importable without the `publish` extra's libraries,
so the CLI can report them on an install that has none of them."""

from __future__ import annotations

from zray.errors import InvalidInput, ZrayError


class AuthError(ZrayError, ValueError):
    """No usable token: the message is one line saying what to run."""


class QuotaError(ZrayError, ValueError):
    """An upload that would exceed the daily quota; the message has the numbers."""


class UnknownLanguage(InvalidInput, ValueError):
    """`--lang` names a language the episode has no finished video in."""


class MissingExtra(ZrayError, ImportError):
    """The `publish` extra's libraries are not installed."""


PUBLISH_EXTRA_HINT = "install the publish extra: pip install 'zray[publish]'"
