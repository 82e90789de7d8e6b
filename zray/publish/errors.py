"""Errors a user can cause while publishing, importable without the `publish` extra's libraries,
so the CLI can report them on an install that has none of them."""

from __future__ import annotations

from zray.errors import ZrayError


class AuthError(ZrayError, ValueError):
    """No usable token: the message is one line saying what to run."""


class QuotaError(ZrayError, ValueError):
    """An upload that would exceed the daily quota; the message has the numbers."""
