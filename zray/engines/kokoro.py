"""Narration with Kokoro-82M: production's voice for English, Spanish, French, Hindi, Italian, Portuguese,
Japanese and Mandarin (Kokoro has no Catalan; Google Cloud TTS speaks that).

One `KModel` is shared by a `KPipeline` per language, each made on first use. The model comes from a
Hugging Face id (the cache, downloading when allowed) or a local directory laid out like the repo
(config.json, one .pth of state dicts, voices/*.pt); both reach `KModel` as file paths, so Kokoro never
downloads on its own. Voice packs are loaded here too, so a missing voice is a clear error, not a
download attempt.

Kokoro's Spanish and the other espeak-based languages run offline. English G2P needs spaCy's
`en_core_web_sm`, which misaki would try to download mid-run: `english_ready()` checks for it first.

Word timings come from the durations Kokoro predicts for each phoneme: English's pipeline times its own
tokens; elsewhere each piece's phonemes are matched to its words phonemized one by one
(`phoneme_words`). The audio is exactly what it was without them, so cache keys do not change.

A ready `KModel` and voice packs (name -> [510, 1, 256] tensor) can be handed in instead (`model=`,
`voices=`): a benchmark builds them on the GPU, a test in memory. The identity still comes from the
settings, so whoever injects components names them there.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib.metadata
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from zray.engines.base import (
    BaseEngine,
    EngineError,
    EngineSettings,
    Synthesis,
    WordTiming,
    require,
    seed_from,
)
from zray.engines.phoneme_words import phoneme_owners, word_timings
from zray.engines.text import bare_word, is_spoken, normalize_language, split_text

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
# The voice packs of hexgrad/Kokoro-82M (its VOICES.md) by lang_code, so a voice name is checked before
# any download.
# fmt: off
OFFICIAL_VOICES: dict[str, tuple[str, ...]] = {
    "a": ("af_heart", "af_alloy", "af_aoede", "af_bella", "af_jessica", "af_kore", "af_nicole", "af_nova",
          "af_river", "af_sarah", "af_sky", "am_adam", "am_echo", "am_eric", "am_fenrir", "am_liam",
          "am_michael", "am_onyx", "am_puck", "am_santa"),
    "b": ("bf_alice", "bf_emma", "bf_isabella", "bf_lily", "bm_daniel", "bm_fable", "bm_george", "bm_lewis"),
    "j": ("jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo"),
    "z": ("zf_xiaobei", "zf_xiaoni", "zf_xiaoxiao", "zf_xiaoyi", "zm_yunjian", "zm_yunxi", "zm_yunxia",
          "zm_yunyang"),
    "e": ("ef_dora", "em_alex", "em_santa"),
    "f": ("ff_siwis",),
    "h": ("hf_alpha", "hf_beta", "hm_omega", "hm_psi"),
    "i": ("if_sara", "im_nicola"),
    "p": ("pf_dora", "pm_alex", "pm_santa"),
}
# fmt: on
_SPACY_MODEL = "en_core_web_sm"
_SPACY_FIX = f"python -m spacy download {_SPACY_MODEL}"


def language(lang: str) -> str:
    """zray's name for a language Kokoro speaks (`en-US` -> `en`), or EngineError naming it."""
    normalized = normalize_language(lang)
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


@dataclass(frozen=True)
class KokoroSettings(EngineSettings):
    model: str = DEFAULT_MODEL  # a Hugging Face id or a local folder laid out like the repo
    voices: dict[str, str] = field(default_factory=dict)  # language -> voice name or .pt path
    speeds: dict[str, float] = field(default_factory=dict)  # language -> 0.5..2.0
    device: str = "auto"  # "auto" (CUDA where the worker has it, else CPU), "cpu", "cuda", "cuda:N"

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model.strip():
            raise EngineError(f"Kokoro model must be a Hugging Face id or a folder, not {self.model!r}")
        for lang, voice in self.voices.items():
            language(lang)
            if not isinstance(voice, str) or not voice.strip():
                raise EngineError(f"Kokoro voice for {lang} must be a voice name, not {voice!r}")
        for lang, speed in self.speeds.items():
            language(lang)
            if (
                isinstance(speed, bool)
                or not isinstance(speed, int | float)
                or not MIN_SPEED <= speed <= MAX_SPEED
            ):
                raise EngineError(f"Kokoro speed for {lang} must be {MIN_SPEED}..{MAX_SPEED}, got {speed!r}")
        if not isinstance(self.device, str) or not self.device.strip():
            raise EngineError(f"Kokoro device must be auto, cpu, cuda or cuda:N, not {self.device!r}")


