"""Narration with Kokoro-82M: production's voice for English, Spanish, French, Hindi, Italian, Portuguese,
Japanese and Mandarin (Kokoro has no Catalan; Google Cloud TTS speaks that).

One `KModel` is shared by a `KPipeline` per language, each made on first use. The model comes from a
Hugging Face id (the cache, downloading when allowed) or a local directory laid out like the repo
(config.json, one .pth of state dicts, voices/*.pt); both reach `KModel` as file paths, so Kokoro never
downloads on its own. Voice packs are loaded here too, so a missing voice is a clear error, not a
download attempt.

Kokoro's Spanish and the other espeak-based languages run offline. English G2P needs spaCy's
`en_core_web_sm`, which misaki would try to download mid-run: `english_ready()` checks for it first.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import threading
from pathlib import Path
from typing import Any

import numpy as np

from zray.engines.base import EngineError, Synthesis, WordTiming, seed_from
from zray.engines.google_tts import split_text

ENGINE_VERSION = "1"
SAMPLE_RATE = 24_000
DEFAULT_MODEL = "hexgrad/Kokoro-82M"
# zray language -> Kokoro lang_code.
LANG_CODES = {
    "en": "a",
    "en-gb": "b",
    "es": "e",
    "fr": "f",
    "hi": "h",
    "it": "i",
    "pt": "p",
    "ja": "j",
    "zh": "z",
}
ALIASES = {"en-us": "en", "pt-br": "pt", "fr-fr": "fr"}
DEFAULT_VOICES = {
    "en": "af_heart",
    "en-gb": "bf_emma",
    "es": "ef_dora",
    "fr": "ff_siwis",
    "hi": "hf_alpha",
    "it": "if_sara",
    "pt": "pf_dora",
    "ja": "jf_alpha",
    "zh": "zf_xiaobei",
}
MIN_SPEED, MAX_SPEED = 0.5, 2.0
# Kokoro reads at most 510 phonemes at once and silently cuts the rest; outside English (whose
# pipeline chunks by phonemes itself) text goes in pieces of this many bytes, halved until it fits.
_WINDOW = 510
_PACK_ROWS = 510  # one style vector per phoneme count
_PIECE_BYTES = 400
_EXTRAS = {"ja": "misaki[ja]", "zh": "misaki[zh]"}
# KModel.MODEL_NAMES, repeated so that identity() needs no torch or kokoro import.
_CHECKPOINTS = {"hexgrad/Kokoro-82M": "kokoro-v1_0.pth", "hexgrad/Kokoro-82M-v1.1-zh": "kokoro-v1_1-zh.pth"}
_SPACY_MODEL = "en_core_web_sm"
_SPACY_FIX = f"python -m spacy download {_SPACY_MODEL}"


def language(lang: str) -> str:
    """zray's name for a language Kokoro speaks (`en-US` -> `en`), or EngineError naming it."""
    normalized = lang.strip().lower().replace("_", "-")
    normalized = ALIASES.get(normalized, normalized)
    if normalized not in LANG_CODES:
        raise EngineError(
            f"Kokoro has no language {lang!r}; it speaks {', '.join(LANG_CODES)} "
            "(use the google engine for others, such as ca)"
        )
    return normalized


def english_ready() -> tuple[bool, str]:
    """Whether Kokoro's English G2P can run offline: it needs spaCy's en_core_web_sm installed."""
    try:
        version = importlib.metadata.version(_SPACY_MODEL)
    except importlib.metadata.PackageNotFoundError:
        return False, f"Kokoro's English needs spaCy's {_SPACY_MODEL}: {_SPACY_FIX}"
    return True, f"spaCy {_SPACY_MODEL} {version} is installed for Kokoro's English"


def _files_digest(paths: list[Path]) -> str:
    """Names and sizes, not contents: cheap on a 300 MB checkpoint, and a swapped file changes it."""
    listing = [[path.name, path.stat().st_size] for path in sorted(paths)]
    return hashlib.sha256(json.dumps(listing).encode()).hexdigest()[:12]


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


