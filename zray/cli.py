"""The `zray` command line: thin commands that parse, build a config and call the library."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from zray import __version__
from zray import script as script_mod
from zray.cli_words import ZrayGroup
from zray.config import Config, ConfigError, load_config
from zray.review.cli import report_command, review_command
from zray.user_errors import user_errors, working_on

app = typer.Typer(
    cls=ZrayGroup,
    name="zray",
    help="Turn JSON episode scripts into finished multi-language videos, on Ray.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

EXIT_INVALID = 2


class Profile(StrEnum):
    auto = "auto"
    draft = "draft"
    production = "production"


class Preset(StrEnum):
    fast = "fast"
    final = "final"


class Layout(StrEnum):
    seed = "seed"
    hugo = "hugo"


class Privacy(StrEnum):
    private = "private"
    unlisted = "unlisted"
    public = "public"


# Which flag sets which setting, so a bad value is reported as the flag the user typed.
FLAG_NAMES = {
    "output": "--output",
    "profile": "--profile",
    "video__preset": "--preset",
    "project": "--project",
    "address": "--address",
    "web__site": "--site",
    "web__layout": "--layout",
    "shared_storage": "--shared-storage",
    "shorts__enabled": "--shorts",
}


def flag(*names: str, help: str) -> Any:
    """A boolean option shown as a bare flag in --help (no `<bool>` value)."""
    return typer.Option(*names, help=help, metavar="")


def config_from(file: Path | None, **flags: Any) -> Config:
    return load_config(file, flag_names=FLAG_NAMES, **flags)


def languages(values: list[str] | None) -> list[str]:
    """Language codes as the script spells them: `--lang EN` is `--lang en`."""
    return list(dict.fromkeys(value.strip().lower() for value in values or [] if value.strip()))


def _value(choice: StrEnum | None) -> str | None:
    return choice.value if choice is not None else None


# Options shared by several commands.
Output = Annotated[str | None, typer.Option("--output", "-o", help="Output folder or URL (s3://, gs://).")]
Langs = Annotated[
    list[str] | None, typer.Option("--lang", metavar="LANG", help="Only these languages (repeatable).")
]
ProfileOpt = Annotated[
    Profile | None,
    typer.Option(help="Engines: draft (CPU, no downloads), production, or auto (GPU -> production)."),
]
PresetOpt = Annotated[
    Preset | None, typer.Option(help="fast (x264 ultrafast, CRF 23) or final (medium, CRF 18).")
]
Address = Annotated[str | None, typer.Option(help="Join this Ray cluster (auto, host:port, ray://...).")]
ConfigFile = Annotated[Path | None, typer.Option("--config", help="TOML config file.")]
Quiet = Annotated[bool, flag("--quiet", "-q", help="Log lines only, no progress bars.")]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"zray {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print zray's version and exit.", metavar="", callback=_version, is_eager=True
        ),
    ] = False,
) -> None:
    """Turn JSON episode scripts into finished multi-language videos, on Ray."""


@app.command()
def validate(
    scripts: Annotated[list[Path], typer.Argument(help="Script files to check.", show_default=False)],
    config: ConfigFile = None,
) -> None:
    """Check scripts: prints OK per valid file, or one line per problem; exit 2 if any is invalid."""
    with user_errors():
        limits = config_from(config).limits.script_limits()
    failed = False
    for path in scripts:
        checked = script_mod.check_file(path, limits=limits)
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


@app.command()
def run(
    script: Annotated[Path, typer.Argument(help="The episode script (JSON).", show_default=False)],
    output: Output = None,
    lang: Langs = None,
    profile: ProfileOpt = None,
    preset: PresetOpt = None,
    intro: Annotated[
        Path | None, typer.Option(help="Clip to prepend (default: inputs/assets/<project>/intro*.mp4).")
    ] = None,
    project: Annotated[
        str | None, typer.Option(help="Project name (default: the script's folder name).")
    ] = None,
    address: Address = None,
    config: ConfigFile = None,
    clean: Annotated[bool, flag("--clean", help="Remove the episode's generated files first.")] = False,
    quiet: Quiet = False,
    dashboard: Annotated[bool, flag("--dashboard", help="Start Ray's dashboard (embedded Ray).")] = False,
    upload_after: Annotated[bool, flag("--upload", help="Then upload each language to its channel.")] = False,
    publish_after: Annotated[
        bool, flag("--publish", help="Then publish the episode to the website.")
    ] = False,
    site: Annotated[str | None, typer.Option(help="Website root for --publish (folder or URL).")] = None,
    force: Annotated[
        bool,
        flag("--force", help="Let this script take over a folder another script of the same episode made."),
    ] = False,
    dry_run: Annotated[
        bool, flag("--dry-run", help="With --clean: list what would be deleted, delete nothing.")
    ] = False,
    explain: Annotated[
        bool, flag("--explain", help="List what is stale and why, without running anything.")
    ] = False,
    shorts: Annotated[
        bool,
        flag("--shorts", help="Also make vertical Shorts from the chapters (and upload them with --upload)."),
    ] = False,
) -> None:
    """Make the finished videos of one episode script, for every language."""
    from zray.pipeline.prepare import episode_prefix
    from zray.pipeline.run import RunRequest, run_episode

    if dry_run and not clean:
        typer.echo("zray: --dry-run goes with --clean; use --explain to see what a run would do", err=True)
        raise typer.Exit(2)
    with user_errors():
        cfg = config_from(
            config,
            output=output,
            profile=_value(profile),
            video__preset=_value(preset),
            project=project,
            address=address,
            quiet=quiet or None,
            dashboard=dashboard or None,
            web__site=site,
            shorts__enabled=shorts or None,
        )
        request = RunRequest(script=script, languages=languages(lang), intro=intro, clean=clean, force=force)
        working_on(f"{cfg.output.rstrip('/')}/{episode_prefix(script, cfg)}")
        if dry_run or explain:
            _preview(request, cfg, explain=explain)
            return
        report = run_episode(request, cfg)
        done = report.finished
        uploaded_ok = True
        if upload_after and done:
            uploaded_ok = _upload(
                report.episode,
                cfg,
                done,
                privacy=None,
                dry_run=False,
                force=False,
                replace=False,
                shorts=cfg.shorts.enabled,
            )
        if publish_after and done:
            _publish(report.episode, cfg, done)
    if not report.ok or not uploaded_ok:
        raise typer.Exit(1)


def _preview(request: Any, cfg: Config, *, explain: bool) -> None:
    from zray.pipeline.prepare import clean as clean_files
    from zray.pipeline.run import preview

    prep = preview(request, cfg)
    if explain:
        for node in prep.stale:
            typer.echo(f"{node.id}: {prep.reasons.get(node.id) or 'needed by what is stale'}")
        typer.echo(f"{prep.store.root_url}: {len(prep.stale)} of {len(prep.plan.nodes)} steps would run")
        return
    doomed = clean_files(prep.store, prep.record, dry_run=True)
    sizes = {path: size for path, (size, _) in prep.store.stamps().items()}
    for line in removal_listing(doomed, sizes):
        typer.echo(line)


def removal_listing(paths: list[str], sizes: dict[str, int]) -> list[str]:
    """What `--clean --dry-run` prints: files grouped by folder, then one total line."""
    folders: dict[str, list[str]] = {}
    for path in sorted(paths):
        folder, _, name = path.rpartition("/")
        folders.setdefault(folder, []).append(name)
    lines = []
    for folder, names in folders.items():
        size = sum(sizes.get(f"{folder}/{n}" if folder else n, 0) for n in names)
        lines.append(f"{folder or '.'}/ ({len(names)} file{'s' * (len(names) != 1)}, {_mb(size)})")
        lines += [f"  {name}" for name in names]
    total = sum(sizes.get(path, 0) for path in paths)
    lines.append(f"{len(paths)} files ({_mb(total)}) would be removed; nothing deleted")
    return lines


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


@app.command()
def verify(
    episode_dir: Annotated[str, typer.Argument(help="An episode folder (or URL).", show_default=False)],
) -> None:
    """Hash every file the episode's record lists: finds damage a rerun's quick check cannot see."""
    from zray.pipeline.records import verify as verify_folder
    from zray.store import Store

    with user_errors(episode=episode_dir):
        checked, findings = verify_folder(Store(episode_dir))
    for finding in findings:
        typer.echo(f"{finding.path}: {finding.problem}")
    typer.echo(f"{episode_dir}: {checked} files checked, {len(findings)} problem(s)")
    if findings:
        raise typer.Exit(1)


@app.command()
def adopt(
    seed_episode_dir: Annotated[
        Path, typer.Argument(help="The seed system's episode folder (outputs/<project>/<episode>).")
    ],
    script: Annotated[Path, typer.Option(help="The episode's script, as `zray run` will be given it.")],
    output: Output = None,
    tokens: Annotated[
        Path | None, typer.Option(help="Folder of the seed's token_<project>_<lang>.pickle files.")
    ] = None,
    published: Annotated[
        list[str] | None,
        typer.Option(metavar="LANG=VIDEO_ID", help="A video the seed already published (repeatable)."),
    ] = None,
    profile: ProfileOpt = None,
    project: Annotated[
        str | None, typer.Option(help="Project name (default: the script's folder name).")
    ] = None,
    config: ConfigFile = None,
    dry_run: Annotated[
        bool, flag("--dry-run", help="Print what would be adopted, converted and recorded; change nothing.")
    ] = False,
) -> None:
    """Take over what the seed system made (pictures, voices, music, tokens, published videos)."""
    from zray.adopt import AdoptRequest, adopt_episode

    with user_errors():
        cfg = config_from(config, output=output, profile=_value(profile), project=project, quiet=True)
        request = AdoptRequest(
            seed=seed_episode_dir, script=script, tokens=tokens, published=published or [], dry_run=dry_run
        )
        report = adopt_episode(request, cfg)
    for line in report.lines():
        typer.echo(line)
    if not report.ok:
        raise typer.Exit(1)


auth_app = typer.Typer(help="Authorize zray to act for you (once per channel).", no_args_is_help=True)
app.add_typer(auth_app, name="auth")


@auth_app.command("youtube")
def auth_youtube(
    project: Annotated[str, typer.Option(help="Project (the folder name of its scripts).")],
    lang: Annotated[str, typer.Option("--lang", help="Language whose channel this token is for.")],
    config: ConfigFile = None,
    no_browser: Annotated[bool, flag("--no-browser", help="Print the URL instead (headless).")] = False,
    port: Annotated[
        int, typer.Option(help="Local port for Google's redirect (forward it when headless).")
    ] = 0,
) -> None:
    """Run Google's consent once for a channel; the token is stored as JSON, mode 0600."""
    from zray.publish.auth import authorize

    with user_errors():
        cfg = config_from(config)
        path = authorize(project, lang.strip().lower(), cfg.youtube, open_browser=not no_browser, port=port)
    typer.echo(f"token saved: {path}")