class KokoroTTSEngine(BaseEngine):
    """Speaks text with Kokoro; mono float32 at 24 kHz, with word timings from its predicted durations."""

    name: ClassVar[str] = "kokoro"
    role: ClassVar[str] = "tts"
    uses_gpu: ClassVar[bool] = True
    requires: ClassVar[tuple[str, ...]] = ("torch", "kokoro")
    settings_type = KokoroSettings

    def __init__(
        self,
        settings: KokoroSettings | None = None,
        *,
        model: Any = None,
        voices: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(settings)
        self.model = self.settings.model
        self.voices = {language(lang): voice for lang, voice in self.settings.voices.items()}
        self.speeds = {language(lang): float(speed) for lang, speed in self.settings.speeds.items()}
        self.device = self.settings.device
        self._lock = threading.RLock()
        self._given_model: Any = model
        self._model: Any = None
        self._pipelines: dict[str, Any] = {}
        # Voice packs by name: the injected ones, then whatever gets loaded.
        self._given_packs = set(voices or {})
        self._packs: dict[str, Any] = dict(voices or {})
        self._repo = self.model

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
            require(self)
            import torch

            device = _resolve_device(torch, self.device)
            if self._given_model is not None:
                model, repo = self._given_model, self._given_repo()
            else:
                model, repo = self._load_model()
            try:
                # float32 even on CUDA: KModel builds float32 tensors of its own (alignments, LSTM
                # inputs) that meet its weights, so a bfloat16 model fails; 82 M parameters fit anyway.
                self._model = model.to(device).float().eval()
            except (RuntimeError, AssertionError) as exc:
                raise EngineError(f"Kokoro cannot run on device {device!r}: {exc}") from None
            self._given_model = None
            self._repo = repo

    def _load_model(self) -> tuple[Any, str]:
        from kokoro import KModel

        folder = self._local_dir() or self._download()
        config, weights = self._model_files(folder)
        repo = self._repo_id(weights)
        try:
            return KModel(repo_id=repo, config=str(config), model=str(weights)), repo
        except Exception as exc:
            raise EngineError(f"Kokoro model {self.model!r} failed to load: {exc}") from None

    def _given_repo(self) -> str:
        """The repo whose G2P an injected model gets: its settings' Hub id, else Kokoro-82M's."""
        try:
            local = self._local_dir()
        except EngineError:
            local = None
        return self.model if local is None and self.model in _CHECKPOINTS else DEFAULT_MODEL

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

    def check_voice(self, lang: str) -> None:
        lang = language(lang)
        voice = self.voice_for(lang)
        if voice in self._given_packs:
            return
        path = self._voice_file(voice)  # a path or a local folder's voice: EngineError if missing
        every = [name for names in OFFICIAL_VOICES.values() for name in names]
        if path is not None or self.model != DEFAULT_MODEL or voice in every:
            return  # another Hub repo's voices cannot be listed offline: its download will tell
        close = difflib.get_close_matches(voice, every, n=3, cutoff=0.6)
        similar = f"similar: {', '.join(close)}; " if close else ""
        raise EngineError(
            f"Kokoro has no voice {voice!r} ({similar}its {lang} voices: "
            f"{', '.join(OFFICIAL_VOICES[LANG_CODES[lang]])}; {len(every)} in all, see {DEFAULT_MODEL}'s "
            "VOICES.md)"
        )

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
                    audio, words = self._phonemized(pipeline, text, pack=pack, speed=speed)
        if not audio:
            raise EngineError(f"Kokoro produced no audio for {text[:40]!r} in language {lang!r}")
        samples = np.concatenate(audio).astype(np.float32, copy=False)
        return Synthesis(samples=samples[None, :], sample_rate=SAMPLE_RATE, words=words or None)

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
                words.append(WordTiming(token.text, at + start, at + max(start, end)))
            chunk = result.audio.float().cpu().numpy()
            audio.append(chunk)
            offset += chunk.size
        return audio, words

    def _phonemized(
        self, pipeline: Any, text: str, *, pack: Any, speed: float
    ) -> tuple[list[np.ndarray], list[WordTiming]]:
        """Phonemize piece by piece so no piece passes Kokoro's 510-phoneme window (which would cut it),
        and time each piece's words by the durations Kokoro predicted for their phonemes."""
        audio: list[np.ndarray] = []
        words: list[WordTiming] = []
        offset = 0
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
                if result.audio is None:
                    continue
                chunk = result.audio.float().cpu().numpy()
                timed = self._piece_words(pipeline, piece, phonemes, result.pred_dur, samples=chunk.size)
                timed = [word.shifted(offset / SAMPLE_RATE) for word in timed]
                if words and timed:  # the pause before a piece ends the word before it, as within one
                    words[-1] = WordTiming(words[-1].word, words[-1].start, timed[0].start)
                words += timed
                audio.append(chunk)
                offset += chunk.size
        return audio, words

    def _piece_words(
        self, pipeline: Any, piece: str, phonemes: str, durations: Any, *, samples: int
    ) -> list[WordTiming]:
        """The piece's words timed by `durations` (frames per model input: the boundary token, each
        phoneme the model kept, the boundary token); none when they do not fit the phonemes."""
        tokens = [token for token in piece.split() if is_spoken(token)]
        if durations is None or not tokens:
            return []
        frames = [int(value) for value in durations.reshape(-1).tolist()]
        # KModel drops characters its vocabulary lacks before predicting durations: so must we.
        vocab = self._model.vocab
        kept = "".join(character for character in phonemes if character in vocab)
        if len(frames) != len(kept) + 2 or not kept or sum(frames) <= 0:
            return []
        alone = ["".join(c for c in pipeline.g2p(token)[0] if c in vocab) for token in tokens]
        owners = phoneme_owners(kept, alone)
        return word_timings(
            [bare_word(token) for token in tokens],
            owners,
            frames,
            frame_seconds=samples / sum(frames) / SAMPLE_RATE,
        )


def _resolve_device(torch: Any, device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device
