"""A tiny random-weight Wan2.2 5B-style image-to-video pipeline, in memory or saved like a real model,
for tests that must not download.

The shapes are those of Wan2.2-TI2V-5B scaled down (diffusers' own fast test for it): a VAE with 48
latent channels, 2x2 pixel patches (12 channels in and out) and 16x spatial, 4x temporal compression;
a transformer with 48 channels in and out; `expand_timesteps`, so the picture is the first latent
frame and stays there. The text encoder is a two-layer UMT5 (Wan's own kind) and the tokenizer a
fixed Unigram vocabulary in `T5TokenizerFast` (tests/tiny_musicgen.py's), made on the spot.
`build_tiny_wan_pipeline()` returns the pipeline (hand it to `WanVideoEngine(settings, pipeline=...)`);
`build_tiny_wan(dest)` saves it as a model folder that `WanImageToVideoPipeline.from_pretrained`
loads offline. Weights are the same on every build (seeded); the caller's random state is untouched.
"""

from __future__ import annotations

from pathlib import Path

from tiny_musicgen import unigram_vocab

TEXT_WIDTH = 32
MAX_TOKENS = 64  # the engine asks for Wan's 512; the encoder has relative positions, so any length works

_CORPUS = [
    "the camera slowly pans across a red desert at dawn",
    "waves roll onto a beach under a sky full of stars",
    "leaves move in the wind in a green forest",
    "un castillo en la montaña, nieve y luz dorada",
    "bright tones overexposed static blurred details subtitles worst quality",
]


def build_tiny_wan(dest: Path) -> Path:
    """Build and save a tiny WanImageToVideoPipeline into `dest`; returns `dest`."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    build_tiny_wan_pipeline().save_pretrained(dest)
    return dest


def build_tiny_wan_pipeline():
    import torch

    with torch.random.fork_rng(devices=[]):
        return _seeded_pipeline()


def _seeded_pipeline():
    import torch
    from diffusers import (
        AutoencoderKLWan,
        UniPCMultistepScheduler,
        WanImageToVideoPipeline,
        WanTransformer3DModel,
    )
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers
    from transformers import T5TokenizerFast, UMT5Config, UMT5EncoderModel

    torch.manual_seed(0)
    vae = AutoencoderKLWan(
        base_dim=3,
        z_dim=48,
        in_channels=12,
        out_channels=12,
        is_residual=True,
        patch_size=2,
        latents_mean=[0.0] * 48,
        latents_std=[1.0] * 48,
        dim_mult=[1, 1, 1, 1],
        num_res_blocks=1,
        scale_factor_spatial=16,
        scale_factor_temporal=4,
        temperal_downsample=[False, True, True],
    )
    # Wan2.2-TI2V-5B's scheduler: UniPC on flow sigmas, shift 5.
    scheduler = UniPCMultistepScheduler(
        prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=5.0
    )

    backend = Tokenizer(models.Unigram(unigram_vocab(_CORPUS), unk_id=2))
    backend.normalizer = normalizers.NFKC()
    backend.pre_tokenizer = pre_tokenizers.Metaspace()
    backend.decoder = decoders.Metaspace()
    tokenizer = T5TokenizerFast(
        tokenizer_object=backend, eos_token="</s>", unk_token="<unk>", pad_token="<pad>", extra_ids=0
    )

    torch.manual_seed(0)
    text_encoder = UMT5EncoderModel(
        UMT5Config(
            vocab_size=len(tokenizer),
            d_model=TEXT_WIDTH,
            d_kv=8,
            d_ff=32,
            num_layers=2,
            num_heads=4,
            relative_attention_num_buckets=8,
        )
    ).eval()

    torch.manual_seed(0)
    transformer = WanTransformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=2,
        attention_head_dim=12,
        in_channels=48,
        out_channels=48,
        text_dim=TEXT_WIDTH,
        freq_dim=256,
        ffn_dim=32,
        num_layers=2,
        cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
        rope_max_seq_len=32,
    )
    return WanImageToVideoPipeline(
        tokenizer=tokenizer,
        text_encoder=text_encoder,
        vae=vae,
        scheduler=scheduler,
        transformer=transformer,
        transformer_2=None,
        image_encoder=None,
        image_processor=None,
        boundary_ratio=None,
        expand_timesteps=True,
    )
