"""`zray doctor`: what this machine (or cluster) has, and what the chosen profile still needs.

Each check is one line, green or red, and a red line says how to fix it.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from rich.text import Text

from zray.config import Config
from zray.engines.registry import KOKORO_LANGUAGES
from zray.engines.vram import CONTEXT_GIB, USABLE, advise_image_memory, engine_footprint
from zray.pipeline.engine_setup import EngineChoice, choose_engines
from zray.pipeline.profile import resolve_profile


@dataclass(frozen=True)
class Check:
    ok: bool
    what: str
    fix: str = ""
    note: bool = False  # something to know (a licence), neither a pass nor a failure
    warn: bool = False  # works, but not as configured (a fallback steps in); shows its fix

    @property
    def mark(self) -> str:
        return "note" if self.note else "warn" if self.warn else "ok" if self.ok else "FAIL"

    def render(self) -> Text:
        """The line as rich Text: styles apply to the mark only, so no text is ever read as markup."""
        style = {"note": "yellow", "warn": "yellow", "ok": "green", "FAIL": "red"}[self.mark]
        line = Text(f"{self.mark:<4}", style=style)
        line.append(f" {self.what}")
        if self.fix and (self.warn or not self.ok):
            line.append(f" -> {self.fix}", style="dim")
        return line


def diagnose(config: Config, *, languages: list[str] | None) -> tuple[str, list[Check]]:
    """The profile `config.profile` resolves to on this machine (or on the cluster at
    `config.address`), and every check of it. `languages`: a script's; None checks those the
    config names a voice, engine or speed for."""
    resources = cluster_resources(config) if config.address else None
    gpus = resources.get("GPU", 0) if resources is not None else len(cards_gib())
    profile = resolve_profile(config, gpus=gpus)
    if languages is None:
        languages = configured_languages(config)
    return profile, run_checks(config, profile=profile, languages=languages, ray_resources=resources)


def configured_languages(config: Config) -> list[str]:
    """The languages the config names a voice, an engine or a speed for."""
    return sorted({*config.engines.tts, *config.voices, *config.speeds, *config.google_tts.voices})


def cluster_resources(config: Config) -> dict[str, float]:
    """What the cluster at --address offers (doctor joins it; it starts no Ray of its own)."""
    import ray

    from zray.actors.cluster import connect

    started = connect(config)
    try:
        return dict(ray.cluster_resources())
    finally:
        if started:
            ray.shutdown()


def run_checks(
    config: Config, *, profile: str, languages: list[str], ray_resources: dict[str, float] | None
) -> list[Check]:
    """`ray_resources`: what a cluster joined with --address offers; None for the embedded default,
    which doctor describes from this machine without starting Ray."""
    cluster = ray_check(ray_resources) if ray_resources is not None else machine_check(config)
    checks = [cluster, reserve_check(config), *gpu_checks(), *codec_checks(), store_check(config.output)]
    choice = choose_engines(config, languages, profile=profile)
    checks += engine_checks(choice, config)
    checks += memory_checks(choice, cards_gib())
    checks += video_checks(choice, cards_gib())
    return checks


def video_checks(choice: EngineChoice, cards: list[float]) -> list[Check]:
    """Per GPU, whether the video model (scenes of motion "generate") fits beside the others in its
    memory mode: a note, not a failure, since only an episode with such a scene loads it."""
    video = choice.video
    if video is None or not video.uses_gpu or not cards:
        return []
    own = engine_footprint(video.name, video.settings)
    if own is None:
        return []
    others = {
        "images": engine_footprint(choice.image.name, choice.image.settings)
        if choice.image.uses_gpu
        else None
    }
    others["music"] = (
        engine_footprint(choice.music.name, choice.music.settings) if choice.music.uses_gpu else None
    )
    for spec in dict.fromkeys(choice.tts.values()):
        others[f"voices {spec.name}"] = engine_footprint(spec.name, spec.settings) if spec.uses_gpu else None
    rest = {name: row.gib for name, row in others.items() if row is not None}
    needed = round(own.gib + sum(rest.values()) + CONTEXT_GIB * (1 + len(rest)), 1)
    estimate = "" if own.measured else " (an estimate)"
    out = []
    for index, card in enumerate(cards):
        where = f"GPU {index} ({card:.1f} GiB)"
        if needed <= USABLE * card:
            what = f"{where}: clips with {video.name} {own.mode} fit beside the other models (about {needed:g} GiB{estimate})"
            out.append(Check(True, what, note=True))
        else:
            fix = (
                'set models.video_memory = "group_offload"'
                if own.mode != "group_offload"
                else "give the clips their own GPU (actors.video.num_gpus), use a larger card, or motion gentle"
            )
            what = (
                f"{where}: clips with {video.name} {own.mode} need about {needed:g} GiB with the other models"
                f"{estimate}: {fix}"
            )
            out.append(Check(True, what, note=True))
    return out


def ray_check(resources: dict[str, float]) -> Check:
    cpus, gpus = resources.get("CPU", 0), resources.get("GPU", 0)
    return Check(cpus > 0, f"Ray sees {cpus:g} CPUs and {gpus:g} GPUs", "start Ray or check --address")


def machine_check(config: Config) -> Check:
    """The embedded Ray a run would start here, from the same rule (`local_cpus`), without starting it."""
    from zray.actors.cluster import local_cpus

    cores, gpus = os.cpu_count() or 1, len(cards_gib())
    return Check(
        True,
        f"this machine has {cores} CPUs and {gpus} GPUs; a run starts Ray here with "
        f"{local_cpus(config)} CPUs ({cores} for the steps, the rest for zray's actors)",
    )


def actor_cpus(config: Config) -> dict[str, float]:
    """CPUs each role's actors reserve in all (num_cpus x count; one actor when count is unset)."""
    actors = config.actors
    return {
        role: setting.num_cpus * (setting.count or 1)
        for role, setting in (("image", actors.image), ("voices", actors.tts), ("music", actors.music))
    }


