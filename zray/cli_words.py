"""The command line in its own words: help that shows flags as flags and choices as choices, and a bad
value reported as one line naming the flag (`--profile: 'fast' is not one of auto, draft, production`),
never the validation library's wording ("Value error", "Input should be")."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import typer
from pydantic import ValidationError

# Typer carries its own copy of click; its exceptions and parameters are these, not the click package's.
from typer import _click as click
from typer.core import TyperArgument, TyperGroup, TyperOption

from zray.validation_words import plain_message

# Value placeholders for options whose type alone says little.
_METAVARS = {
    "output": "FOLDER|URL",
    "site": "FOLDER|URL",
    "episode_dir": "EPISODE",
    "config": "FILE",
    "intro": "FILE",
    "address": "ADDRESS",
    "project": "NAME",
    "port": "PORT",
    "max_episodes_in_flight": "N",
}


def metavar(param: click.Parameter) -> str:
    """What --help shows after a parameter: nothing for a flag, `a|b|c` for a choice, a NAME otherwise."""
    if isinstance(param, TyperOption) and param.is_flag:
        return ""
    descriptor = getattr(param, "type_descriptor", None)
    choices = getattr(descriptor, "choices", None)
    if choices:
        return "|".join(str(getattr(c, "value", c)) for c in choices)
    if isinstance(param, TyperOption) and getattr(descriptor, "annotation", None) is bool:
        return ""
    name = _METAVARS.get(param.name or "", (param.name or "value").upper())
    return f"{name}..." if isinstance(param, TyperArgument) and param.nargs != 1 else name


def _label(param: click.Parameter | None) -> str:
    if param is None:
        return ""
    if isinstance(param, TyperOption):
        longs = [o for o in param.opts if o.startswith("--")]
        return (longs or param.opts)[0]
    return metavar(param).removesuffix("...")


def error_line(exc: click.ClickException) -> str:
    """One line for a usage error: the flag, then what is wrong with its value."""
    if isinstance(exc, click.exceptions.MissingParameter):
        return f"missing {_label(exc.param)}".rstrip()
    if isinstance(exc, click.exceptions.BadParameter):
        cause = exc.__cause__
        if isinstance(cause, ValidationError) and cause.errors():
            message = plain_message(cause.errors()[0])
        elif isinstance(cause, ValueError):
            message = plain_message({"type": "value_error", "msg": str(cause), "input": None})
        else:
            message = plain_message({"type": "", "msg": exc.message, "input": None})
        label = _label(exc.param)
        return f"{label}: {message}" if label else message
    message = exc.format_message()
    return message[:1].lower() + message[1:]


class ZrayGroup(TyperGroup):
    """Typer's group, with zray's placeholders in help and one-line usage errors."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        _set_metavars(self)

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        try:
            result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.ClickException as exc:
            # `zray` alone has printed its help already.
            if not isinstance(exc, click.exceptions.NoArgsIsHelpError):
                hint = ""
                ctx = getattr(exc, "ctx", None)
                if ctx is not None and type(exc) in {
                    click.exceptions.UsageError,
                    click.exceptions.NoSuchOption,
                }:
                    hint = f" (see {ctx.command_path} --help)"
                click.echo(f"zray: {error_line(exc)}{hint}", err=True)
            if standalone_mode:
                sys.exit(exc.exit_code)
            raise
        except typer.Abort:
            click.echo("zray: aborted", err=True)
            if standalone_mode:
                sys.exit(1)
            raise
        if standalone_mode:
            sys.exit(result if isinstance(result, int) else 0)
        return result


class _Argument(TyperArgument):
    """An argument shown as SCRIPT in usage and help (typer writes `{script}` and `<path>`)."""

    def _usage_display_name(self) -> str:
        name = self.metavar or metavar(self)
        return name if self.required else f"[{name}]"

    def display_type_rich(self, ctx: click.Context) -> str | None:
        return None


def _set_metavars(command: click.Command) -> None:
    for param in command.params:
        if param.metavar is None or (param.metavar == "" and not getattr(param, "is_flag", False)):
            param.metavar = metavar(param)
        if type(param) is TyperArgument:
            param.__class__ = _Argument  # the same object, with zray's display; parsing is unchanged
    original = command.get_help_option

    def help_option(ctx: click.Context) -> TyperOption | None:
        option = original(ctx)
        if option is not None:
            option.metavar = ""
        return option

    command.get_help_option = help_option  # type: ignore[method-assign]
    for child in getattr(command, "commands", {}).values():
        _set_metavars(child)
