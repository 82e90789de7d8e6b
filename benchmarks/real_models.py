"""zray's production models at their real sizes with random weights, built on the device itself.

Timings do not depend on the weights' values, only on shapes and step counts, so a model built from
its real architecture config (`real_size_configs.json`, with sources) and given random weights times
like the trained one. Each module is constructed with the device and dtype as torch's defaults, so
its parameters are allocated and initialised where they run: 20 GB of Z-Image never goes through a
disk or the host. `tiny_configs()` has the same structure with tiny numbers (the tests' tiny models'
shapes), so `--tiny` runs exactly this code on a CPU.

Tokenizers are trained on the spot on a few sentences (no download): prompts are padded to the
pipelines' fixed lengths, so the text encoders do real-size work whatever the vocabulary.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CONFIGS = HERE / "real_size_configs.json"

_CORPUS = [
    "A red desert at dawn, long shadows over the dunes.",
    "A blue ocean at night under a sky full of stars.",
    "calm piano music with soft strings, epic orchestral soundtrack for a documentary",
    "Un castillo en la montaña, nieve y luz dorada.",
    "user assistant system photo painting cinematic wide shot",
]
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
# Kokoro's duration head pinned to this many 25 ms frames per phoneme symbol: random weights would
# otherwise give random speaking rates, and speech time is what narration costs are quoted per.
KOKORO_FRAMES_PER_SYMBOL = 2


def load_configs(path: Path = CONFIGS) -> dict[str, Any]:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def tiny_configs(real: dict[str, Any] | None = None) -> dict[str, Any]:
    """The real configs with tiny widths and depths (the tests' tiny models), same keys."""
    tiny = copy.deepcopy(real or load_configs())
    z = tiny["zimage"]
    z["transformer"].update(
        dim=32, n_layers=2, n_refiner_layers=1, n_heads=2, n_kv_heads=2, cap_feat_dim=16, axes_dims=[8, 4, 4]
    )
    z["transformer"]["axes_lens"] = [512, 128, 128]
    z["text_encoder"].update(
        hidden_size=16,
        intermediate_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        head_dim=8,
        vocab_size=1024,
        max_position_embeddings=512,
    )
    z["vae"].update(block_out_channels=[8, 8, 16, 16], layers_per_block=1, norm_num_groups=8, sample_size=32)
    z["vae"]["mid_block_add_attention"] = False
    z["tokenizer_vocab"] = 384
    for size in ("small", "medium"):
        m = tiny["musicgen"][size]
        m["text_encoder"].update(vocab_size=99, d_model=24, d_kv=4, d_ff=4, num_layers=2, num_heads=4)
        m["audio_encoder"].update(hidden_size=99, num_filters=4, codebook_dim=99, compress=1)
        m["decoder"].update(hidden_size=16, num_hidden_layers=2, num_attention_heads=4, ffn_dim=4)
    w = tiny["wan"]  # tests/tiny_wan.py's shapes
    w["transformer"].update(
        num_attention_heads=2,
        attention_head_dim=12,
        text_dim=32,
        ffn_dim=32,
        num_layers=2,
        rope_max_seq_len=32,
    )
    w["text_encoder"].update(
        vocab_size=1024,
        d_model=32,
        d_kv=8,
        d_ff=32,
        num_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
    )
    w["vae"].update(base_dim=3, decoder_base_dim=None, dim_mult=[1, 1, 1, 1], num_res_blocks=1)
    w["clip"].update(width=64, height=32, frames=9)
    k = tiny["kokoro"]
    k.update(n_layer=1, max_dur=2, dropout=0.0)
    k["plbert"].update(
        hidden_size=64,
        num_attention_heads=2,
        intermediate_size=128,
        num_hidden_layers=1,
        embedding_size=32,
        dropout=0.0,
    )
    k["istftnet"].update(resblock_dilation_sizes=[[1, 3, 5]], resblock_kernel_sizes=[3])
    return tiny


def parameters(module: Any) -> int:
    return sum(p.numel() for p in module.parameters())


@contextlib.contextmanager
def building(device: str, dtype: Any) -> Iterator[None]:
    """Construct modules with `device` and `dtype` as torch's defaults: weights are made in place."""
    import torch

    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            yield
    finally:
        torch.set_default_dtype(previous)


def fill_non_finite(module: Any, *, std: float = 0.02) -> int:
    """Give every parameter or buffer that holds NaN or inf (memory from torch.empty, such as Z-Image's
    pad tokens) normal random values; returns how many tensors were filled."""
    import torch

    filled = 0
    with torch.no_grad():
        for tensor in [*module.parameters(), *module.buffers()]:
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                tensor.normal_(0.0, std)
                filled += 1
    return filled


# --- Z-Image ----------------------------------------------------------------------------------------


def build_zimage(configs: dict[str, Any], *, device: str, dtype: Any) -> Any:
    """A `ZImagePipeline` of Z-Image-Turbo's real shapes (6.15 B transformer, 4.02 B Qwen3 text
    encoder, 84 M VAE) with random weights, made on `device` in `dtype`."""
    import torch
    from diffusers import (
        AutoencoderKL,
        FlowMatchEulerDiscreteScheduler,
        ZImagePipeline,
        ZImageTransformer2DModel,
    )
    from transformers import Qwen3Config, Qwen3Model

    z = configs["zimage"]
    tokenizer = _bpe_tokenizer(z["tokenizer_vocab"])
    with torch.random.fork_rng(devices=[]), building(device, dtype):
        torch.manual_seed(0)
        transformer = ZImageTransformer2DModel(**z["transformer"])
        vae = AutoencoderKL(**z["vae"])
        text_encoder = Qwen3Model(Qwen3Config(**z["text_encoder"], pad_token_id=tokenizer.pad_token_id))
    # The pad tokens are allocated with torch.empty: seeded values, so two builds are the same model.
    generator = torch.Generator(device=device).manual_seed(1)
    with torch.no_grad():
        for token in (transformer.x_pad_token, transformer.cap_pad_token):
            token.copy_(torch.randn(token.shape, generator=generator, device=device, dtype=token.dtype))
    for module in (transformer, vae, text_encoder):
        fill_non_finite(module)
        module.eval()
    scheduler = FlowMatchEulerDiscreteScheduler(**z["scheduler"])
    return ZImagePipeline(
        scheduler=scheduler, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, transformer=transformer
    )


def _bpe_tokenizer(vocab: int) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab,
        special_tokens=special,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(_CORPUS, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, eos_token="<|im_end|>", pad_token="<|endoftext|>", model_max_length=512
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


# --- Wan ------------------------------------------------------------------------------------------


def build_wan(configs: dict[str, Any], *, device: str, dtype: Any) -> Any:
    """A `WanImageToVideoPipeline` of Wan2.2-TI2V-5B's real shapes (5.0 B transformer, 5.7 B UMT5-XXL
    encoder, the 48-channel Wan2.2 VAE) with random weights, made on `device`: the transformer and
    text encoder in `dtype`, the VAE in float32 (as the engine runs it)."""
    import torch
    from diffusers import (
        AutoencoderKLWan,
        UniPCMultistepScheduler,
        WanImageToVideoPipeline,
        WanTransformer3DModel,
    )
    from transformers import UMT5Config, UMT5EncoderModel

    w = configs["wan"]
    tokenizer = _unigram_tokenizer()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        with building(device, dtype):
            transformer = WanTransformer3DModel(**w["transformer"])
            text_encoder = UMT5EncoderModel(UMT5Config(**w["text_encoder"]))
        with building(device, torch.float32):
            vae = AutoencoderKLWan(**w["vae"])
    for module in (transformer, vae, text_encoder):
        fill_non_finite(module)
        module.eval()
    return WanImageToVideoPipeline(
        tokenizer=tokenizer,
        text_encoder=text_encoder,
        vae=vae,
        scheduler=UniPCMultistepScheduler(**w["scheduler"]),
        transformer=transformer,
        transformer_2=None,
        image_encoder=None,
        image_processor=None,
        boundary_ratio=None,
        expand_timesteps=True,
    )


def wan_flops_per_forward(configs: dict[str, Any], *, width: int, height: int, frames: int) -> float:
    """Multiply-adds x 2 of one transformer forward at this clip size: the blocks' linear layers
    (self- and cross-attention projections, the FFN) and the attention products over the video tokens.
    The text side (512 tokens) and the embeddings are left out: under 2 % here."""
    t, v = configs["wan"]["transformer"], configs["wan"]["vae"]
    dim = t["num_attention_heads"] * t["attention_head_dim"]
    tokens = (
        ((frames - 1) // v["scale_factor_temporal"] + 1)
        * (height // v["scale_factor_spatial"] // 2)
        * (width // v["scale_factor_spatial"] // 2)
    )
    text = 512
    per_block = (
        2 * tokens * (4 * dim * dim)  # self-attention q, k, v, out
        + 2 * tokens * (2 * dim * dim)  # cross-attention q, out
        + 2 * text * (2 * dim * dim)  # cross-attention k, v over the text
        + 2 * tokens * (2 * dim * t["ffn_dim"])  # the FFN
        + 2 * 2 * tokens * tokens * dim  # self-attention scores and values
        + 2 * 2 * tokens * text * dim  # cross-attention scores and values
    )
    return float(per_block * t["num_layers"])


# --- MusicGen ---------------------------------------------------------------------------------------


def build_musicgen(configs: dict[str, Any], size: str, *, device: str) -> tuple[Any, Any]:
    """(MusicgenForConditionalGeneration, MusicgenProcessor) of musicgen-`size`'s shapes, float32 on
    `device` (the engine casts the language model to its dtype, as it does a loaded one)."""
    import torch
    from transformers import (
        EncodecConfig,
        EncodecFeatureExtractor,
        MusicgenConfig,
        MusicgenDecoderConfig,
        MusicgenForConditionalGeneration,
        MusicgenProcessor,
        T5Config,
    )

    m = configs["musicgen"][size]
    config = MusicgenConfig(
        text_encoder=T5Config(**m["text_encoder"]),
        audio_encoder=EncodecConfig(**m["audio_encoder"]),
        decoder=MusicgenDecoderConfig(**m["decoder"]),
    )
    with torch.random.fork_rng(devices=[]), building(device, torch.float32):
        torch.manual_seed(0)
        model = MusicgenForConditionalGeneration(config)
        # EnCodec's codebooks start as zero buffers: every code would decode to the same sound.
        with torch.no_grad():
            for layer in model.audio_encoder.quantizer.layers:
                layer.codebook.embed.normal_(0.0, 1.0)
                layer.codebook.embed_avg.copy_(layer.codebook.embed)
    fill_non_finite(model)
    rate = int(m["audio_encoder"]["sampling_rate"])
    processor = MusicgenProcessor(
        feature_extractor=EncodecFeatureExtractor(feature_size=1, sampling_rate=rate, padding_value=0.0),
        tokenizer=_unigram_tokenizer(),
    )
    return model.eval(), processor


def _unigram_tokenizer() -> Any:
    """T5's tokenizer type over a fixed vocabulary (a trained Unigram breaks ties in thread order, so
    two builds could tokenize a prompt differently and two identical models make different music)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers
    from transformers import T5TokenizerFast

    words = sorted({w for line in _CORPUS for w in line.lower().replace(",", " ").split()})
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -8.0)]
    vocab += [("\u2581" + word, -5.0) for word in words]
    vocab += [(character, -10.0) for character in "abcdefghijklmnopqrstuvwxyz0123456789.,;:!?-'"]
    tokenizer = Tokenizer(models.Unigram(vocab, unk_id=2))
    tokenizer.normalizer = normalizers.NFKC()
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    return T5TokenizerFast(
        tokenizer_object=tokenizer, eos_token="</s>", unk_token="<unk>", pad_token="<pad>", extra_ids=0
    )


# --- Kokoro -----------------------------------------------------------------------------------------


def build_kokoro(configs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """(KModel, {"ef_dora": voice pack}) of Kokoro-82M's shapes on the CPU (82 M parameters: the
    engine moves it), its duration head pinned to KOKORO_FRAMES_PER_SYMBOL frames per symbol."""
    import torch
    from kokoro import KModel

    config = configs["kokoro"]
    with tempfile.TemporaryDirectory(prefix="kokoro-random-") as folder:
        empty = Path(folder) / "empty.pth"
        torch.save({}, empty)  # KModel loads weights from a file: an empty one keeps the random ones
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = KModel(repo_id="hexgrad/Kokoro-82M", config=copy.deepcopy(config), model=str(empty))
    fill_non_finite(model)
    # duration = sum over max_dur of sigmoid(projection): a zero projection with bias logit(f / max_dur)
    # gives exactly f frames per symbol.
    projection = model.predictor.duration_proj.linear_layer
    frames = min(KOKORO_FRAMES_PER_SYMBOL, int(config["max_dur"]) // 2)  # the tiny model's max_dur is 2
    share = frames / int(config["max_dur"])
    with torch.no_grad():
        projection.weight.zero_()
        projection.bias.fill_(math.log(share / (1 - share)))
    pack = 0.3 * torch.randn(510, 1, 256, generator=torch.Generator().manual_seed(1))
    return model.eval(), {"ef_dora": pack}