def reserve_check(config: Config) -> Check:
    reserved = actor_cpus(config)
    parts = ", ".join(f"{role} {cpus:g}" for role, cpus in reserved.items())
    return Check(True, f"zray reserves {sum(reserved.values()):g} CPUs for its actors ({parts})")


def gpu_checks() -> list[Check]:
    if importlib.util.find_spec("torch") is None:
        return [
            Check(
                True,
                "torch not installed (draft profile only); for production: pip install 'zray[models]'",
                note=True,
            )
        ]
    import torch

    if not torch.cuda.is_available():
        return [Check(True, f"torch {torch.__version__}: no CUDA device (production runs on CPU, slowly)")]
    lines = []
    for index in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(index)
        lines.append(Check(True, f"GPU {index}: {props.name}, {props.total_memory / 2**30:.0f} GiB VRAM"))
    return lines


def cards_gib() -> list[float]:
    """Each CUDA device's memory in GiB; empty without torch or CUDA."""
    if importlib.util.find_spec("torch") is None:
        return []
    import torch

    if not torch.cuda.is_available():
        return []
    return [
        torch.cuda.get_device_properties(i).total_memory / 2**30 for i in range(torch.cuda.device_count())
    ]


def memory_checks(choice: EngineChoice, cards: list[float]) -> list[Check]:
    """Per GPU: the image memory mode to use, from the VRAM table (zray.engines.vram) and the card's
    memory, with the music and voice models on the same card as zray places them; red when the
    configured mode would not fit."""
    if choice.image.name != "zimage" or not cards:
        return []
    others: dict[str, float] = {}
    voices = list(dict.fromkeys(choice.tts.values()))
    for label, spec in [("music", choice.music), *(("voices", s) for s in voices)]:
        row = engine_footprint(spec.name, spec.settings) if spec.uses_gpu else None
        if row is not None:
            others[f"{label} ({row.engine} {row.mode})"] = row.gib
    settings = choice.image.settings
    configured = getattr(settings, "memory", "resident")
    tiling = bool(getattr(settings, "vae_tiling", False))
    own = engine_footprint("zimage", settings)
    out = []
    for index, card in enumerate(cards):
        advice = advise_image_memory(card, others=others, vae_tiling=tiling)
        where = f"GPU {index} ({card:.1f} GiB)"
        detail = ", ".join(f"{name} {gib:g}" for name, gib in advice.parts.items())
        if advice.mode is None:
            out.append(
                Check(
                    False,
                    f"{where} cannot hold Z-Image, music and voices together even in the leanest mode "
                    f"(about {advice.needed_gib:g} GiB: {detail})",
                    "give music and voices their own GPU (actors.music.num_gpus, actors.tts.num_gpus) or use "
                    "a larger card",
                )
            )
            continue
        contexts = CONTEXT_GIB * (1 + len(others))
        needed = None if own is None else round(own.gib + sum(others.values()) + contexts, 2)
        fits = needed is None or needed <= USABLE * card
        if configured == advice.mode:
            out.append(Check(True, f"{where}: models.image_memory = {configured!r} fits ({detail} GiB)"))
        elif fits:
            out.append(
                Check(
                    True,
                    f"{where}: models.image_memory = {configured!r} fits; {advice.mode!r} is recommended for "
                    f"this card ({detail} GiB)",
                )
            )
        else:
            out.append(
                Check(
                    False,
                    f"{where}: models.image_memory = {configured!r} needs about {needed:g} GiB with the other "
                    "models on the card",
                    f"set models.image_memory = {advice.mode!r} ({detail} GiB)",
                )
            )
    return out


