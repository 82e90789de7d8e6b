"""Everything decided about one episode before any work: its folder, identity, plan and stale nodes.

Everything a user can get wrong about the episode (languages, intro, a folder another script
claims) is checked here, and a rerun with nothing to do is decided from the store alone, without
reading a file's bytes unless its fingerprint changed. The episode's lock is taken here and held
until the run finishes, so nothing below races another writer.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zray import episode as layout
from zray.config import Config
from zray.episode import Identity
from zray.errors import RunError
from zray.input_files import file_problem
from zray.keys import KEY_FORMAT, safe_name
from zray.lock import EpisodeLock, check_not_linked_elsewhere
from zray.nodes import Kind, Node
from zray.pipeline import studio
from zray.pipeline.engine_setup import EngineSetup
from zray.pipeline.plan import Identities, Intro, Plan, build_plan, generates_clips, music_request
from zray.pipeline.records import RunRecord, stale_nodes
from zray.pipeline.studio import StudioFile
from zray.review.record import plan_overrides
from zray.script import Script
from zray.store import Store, StoreError

log = logging.getLogger("zray")
# An intro longer than this is almost certainly a wrong file (or timestamps that lie).
MAX_INTRO_SECONDS = 120.0


@dataclass
class RunRequest:
    script: Path
    languages: list[str] = field(default_factory=list)
    intro: Path | None = None
    clean: bool = False
    force: bool = False  # let this script take over a folder another script's record claims
    source: str | None = None  # where the script came from (a URL for a script read from a bucket)

    @property
    def origin(self) -> str:
        return self.source or str(self.script.resolve())


def project_name(script_path: Path, config: Config) -> str:
    return safe_name(config.project or script_path.resolve().parent.name, fallback="default")


def episode_prefix(script_path: Path, config: Config) -> str:
    return f"{project_name(script_path, config)}/{safe_name(script_path.stem)}"


def find_intro(script_path: Path, project: str) -> Path | None:
    """The seed's layout: inputs/scripts/<project>/X.json -> inputs/assets/<project>/intro*.mp4."""
    scripts_dir = script_path.resolve().parent.parent
    if scripts_dir.name != "scripts":
        return None
    candidates = sorted((scripts_dir.parent / "assets" / project).glob("intro*.mp4"))
    return candidates[0] if candidates else None


def check_intro(path: Path, *, flag: str = "--intro") -> None:
    """An intro must be a video clip: frames, a sane length. Checked before any work."""
    from zray.media import video

    problem = file_problem(path)  # a FIFO would hang the probe forever
    if problem:
        raise RunError(f"{flag} {path}: {problem}; give a video clip, or leave {flag} out")
    try:
        info = video.probe(path)
    except (OSError, ValueError) as exc:
        raise RunError(
            f"{flag} {path}: cannot read it as a video ({exc}); fix the file or leave {flag} out"
        ) from None
    if info.video_codec is None or info.frames == 0:
        raise RunError(f"{flag} {path}: it has no video frames (an audio file?); give a video clip")
    if info.video_codec in ("png", "mjpeg", "bmp", "tiff", "webp") and info.frames <= 1:
        raise RunError(f"{flag} {path}: it is a still image, not a clip; give a video clip")
    if info.video_duration > MAX_INTRO_SECONDS:
        raise RunError(
            f"{flag} {path}: it claims to last {info.video_duration:.0f} s (more than {MAX_INTRO_SECONDS:.0f} s); "
            "re-encode it, or check it is the intro you meant"
        )


@dataclass
class Prepared:
    """One episode, planned: its folder, plan, record, and the stale nodes to run."""

    request: RunRequest
    script: Script
    episode: str  # the folder, relative to the output root
    store: Store  # rooted at the episode folder
    identity: Identity
    plan: Plan
    record: RunRecord
    stale: list[Node]
    reasons: dict[str, str]  # why each stale node must run
    intro: Intro | None
    intro_path: Path | None
    studio: dict[str, StudioFile]  # the studio's own files the script names, with their hashes
    lock: EpisodeLock | None
    languages: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    shorts_intro: Intro | None = None  # `shorts.intro`, when Shorts are made with one
    shorts_intro_path: Path | None = None

    def release(self) -> None:
        if self.lock is not None:
            self.lock.release()
            self.lock = None