@app.command()
def upload(
    episode_dir: Annotated[
        str, typer.Argument(help="A finished episode folder (or URL).", show_default=False)
    ],
    lang: Langs = None,
    privacy: Annotated[
        Privacy | None, typer.Option(help="Privacy of new uploads (default from config).")
    ] = None,
    dry_run: Annotated[bool, flag("--dry-run", help="Show what would be sent; send nothing.")] = False,
    force: Annotated[bool, flag("--force", help="Update a changed video's metadata and files.")] = False,
    replace: Annotated[bool, flag("--replace", help="Upload a changed video as a new one.")] = False,
    project: Annotated[
        str | None, typer.Option(help="Project whose tokens to use (default: folder).")
    ] = None,
    config: ConfigFile = None,
    shorts: Annotated[bool, flag("--shorts", help="Then each language's Shorts too, never twice.")] = False,
) -> None:
    """Upload each language's video, thumbnail and captions to its channel; never twice."""
    with user_errors(episode=episode_dir):
        cfg = config_from(config)
        ok = _upload(
            episode_dir,
            cfg,
            languages(lang) or None,
            privacy=_value(privacy),
            dry_run=dry_run,
            force=force,
            replace=replace,
            project=project,
            shorts=shorts,
        )
    if not ok:
        raise typer.Exit(1)