def codec_checks() -> list[Check]:
    import av

    out = []
    for name, role in (("libx264", "H.264 video"), ("aac", "AAC audio")):
        try:
            av.codec.Codec(name, "w")
            out.append(Check(True, f"PyAV {av.__version__} encodes {role} ({name})"))
        except Exception:
            out.append(
                Check(False, f"PyAV cannot encode {role} ({name})", "pip install --force-reinstall av")
            )
    return out


def store_check(output: str) -> Check:
    from zray.store import Store

    try:
        Store(output).check_writable()
        return Check(True, f"output {output} is writable")
    except Exception as exc:
        return Check(False, f"output {output}: {exc}", "choose another --output or fix its permissions")


def engine_checks(choice: EngineChoice, config: Config) -> list[Check]:
    out: list[Check] = []
    specs = {choice.image, choice.music, *choice.tts.values()}
    for spec in sorted(specs, key=lambda s: s.name):
        if spec.name == "zimage":
            out.append(model_check("image model", spec.options["model"], "models.image"))
        elif spec.name == "musicgen":
            out.append(model_check("music model", spec.options["model"], "models.musicgen"))
            out.append(
                Check(
                    True,
                    "MusicGen weights are CC-BY-NC-4.0: not for monetised videos (engines.music = 'library')",
                    note=True,
                )
            )
        elif spec.name == "kokoro":
            out.append(model_check("Kokoro model", spec.options["model"], "models.kokoro"))
            langs = [lang for lang, s in choice.tts.items() if s == spec]
            if any(lang.startswith("en") for lang in langs):
                out.append(spacy_check())
        elif spec.name == "google":
            from zray.engines.google_tts import api_key_available

            langs = ", ".join(lang for lang, s in choice.tts.items() if s == spec)
            fallback = config.google_tts.fallback
            if api_key_available():
                out.append(Check(True, f"GOOGLE_API_KEY for Google Cloud TTS ({langs})"))
            elif fallback:
                out.append(
                    Check(
                        True,
                        f"GOOGLE_API_KEY is not set: {langs} will be narrated with {fallback} "
                        "(google_tts.fallback), not Google Cloud TTS",
                        "export GOOGLE_API_KEY=... or put it in .env",
                        warn=True,
                    )
                )
            else:
                out.append(
                    Check(
                        False,
                        f"GOOGLE_API_KEY for Google Cloud TTS ({langs}) is not set and google_tts.fallback "
                        'is "" (no fallback voice)',
                        "export GOOGLE_API_KEY=... or put it in .env, or set google_tts.fallback = 'espeak'",
                    )
                )
        elif spec.name == "library":
            folder = Path(spec.options["folder"])
            tracks = [p for p in folder.glob("*") if p.suffix.lower() in {".wav", ".flac", ".mp3", ".ogg"}]
            out.append(
                Check(
                    bool(tracks),
                    f"music library {folder}: {len(tracks)} tracks",
                    f"put licensed tracks in {folder}",
                )
            )
        else:
            try:
                spec.create().load()
                out.append(Check(True, f"{spec.name} engine loads"))
            except Exception as exc:
                out.append(Check(False, f"{spec.name} engine: {exc}", "reinstall zray"))
    unsupported = [
        lang for lang, s in choice.tts.items() if s.name == "kokoro" and lang not in KOKORO_LANGUAGES
    ]
    if unsupported:
        out.append(
            Check(
                False,
                f"Kokoro has no voice for {', '.join(unsupported)}",
                "set engines.tts.<lang> = 'google'",
            )
        )
    return out


def model_check(what: str, model: str, setting: str) -> Check:
    """Weights present: a local directory, or a complete snapshot in the Hugging Face cache."""
    if os.path.isdir(model):
        return Check(True, f"{what}: local directory {model}")
    try:
        from huggingface_hub import snapshot_download

        path = snapshot_download(model, local_files_only=True)
        return Check(True, f"{what} {model} is in the Hugging Face cache ({path})")
    except ImportError:
        return Check(False, f"{what} {model}: huggingface_hub is not installed", "pip install 'zray[models]'")
    except Exception:
        return Check(
            False,
            f"{what} {model} is not in the Hugging Face cache",
            f"hf download {model}, or set {setting} to a local directory",
        )


def spacy_check() -> Check:
    ok = importlib.util.find_spec("en_core_web_sm") is not None
    return Check(ok, "spaCy en_core_web_sm (Kokoro's English)", "python -m spacy download en_core_web_sm")