def identities_for(
    engines: EngineSetup, script: Script, languages: list[str], *, config: Config | None = None
) -> Identities:
    """The engine identities this episode's keys are made from; a `music_file` the music engine
    cannot play is refused here, before any work, and so is a video engine that cannot run (only
    for an episode with a scene of motion "generate": the others never load it)."""
    prompt, file = music_request(script)
    engines.check_music_file(file)
    video = None
    if config is not None and generates_clips(script, config, engines.profile):
        video = engines.video_identity(check_extras=not config.address)
    return Identities(
        image=engines.identities.image,
        music=engines.music_identity(prompt=prompt, file=file),
        speech={lang: engines.identities.tts[lang] for lang in languages},
        video=video,
    )


def identity_of(script: Script, request: RunRequest, config: Config) -> Identity:
    return Identity(project_name(request.script, config), script.saga or 0, script.episode or 0)


def prepare_episode(
    request: RunRequest,
    script: Script,
    config: Config,
    root: Store,
    engines: EngineSetup,
    *,
    readonly: bool = False,
) -> Prepared:
    """Check the episode's own inputs, lock its folder, plan it, and find what is stale.

    Reads only, unless --clean (which deletes what the record says zray generated) or a record
    must be set aside. `readonly` (for --explain and --clean --dry-run) takes no lock and writes
    nothing.
    """
    languages = request.languages or script.languages
    unknown = [lang for lang in languages if lang not in script.languages]
    if unknown:
        raise RunError(
            f"--lang {', '.join(unknown)}: the script has no narration in that language "
            f"(it has {', '.join(script.languages)})"
        )
    identity = identity_of(script, request, config)
    episode = episode_prefix(request.script, config)
    intro_path = request.intro or find_intro(request.script, identity.project)
    if intro_path is not None:
        check_intro(intro_path)
    intro = _intro_ref(intro_path) if intro_path else None
    shorts_intro = _shorts_intro(config)
    folder = request.script.resolve().parent
    studio.check(script, folder)
    check_caption_fonts(script, languages, config)
    identities = identities_for(engines, script, languages, config=config)
    store = root.child(episode)
    check_not_linked_elsewhere(store, identity)

    held = None if readonly else EpisodeLock(store, command=f"zray run {request.script.name}").acquire()
    try:
        opened = RunRecord.open(store, identity, request.origin, force=request.force, readonly=readonly)
        record, warnings = opened.record, list(opened.warnings)
        files = studio.digests(script, folder, record.data.get(studio.RECORD_FIELD))
        plan = build_plan(
            script,
            languages=languages,
            identities=identities,
            config=config,
            intro=intro,
            studio=files,
            review=plan_overrides(store, identity),  # review.json travels with the folder
            profile=engines.profile,
            shorts_intro=shorts_intro,
        )
        warnings += plan.warnings
        if request.clean and not readonly:
            clean(store, record, dry_run=False)
        if not readonly:
            store.sweep_temps()  # under the lock: only a killed writer can have left these
        stamps = store.stamps()
        if record.key_format != KEY_FORMAT:
            _migrate_keys(store, record, plan, config, readonly=readonly)
        _apply_renames(store, record, plan, stamps, readonly=readonly)
        staleness = stale_nodes(plan.nodes, record, stamps)
        warnings += staleness.warnings
    except BaseException:
        if held is not None:
            held.release()
        raise
    for warning in warnings:
        log.warning("%s: %s", episode, warning, extra={"episode": episode})
    return Prepared(
        request=request,
        script=script,
        episode=episode,
        store=store,
        identity=identity,
        plan=plan,
        record=record,
        stale=staleness.nodes,
        reasons=staleness.reasons,
        intro=intro,
        intro_path=intro_path,
        studio=files,
        lock=held,
        shorts_intro=shorts_intro,
        shorts_intro_path=config.shorts.intro if shorts_intro else None,
        languages=languages,
        warnings=warnings,
    )


def _shorts_intro(config: Config) -> Intro | None:
    path = config.shorts.intro
    if not config.shorts.enabled or path is None:
        return None
    check_intro(path, flag="shorts.intro")
    return _intro_ref(path)


def check_caption_fonts(script: Script, languages: list[str], config: Config) -> None:
    """Burned-in captions need a font that writes each language's narration: refused before any
    work, in one line naming the setting."""
    if not (config.captions.on_long_video() or (config.shorts.enabled and config.captions.on_shorts())):
        return
    from zray.media.captions import CaptionError, check_font  # Pillow: only when captions are burned

    font = config.captions.font_path()
    problem = file_problem(font)  # Pillow would wait forever on a FIFO
    if problem:
        raise RunError(f"captions.font {font}: {problem}; give a TrueType or OpenType font file")
    for lang in languages:
        text = " ".join(scene.narration(lang) for scene in script.scenes)
        try:
            check_font(text, font, setting="captions.font", what=f"the {lang} narration")
        except CaptionError as exc:
            raise RunError(str(exc)) from None


