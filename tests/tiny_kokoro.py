"""A tiny random-weight Kokoro model, in memory or on disk laid out like a local copy of hexgrad/Kokoro-82M.

Kokoro's decoder widths are fixed (style_dim 128, hidden_dim and upsample_initial_channel 512), so the
smallest model that loads is about 58 M parameters (230 MB). `build_tiny_kokoro_components()` gives
(KModel, voice packs) in memory, for `KokoroTTSEngine(settings, model=..., voices=...)`;
`tiny_kokoro_dir(tmp_path_factory)` saves the same model once per test session for the tests of the
path a real model takes. Everything is seeded, so two builds are identical.
Random weights still give each phoneme a duration (max_dur 2 keeps that to one or two 25 ms frames,
so synthesis stays fast) and make noisy but non-silent audio.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

WEIGHTS = "kokoro-tiny.pth"
VOICES = ("ef_dora", "af_heart")
SEED = 20240917
_COMPLETE = ".complete"  # written last: a half-built folder from an interrupted session is rebuilt

# Punctuation, ASCII letters (misaki's English uses capitals for diphthongs) and the IPA and diacritics
# that espeak-ng's Spanish and misaki's English emit. Id 0 is Kokoro's boundary token.
_SYMBOLS = (
    ';:,.!?¡¿—…"()“” '
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    "ɑɐɒæβɔɕçðʤəɚɛɜɟɡɦħɥɨɪʝɭɬɫʎɱɯɰŋɲɴøθœɹɾɻʀʁʂʃʈʧʊʋʌɣɤχʒʔˈˌːʰʲʷᵻᵊʣʥʦʨᵝꭧ\u0303\u0329"
)


def tiny_config() -> dict[str, Any]:
    vocab = {symbol: index + 1 for index, symbol in enumerate(dict.fromkeys(_SYMBOLS))}
    return {
        "vocab": vocab,
        "n_token": len(vocab) + 1,
        "hidden_dim": 512,  # fixed by the decoder
        "style_dim": 128,  # KModel slices ref_s[:, 128:]
        "n_layer": 1,
        "max_dur": 2,
        "dropout": 0.0,
        "n_mels": 80,
        "dim_in": 64,
        "max_conv_dim": 512,
        "text_encoder_kernel_size": 5,
        "multispeaker": True,
        "plbert": {
            "hidden_size": 64,
            "num_attention_heads": 2,
            "intermediate_size": 128,
            "max_position_embeddings": 512,
            "num_hidden_layers": 1,
            "embedding_size": 32,
            "dropout": 0.0,
        },
        "istftnet": {
            # Kokoro's own rates: 600 samples per duration frame at 24 kHz.
            "upsample_kernel_sizes": [20, 12],
            "upsample_rates": [10, 6],
            "gen_istft_hop_size": 5,
            "gen_istft_n_fft": 20,
            "resblock_dilation_sizes": [[1, 3, 5]],
            "resblock_kernel_sizes": [3],
            "upsample_initial_channel": 512,  # fixed by the decoder
        },
    }


def build_tiny_kokoro_components() -> tuple[Any, dict[str, Any]]:
    """(KModel on the CPU, {voice name: [510, 1, 256] pack}) for VOICES; the caller's random state is
    left as it was."""
    import tempfile

    import torch
    from kokoro import KModel

    # KModel only builds from a weights file: an empty one leaves its freshly initialised modules as
    # they are, and those are the tiny model's weights.
    with tempfile.TemporaryDirectory(prefix="tiny-kokoro-") as folder:
        empty = Path(folder) / "empty.pth"
        torch.save({}, empty)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(SEED)
            model = KModel(repo_id="hexgrad/Kokoro-82M", config=tiny_config(), model=str(empty))
    packs = {}
    for index, name in enumerate(VOICES):
        generator = torch.Generator().manual_seed(SEED + index)
        packs[name] = 0.3 * torch.randn(510, 1, 256, generator=generator)
    return model.eval(), packs


def build_tiny_kokoro(dest: Path) -> Path:
    """Write config.json, a .pth of state dicts and voices/*.pt into `dest`; returns `dest`.

    Does nothing when `dest` already holds a complete build.
    """
    import torch

    dest = Path(dest)
    if (dest / _COMPLETE).exists():
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "config.json").write_text(
        json.dumps(tiny_config(), ensure_ascii=False, indent=1), encoding="utf-8"
    )
    model, packs = build_tiny_kokoro_components()
    parts = ("bert", "bert_encoder", "predictor", "text_encoder", "decoder")
    torch.save({part: getattr(model, part).state_dict() for part in parts}, dest / WEIGHTS)
    voices = dest / "voices"
    voices.mkdir(exist_ok=True)
    for name, pack in packs.items():
        torch.save(pack, voices / f"{name}.pt")
    (dest / _COMPLETE).write_text("ok\n")
    return dest


def tiny_kokoro_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's tiny model: built on first use under the session's base temp dir, then reused."""
    return build_tiny_kokoro(tmp_path_factory.getbasetemp() / "tiny-kokoro")