class KokoroTTSEngine:
    """Speaks text with Kokoro; mono float32 at 24 kHz, with word timings for English."""

    def __init__(
        self,
        *,
        model: str = DEFAULT_MODEL,
        voices: dict[str, str] | None = None,
        speeds: dict[str, float] | None = None,
        device: str | None = None,
    ) -> None:
        self.model = model
        self.voices = {language(lang): voice for lang, voice in (voices or {}).items()}
        self.speeds = {language(lang): float(speed) for lang, speed in (speeds or {}).items()}
        for lang, speed in self.speeds.items():
            if not MIN_SPEED <= speed <= MAX_SPEED:
                raise ValueError(f"Kokoro speed for {lang} must be {MIN_SPEED}..{MAX_SPEED}, got {speed!r}")
        for lang, voice in self.voices.items():
            if not voice.strip():
                raise ValueError(f"Kokoro voice for {lang} is empty")
        self.device = device
        self._reset()

    def _reset(self) -> None:
        self._lock = threading.RLock()
        self._model: Any = None
        self._pipelines: dict[str, Any] = {}
        self._packs: dict[str, Any] = {}
        self._repo = self.model

    # Ray pickles engines to ship them to actors: send the options, never a loaded model.
    def __getstate__(self) -> dict[str, Any]:
        return {"model": self.model, "voices": self.voices, "speeds": self.speeds, "device": self.device}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._reset()

    # --- model files ------------------------------------------------------------------------------

    def _local_dir(self) -> Path | None:
        path = Path(self.model).expanduser()
        if path.is_dir():
            return path
        if path.is_absolute() or self.model.startswith((".", "~")) or self.model.count("/") != 1:
            raise EngineError(
                f"Kokoro model {self.model!r} is neither a local directory nor a Hugging Face id "
                "like hexgrad/Kokoro-82M"
            )
        return None

    def _model_files(self, folder: Path) -> tuple[Path, Path]:
        """config.json and the one .pth of state dicts in a model folder."""
        config = folder / "config.json"
        weights = sorted(folder.glob("*.pth"))
        known = [path for path in weights if path.name in _CHECKPOINTS.values()]
        if len(weights) > 1 and len(known) == 1:
            weights = known
        if not config.is_file() or len(weights) != 1:
            found = ", ".join(path.name for path in weights) or "none"
            raise EngineError(
                f"Kokoro model folder {folder} needs config.json and exactly one .pth of weights "
                f"(found config.json: {config.is_file()}, .pth: {found})"
            )
        return config, weights[0]

    def _download(self) -> Path:
        """The model's snapshot folder from the Hugging Face cache, downloading it when allowed."""
        try:
            from huggingface_hub import snapshot_download

            return Path(snapshot_download(self.model, allow_patterns=["config.json", "*.pth"]))
        except Exception as exc:
            raise EngineError(
                f"Kokoro model {self.model!r} is not in the Hugging Face cache and could not be "
                f"downloaded ({type(exc).__name__}), and there is no local directory of that name; run "
                f"`hf download {self.model}` where there is internet, or set the model to a local directory"
            ) from None

    def _repo_id(self, weights: Path) -> str:
        """The repo a checkpoint belongs to: Mandarin's G2P version depends on it."""
        if self._local_dir() is None:
            return self.model
        by_file = {name: repo for repo, name in _CHECKPOINTS.items()}
        return by_file.get(weights.name, DEFAULT_MODEL)

    # --- loading ----------------------------------------------------------------------------------

    def load(self) -> None:
        with self._lock:
            if self._model is not None:
                return
            import torch
            from kokoro import KModel

            folder = self._local_dir() or self._download()
            config, weights = self._model_files(folder)
            device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
            repo = self._repo_id(weights)
            try:
                model = KModel(repo_id=repo, config=str(config), model=str(weights))
            except Exception as exc:
                raise EngineError(f"Kokoro model {self.model!r} failed to load: {exc}") from None
            try:
                # float32 even on CUDA: KModel builds float32 tensors of its own (alignments, LSTM
                # inputs) that meet its weights, so a bfloat16 model fails; 82 M parameters fit anyway.
                self._model = model.to(device).eval()
            except (RuntimeError, AssertionError) as exc:
                raise EngineError(f"Kokoro cannot run on device {device!r}: {exc}") from None
            self._repo = repo

    def _pipeline(self, lang: str) -> Any:
        with self._lock:
            if lang not in self._pipelines:
                if lang.startswith("en"):
                    ready, message = english_ready()
                    if not ready:
                        raise EngineError(message)
                from kokoro import KPipeline

                try:
                    self._pipelines[lang] = KPipeline(
                        lang_code=LANG_CODES[lang], repo_id=self._repo, model=self._model
                    )
                except ImportError as exc:
                    extra = _EXTRAS.get(lang, "misaki")
                    raise EngineError(
                        f"Kokoro's {lang} G2P is not installed ({exc.name or exc}); pip install '{extra}'"
                    ) from None
            return self._pipelines[lang]

    # --- voices -----------------------------------------------------------------------------------

    def voice_for(self, lang: str) -> str:
        lang = language(lang)
        return self.voices.get(lang, DEFAULT_VOICES[lang])

    def speed_for(self, lang: str) -> float:
        return self.speeds.get(language(lang), 1.0)

    def _voice_file(self, voice: str) -> Path | None:
        """The voice pack on disk when it is a path or lives in a local model folder (None: from the Hub)."""
        if voice.endswith(".pt") or "/" in voice or "\\" in voice:
            path = Path(voice).expanduser()
            if not path.is_file():
                raise EngineError(f"Kokoro voice file {voice} does not exist")
            return path
        folder = self._local_dir()
        if folder is None:
            return None
        path = folder / "voices" / f"{voice}.pt"
        if not path.is_file():
            known = ", ".join(sorted(p.stem for p in (folder / "voices").glob("*.pt"))) or "none"
            raise EngineError(f"Kokoro voice {voice!r} is not in {folder / 'voices'} (there: {known})")
        return path

    def _pack(self, voice: str) -> Any:
        """The voice's style vectors, [510, 1, 256]: one per phoneme count."""
        with self._lock:
            if voice in self._packs:
                return self._packs[voice]
            import torch

            path = self._voice_file(voice)
            if path is None:
                try:
                    from huggingface_hub import hf_hub_download

                    path = Path(hf_hub_download(self.model, f"voices/{voice}.pt"))
                except Exception as exc:
                    raise EngineError(
                        f"Kokoro voice {voice!r} is not in {self.model} or could not be downloaded "
                        f"({type(exc).__name__}); check the name, or give a path to a .pt voice pack"
                    ) from None
            try:
                pack = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as exc:
                raise EngineError(f"Kokoro voice {voice!r} ({path}) is not a voice pack: {exc}") from None
            if not isinstance(pack, torch.Tensor) or pack.ndim != 3 or tuple(pack.shape[1:]) != (1, 256):
                shape = tuple(pack.shape) if isinstance(pack, torch.Tensor) else type(pack).__name__
                raise EngineError(f"Kokoro voice {voice!r} has shape {shape}, not [510, 1, 256]")
            if pack.shape[0] < _PACK_ROWS:
                raise EngineError(f"Kokoro voice {voice!r} has {pack.shape[0]} rows, needs {_PACK_ROWS}")
            # Kept on the CPU: KPipeline only takes a CPU FloatTensor as a voice, and moves it itself.
            self._packs[voice] = pack.float()
            return self._packs[voice]

    # --- identity ---------------------------------------------------------------------------------

    def identity(self) -> dict[str, Any]:
        folder = self._local_dir()
        identity: dict[str, Any] = {
            "engine": "kokoro",
            "version": ENGINE_VERSION,
            # A local folder is named by its name and a digest of its files, not its path, so the same
            # model copied elsewhere (another node) keeps its cache keys.
            "model": folder.resolve().name if folder else self.model,
            "model_files": self._folder_digest(folder) if folder else None,
            # misaki's G2P decides the phonemes, kokoro the audio.
            "kokoro": _version("kokoro"),
            "misaki": _version("misaki"),
            "sample_rate": SAMPLE_RATE,
            "voices": {lang: self._voice_identity(self.voice_for(lang)) for lang in LANG_CODES},
            "speeds": {lang: self.speed_for(lang) for lang in LANG_CODES},
        }
        return identity

    def identity_for(self, lang: str) -> dict[str, Any]:
        """What decides one language's audio: another language's voice or speed does not."""
        lang = language(lang)
        identity = self.identity()
        identity["voices"] = {lang: identity["voices"][lang]}
        identity["speeds"] = {lang: identity["speeds"][lang]}
        return identity

    def _folder_digest(self, folder: Path) -> str:
        try:
            config, weights = self._model_files(folder)
        except EngineError:
            return _files_digest([path for path in folder.iterdir() if path.is_file()])
        return _files_digest([config, weights])

    def _voice_identity(self, voice: str) -> str:
        """The voice name, plus a digest of its file when it is a file here that could be swapped."""
        try:
            path = self._voice_file(voice)
        except EngineError:
            return voice  # synthesis will say what is wrong
        if path is None:
            return voice
        name = voice if path.stem == voice else path.stem
        return f"{name}@{_files_digest([path])}"

    # --- synthesis --------------------------------------------------------------------------------

    def supports(self, lang: str) -> bool:
        try:
            language(lang)
        except EngineError:
            return False
        return True

    def synthesize(self, text: str, *, lang: str) -> Synthesis:
        lang = language(lang)
        if not text.strip():
            raise EngineError(f"Kokoro was given no text to speak for language {lang!r}")
        self.load()
        voice, speed = self.voice_for(lang), self.speed_for(lang)
        import torch

        with self._lock:
            pipeline = self._pipeline(lang)
            pack = self._pack(voice)
            # The decoder draws random phases and noise from torch's global generator: seed it from
            # the request, on a forked state so nothing else in the process is disturbed.
            devices = [self._model.device] if self._model.device.type == "cuda" else []
            with torch.random.fork_rng(devices=devices), torch.inference_mode():
                torch.manual_seed(seed_from("kokoro", lang, voice, str(speed), text))
                if lang.startswith("en"):
                    audio, words = self._english(pipeline, text, pack=pack, speed=speed)
                else:
                    audio, words = self._phonemized(pipeline, text, pack=pack, speed=speed), None
        if not audio:
            raise EngineError(f"Kokoro produced no audio for {text[:40]!r} in language {lang!r}")
        samples = np.concatenate(audio).astype(np.float32, copy=False)
        return Synthesis(samples=samples[None, :], sample_rate=SAMPLE_RATE, words=words)

    def _english(
        self, pipeline: Any, text: str, *, pack: Any, speed: float
    ) -> tuple[list[np.ndarray], list[WordTiming]]:
        """The English pipeline chunks by phonemes itself and times each token of each chunk."""
        audio: list[np.ndarray] = []
        words: list[WordTiming] = []
        offset = 0
        for result in pipeline(text, voice=pack, speed=speed):
            if result.audio is None:
                continue
            at = offset / SAMPLE_RATE
            for token in result.tokens or []:
                start, end = getattr(token, "start_ts", None), getattr(token, "end_ts", None)
                if start is None or end is None or not any(c.isalnum() for c in token.text):
                    continue
                words.append(WordTiming(text=token.text, start=at + start, end=at + max(start, end)))
            chunk = result.audio.float().cpu().numpy()
            audio.append(chunk)
            offset += chunk.size
        return audio, words

    def _phonemized(self, pipeline: Any, text: str, *, pack: Any, speed: float) -> list[np.ndarray]:
        """Phonemize piece by piece so no piece passes Kokoro's 510-phoneme window (which would cut it)."""
        audio: list[np.ndarray] = []
        pending = [piece.strip() for piece in split_text(text, max_bytes=_PIECE_BYTES)]
        while pending:
            piece = pending.pop(0)
            if not piece:
                continue
            phonemes, _ = pipeline.g2p(piece)
            if not phonemes:
                continue
            if len(phonemes) > _WINDOW:
                halves = split_text(piece, max_bytes=max(4, len(piece.encode()) // 2))
                if len(halves) > 1:
                    pending[:0] = [half.strip() for half in halves]
                    continue
                phonemes = phonemes[:_WINDOW]  # one unsplittable word: what Kokoro does anyway
            for result in pipeline.generate_from_tokens(phonemes, voice=pack, speed=speed):
                if result.audio is not None:
                    audio.append(result.audio.float().cpu().numpy())
        return audio