def _intro_ref(path: Path) -> Intro:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return Intro(key=layout.intro_copy(digest, path.suffix), digest=digest)


def clean(store: Store, record: RunRecord, *, dry_run: bool) -> list[str]:
    """Delete exactly the files the record says zray generated (inside the folder, never a
    publishing or review record, never a file of the user's), then forget them."""
    paths = [p for p in record.generated_paths() if p != layout.RUN_FILE]
    existing = set(store.stamps())
    doomed = [p for p in paths if p in existing]
    if dry_run:
        return doomed
    for path in doomed:
        store.remove(path)
    record.forget(list(record.nodes))
    record.clear_generated()
    record.set(outputs={})
    record.flush(force=True)
    log.info("%s: --clean removed %d generated files", store.root_url, len(doomed))
    return doomed


def _migrate_keys(store: Store, record: RunRecord, plan: Plan, config: Config, *, readonly: bool) -> None:
    """A record from an older key format: what it made from exactly what the plan asks for takes its
    new key (see zray.pipeline.migrate_keys); the rest is rebuilt as any stale node is."""
    from zray.pipeline import migrate_keys

    adopted = migrate_keys.adopt(plan.nodes, record.keys(), config)
    for item in adopted:
        record.rekey(plan.nodes[item.node_id])
    record.upgraded_keys()
    log.info(
        "%s: keys upgraded to format %d: %d of %d steps kept their work",
        store.root_url,
        KEY_FORMAT,
        len(adopted),
        len(record.nodes),
    )
    if readonly:
        return
    videos = {a.old_key: a.new_key for a in adopted if plan.nodes[a.node_id].kind == Kind.VIDEO}
    for name in layout.follow_content_keys(store, videos):
        log.info("%s: %s follows the videos' new keys", store.root_url, name)
    record.flush(force=True)


def _apply_renames(
    store: Store, record: RunRecord, plan: Plan, stamps: dict[str, Any], *, readonly: bool = False
) -> None:
    """A changed title (or a key of a new format in a file name) renames the finished file instead of
    rebuilding it (inside the folder only). `readonly` (--explain): only in memory, so what a run
    would merely rename is not reported stale."""
    moves = record.renamed(plan.nodes.values(), stamps)
    for node, old in moves:
        for src, dst in zip(old, node.outputs, strict=True):
            if src != dst and layout.inside(src) and layout.inside(dst):
                if not readonly:
                    store.move(src, dst)
                stamps[dst] = stamps.pop(src)
                log.info(
                    "%s: %s %s -> %s", store.root_url, "would rename" if readonly else "renamed", src, dst
                )
        record.moved(node, old)
    if moves and not readonly:
        record.flush(force=True)


def open_store(output: str) -> Store:
    try:
        return Store(output)
    except (ValueError, ImportError, OSError) as exc:
        raise RunError(f"--output {output}: cannot open it ({exc})") from None


def check_writable(store: Store) -> None:
    try:
        store.check_writable()
    except StoreError as exc:
        raise RunError(f"{exc}; choose another --output or fix its permissions") from None


def put_inputs(prep: Prepared) -> None:
    """Keep the intro and the studio's files beside the episode (workers on other machines read
    them there), remembering their hashes for the next run."""
    put_intro(prep)
    kept = studio.copy_into(prep.store, prep.studio, prep.record.data.get(studio.RECORD_FIELD))
    prep.record.set(**{studio.RECORD_FIELD: kept})
    prep.record.add_generated(*(item.key for item in prep.studio.values()))


def put_intro(prep: Prepared) -> None:
    """Keep the intro (and the Shorts' intro) beside the episode (workers on other machines read it there)."""
    clips = [(prep.intro, prep.intro_path)]
    if prep.shorts_intro is not None:
        clips.append((prep.shorts_intro, prep.shorts_intro_path))
    for intro, path in clips:
        if intro is None or path is None:
            continue
        with contextlib.suppress(OSError):
            if prep.store.exists(intro.key) and prep.store.checksum(intro.key) == intro.digest:
                continue
        prep.store.put(path, intro.key)
