"""The `zray` command line: thin commands that parse, build a config and call the library."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from zray import script as script_mod

app = typer.Typer(
    name="zray",
    help="Turn JSON episode scripts into finished multi-language videos, on Ray.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

EXIT_INVALID = 2


@app.command()
def validate(
    scripts: Annotated[list[Path], typer.Argument(help="Script files to check.", show_default=False)],
) -> None:
    """Check scripts: prints OK per valid file, or one line per problem; exit 2 if any is invalid."""
    failed = False
    for path in scripts:
        checked = script_mod.check_file(path)
        for warning in checked.warnings:
            typer.echo(f"{warning.render(str(path))} (warning)", err=True)
        if checked.ok:
            typer.echo(f"{path}: OK")
        else:
            failed = True
            for problem in checked.errors:
                typer.echo(problem.render(str(path)))
    if failed:
        raise typer.Exit(EXIT_INVALID)


@app.command()
def schema() -> None:
    """Print the JSON Schema of an episode script (for editors)."""
    typer.echo(json.dumps(script_mod.json_schema(), indent=2, ensure_ascii=False))


def main() -> None:
    app()
