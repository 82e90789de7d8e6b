"""`zray adopt`: take over what the seed system already made for an episode, without making it again.

One seed episode folder (`outputs/<project>/<episode>/`, see `zray.adopt.seed`) and the script
it was made from: its pictures, narrations, music bed and thumbnail bases become the artifacts
zray's plan expects for the current script (`assets`); its pickled OAuth tokens become zray's
0600 JSON tokens (`tokens`); videos it already published are checked, tagged and recorded so
no upload makes them again (`published`). The seed's folder is only read.

Everything a user can get wrong (the folders, the flags, the script) is refused in one line
before any work; a file that cannot be adopted is listed, one line each, and the rest goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from zray.adopt.assets import adopt_assets
from zray.adopt.published import adopt_published, parse_published
from zray.adopt.seed import SeedFolder
from zray.adopt.tokens import convert_tokens
from zray.config import Config
from zray.errors import InvalidInput
from zray.pipeline.engine_setup import prepare_engines
from zray.pipeline.prepare import RunRequest, episode_prefix, open_store, prepare_episode
from zray.pipeline.profile import cluster_gpus, resolve_profile
from zray.script import load_script
from zray.store import Store

log = logging.getLogger("zray")

__all__ = ["AdoptReport", "AdoptRequest", "adopt_episode"]


@dataclass(frozen=True, kw_only=True)
class AdoptRequest:
    seed: Path  # the seed's episode folder
    script: Path  # the episode's script (the one `zray run` will be given)
    tokens: Path | None = None  # the folder of the seed's token_<project>_<lang>.pickle files
    published: list[str] = field(default_factory=list)  # LANG=VIDEO_ID
    dry_run: bool = False


@dataclass
class AdoptReport:
    episode: str = ""  # the episode folder's URL
    profile: str = ""
    artifacts: int = 0  # pictures, voices, music and thumbnail bases adopted (or that would be)
    adopted: list[str] = field(default_factory=list)  # what was (or would be) adopted, converted, recorded
    unmatched: list[str] = field(default_factory=list)  # what could not be matched, one line each
    notes: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # tokens or videos asked for that failed
    dry_run: bool = False

    @property
    def ok(self) -> bool:
        return not self.refused

    def lines(self) -> list[str]:
        head, verb = ("dry run, nothing changed: ", "would be adopted") if self.dry_run else ("", "adopted")
        lines = [*self.adopted]
        lines += [f"not adopted: {line}" for line in self.unmatched]
        lines += [f"note: {line}" for line in self.notes]
        lines += [f"refused: {line}" for line in self.refused]
        lines.append(
            f"{head}{self.episode}: {self.artifacts} artifacts {verb} for the "
            f"{self.profile} profile, {len(self.unmatched)} not matched"
        )
        return lines


def adopt_episode(
    request: AdoptRequest,
    config: Config,
    *,
    credentials_for: Callable[[str], Any] | None = None,
    http_factory: Callable[[], Any] | None = None,
    now: datetime | None = None,
) -> AdoptReport:
    """Adopt one seed episode folder into the episode folder `zray run` makes for `request.script`.

    `credentials_for(lang)` overrides the token store for `--published` (tests); `http_factory`
    makes the plain httplib2.Http under each channel's client (tests trust a fake's certificate)."""
    seed = _checked_folder(request.seed, "SEED_EPISODE_DIR")
    tokens_dir = _checked_folder(request.tokens, "--tokens") if request.tokens is not None else None
    script, warnings = load_script(request.script, limits=config.limits.script_limits())
    for warning in warnings:
        log.warning("%s", warning.render(str(request.script)))
    published = parse_published(request.published, script.languages)
    store = open_store(config.output)
    _check_apart(store.child(episode_prefix(request.script, config)), seed)
    profile = resolve_profile(config, gpus=cluster_gpus(config))
    engines = prepare_engines(script.languages, config, profile)
    prep = prepare_episode(
        RunRequest(script=request.script),
        script,
        config,
        store,
        engines,
        readonly=request.dry_run,
    )
    report = AdoptReport(episode=prep.store.root_url, profile=engines.profile, dry_run=request.dry_run)
    try:
        if tokens_dir is not None:
            _tokens(report, tokens_dir, seed, prep.identity.project, config, dry_run=request.dry_run)
        assets = adopt_assets(SeedFolder(seed), prep, profile=engines.profile, dry_run=request.dry_run)
        report.adopted += assets.lines
        report.artifacts = len(assets.lines)
        report.unmatched += assets.unmatched
        report.notes += assets.notes
        for name in SeedFolder(seed).videos():
            report.notes.append(f"{name}: the seed's finished video is not adopted; zray assembles its own")
        if published:
            if credentials_for is None:
                from zray.publish.auth import credentials_provider

                credentials_for = credentials_provider(
                    prep.identity.project, config.youtube, interactive=False
                )
            done = adopt_published(
                published,
                store=prep.store,
                identity=prep.identity,
                config=config.youtube,
                credentials_for=credentials_for,
                dry_run=request.dry_run,
                http_factory=http_factory,
                now=now,
            )
            report.adopted += done.lines
            report.refused += done.refused
    finally:
        prep.release()
    for line in report.unmatched:
        log.info("%s: not adopted: %s", prep.episode, line)
    return report


def _checked_folder(path: Path, flag: str) -> Path:
    if not path.is_dir():
        raise InvalidInput(f"{flag} {path}: no such folder")
    return path


def _check_apart(episode: Store, seed: Path) -> None:
    """zray's episode folder must not be (or hold, or lie inside) the seed's, which is only read: the
    seed's layout and zray's share file names (`assets/common/img_0.png`)."""
    if not episode.is_local:
        return
    ours, theirs = Path(episode.root).resolve(), seed.resolve()
    if ours == theirs or ours.is_relative_to(theirs) or theirs.is_relative_to(ours):
        raise InvalidInput(
            f"--output: zray's episode folder {ours} overlaps the seed's folder {theirs}, which adopt only "
            "reads; give zray another --output"
        )


def _tokens(
    report: AdoptReport, folder: Path, seed: Path, project: str, config: Config, *, dry_run: bool
) -> None:
    from zray.publish.auth import token_path, write_private

    # The seed names tokens after its project: the folder above the episode's (outputs/<project>/<episode>).
    seed_project = seed.resolve().parent.name
    converted = convert_tokens(
        folder,
        seed_project=seed_project,
        project=project,
        target=lambda name, lang: token_path(name, lang, config.youtube),
        write=write_private,
        dry_run=dry_run,
    )
    report.adopted += converted.lines
    report.refused += converted.refused