def _upload(
    episode_dir: str,
    cfg: Config,
    langs: list[str] | None,
    *,
    privacy: str | None,
    dry_run: bool,
    force: bool,
    replace: bool,
    project: str | None = None,
    shorts: bool = False,
) -> bool:
    import sys

    from rich.console import Console

    from zray.episode import open_episode
    from zray.lock import episode_lock
    from zray.pipeline.progress import UploadProgress
    from zray.publish.auth import credentials_provider  # after the package that checks the extra
    from zray.publish.youtube import (  # a clear line without the extra
        UploadOptions,
        project_of,
        upload_episode,
    )
    from zray.store import Store

    folder = Store(episode_dir).resolved()  # one folder, one name, however it is spelled
    with (
        episode_lock(folder, command="zray upload"),
        UploadProgress(Console(stderr=True, highlight=False)) as sent,
    ):
        episode = open_episode(folder)
        name = project_of(episode, project)
        options = UploadOptions(
            config=cfg.youtube,
            credentials_for=credentials_provider(name, cfg.youtube, interactive=sys.stdin.isatty()),
            privacy=privacy,  # type: ignore[arg-type]
            dry_run=dry_run,
            force=force,
            replace=replace,
            progress=sent,
            project=name,
        )
        report = upload_episode(
            episode, options, langs=langs, require_review=cfg.review.required, shorts=shorts
        )
    for line in report.lines():
        typer.echo(line)
    return report.ok


@app.command(name="publish")
def publish_command(
    episode_dir: Annotated[
        str, typer.Argument(help="A finished episode folder (or URL).", show_default=False)
    ],
    site: Annotated[str | None, typer.Option(help="Website root: a folder or any fsspec URL.")] = None,
    layout: Annotated[
        Layout | None, typer.Option(help="seed (the studio's platform) or hugo (page bundles).")
    ] = None,
    lang: Langs = None,
    config: ConfigFile = None,
) -> None:
    """Publish a finished episode to the website (the seed's layout or Hugo page bundles)."""
    with user_errors(episode=episode_dir):
        cfg = config_from(config, web__site=site, web__layout=_value(layout))
        _publish(episode_dir, cfg, languages(lang) or None)


def _publish(episode_dir: str, cfg: Config, langs: list[str] | None) -> None:
    from zray.episode import open_episode
    from zray.lock import episode_lock
    from zray.publish.web import publish_episode
    from zray.store import Store

    if not cfg.web.site:
        raise ConfigError("--site: no website root given (pass --site or set web.site in the config)")
    folder = Store(episode_dir).resolved()  # one folder, one name, however it is spelled
    with episode_lock(folder, command="zray publish"):
        report = publish_episode(
            open_episode(folder),
            site=cfg.web.site,
            layout=cfg.web.layout,
            essays_dir=cfg.web.essays_dir,
            langs=langs,
            require_review=cfg.review.required,
        )
    for line in report.skipped:
        typer.echo(line)
    typer.echo(
        f"published to {report.site} ({report.layout}): {len(report.written)} files written, "
        f"{len(report.unchanged)} unchanged"
    )
    if report.skipped:
        raise typer.Exit(1)


@app.command()
def batch(
    scripts: Annotated[
        list[str], typer.Argument(help="Scripts, folders, globs or URLs.", show_default=False)
    ],
    max_episodes_in_flight: Annotated[
        int,
        typer.Option(
            help="Episodes making model calls at once; one that is only encoding makes room for the next.",
            min=1,
        ),
    ] = 4,
    output: Output = None,
    lang: Langs = None,
    profile: ProfileOpt = None,
    preset: PresetOpt = None,
    address: Address = None,
    config: ConfigFile = None,
    shared_storage: Annotated[
        bool, flag("--shared-storage", help="The local --output is mounted by every node.")
    ] = False,
    clean: Annotated[bool, flag("--clean", help="Remove each episode's generated files first.")] = False,
    quiet: Quiet = False,
) -> None:
    """Make many episodes at once on one set of resident models; failures are isolated."""
    from zray.pipeline.batch import run_batch

    with user_errors():
        cfg = config_from(
            config,
            output=output,
            profile=_value(profile),
            video__preset=_value(preset),
            address=address,
            shared_storage=shared_storage or None,
            quiet=quiet or None,
        )
        report = run_batch(
            scripts, cfg, languages=languages(lang) or None, clean=clean, max_episodes=max_episodes_in_flight
        )
    if not report.ok:
        raise typer.Exit(1)


@app.command()
def doctor(
    script: Annotated[
        Path | None, typer.Argument(help="Check for this script's languages.", show_default=False)
    ] = None,
    profile: Annotated[
        Profile, typer.Option(help="Profile to check (auto: as `zray run` would pick).")
    ] = Profile.auto,
    config: ConfigFile = None,
    address: Annotated[
        str | None, typer.Option(help="Ray cluster to inspect (default: this machine).")
    ] = None,
    output: Annotated[
        str | None, typer.Option("--output", "-o", help="Output folder or URL to check.")
    ] = None,
) -> None:
    """Say what Ray sees and what the chosen profile still needs, one line each with the fix."""
    from rich.console import Console

    from zray.doctor import diagnose

    with user_errors():
        # The --profile option (auto by default) decides, as it always has, over the config's.
        cfg = config_from(config, address=address, output=output, quiet=True, profile=profile.value)
        script_languages = script_mod.load_script(script)[0].languages if script is not None else None
        chosen, checks = diagnose(cfg, languages=script_languages)
    console = Console(highlight=False)
    console.print(f"profile {chosen}" + (" (auto)" if profile.value == "auto" else ""), markup=False)
    for check in checks:
        console.print(check.render())
    if not all(c.ok for c in checks):
        raise typer.Exit(1)


def main() -> None:
    app()


app.command(name="review")(review_command)
app.command(name="report")(report_command)
