"""A tiny random-weight Z-Image pipeline, in memory or saved like a real model, for tests that must not
download.

`build_tiny_zimage_pipeline()` builds a `ZImagePipeline` in memory (hand it to `ZImageEngine(settings,
pipeline=...)`): the component shapes of diffusers' own fast test, a Qwen3 text encoder, and a
byte-level BPE tokenizer trained on the spot (the pipeline renders prompts through
`apply_chat_template`, so it carries a chat template). `build_tiny_zimage(dest)` saves the same
pipeline as a model directory (model_index.json plus one folder per component) that
`ZImagePipeline.from_pretrained(dest)` loads offline, for the one test of the path a real model id
takes. About 4 MB; weights are the same on every build (seeded).
"""

from __future__ import annotations

from pathlib import Path

# The pipeline wraps each prompt as one user turn and asks for the assistant's reply; Qwen3's template
# has the same shape, and extra variables (`enable_thinking`) are simply unused.
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
VOCAB_SIZE = 384
# Prompts are padded to the pipeline's max_sequence_length (512), so the encoder needs that many positions.
MAX_POSITIONS = 512

_CORPUS = [
    "A red desert at dawn, long shadows over the dunes.",
    "A blue ocean at night under a sky full of stars.",
    "A green forest in fog, old trees and a narrow path.",
    "Un castillo en la montaña, nieve y luz dorada.",
    "Una ciutat medieval amb carrers estrets i torres de pedra.",
    "user assistant system photo painting cinematic wide shot",
]


def build_tiny_zimage(dest: Path) -> Path:
    """Build and save a tiny ZImagePipeline into `dest` (created if missing); returns `dest`."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    build_tiny_zimage_pipeline().save_pretrained(dest)
    return dest


def build_tiny_zimage_pipeline():
    """A tiny float32 `ZImagePipeline` on the CPU, the same weights on every build; the caller's
    random state is left as it was."""
    import torch

    with torch.random.fork_rng(devices=[]):
        return _seeded_pipeline()


def _seeded_pipeline():
    import torch
    from diffusers import (
        AutoencoderKL,
        FlowMatchEulerDiscreteScheduler,
        ZImagePipeline,
        ZImageTransformer2DModel,
    )
    from transformers import Qwen3Config, Qwen3Model

    torch.manual_seed(0)
    transformer = ZImageTransformer2DModel(
        all_patch_size=(2,),
        all_f_patch_size=(1,),
        in_channels=16,
        dim=32,
        n_layers=2,
        n_refiner_layers=1,
        n_heads=2,
        n_kv_heads=2,
        norm_eps=1e-5,
        qk_norm=True,
        cap_feat_dim=16,
        rope_theta=256.0,
        t_scale=1000.0,
        axes_dims=[8, 4, 4],
        axes_lens=[256, 128, 128],  # room for 1280x720 thumbnails (80x45 patches)
    )
    # The pad tokens are allocated with torch.empty: uninitialised memory would make the weights (and
    # every image) differ from build to build, or hold NaNs.
    with torch.no_grad():
        transformer.x_pad_token.copy_(torch.ones_like(transformer.x_pad_token))
        transformer.cap_pad_token.copy_(torch.ones_like(transformer.cap_pad_token))

    torch.manual_seed(0)
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        # Four blocks give the real model's 8x downscale, so a 1280x720 thumbnail is 160x90 latents
        # (not 640x360); no mid-block attention, whose cost grows with the square of that.
        down_block_types=["DownEncoderBlock2D"] * 4,
        up_block_types=["UpDecoderBlock2D"] * 4,
        block_out_channels=[8, 8, 16, 16],
        layers_per_block=1,
        latent_channels=16,
        norm_num_groups=8,
        mid_block_add_attention=False,
        sample_size=32,
        scaling_factor=0.3611,
        shift_factor=0.1159,
    )

    # Z-Image-Turbo's own scheduler settings.
    scheduler = FlowMatchEulerDiscreteScheduler(
        num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=False
    )

    tokenizer = _train_tokenizer()
    torch.manual_seed(0)
    text_encoder = Qwen3Model(
        Qwen3Config(
            hidden_size=16,  # = the transformer's cap_feat_dim
            intermediate_size=16,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=2,
            head_dim=8,
            vocab_size=len(tokenizer),
            max_position_embeddings=MAX_POSITIONS,
            pad_token_id=tokenizer.pad_token_id,
        )
    )

    return ZImagePipeline(
        scheduler=scheduler,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        transformer=transformer,
    )


def _train_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(_CORPUS, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        model_max_length=MAX_POSITIONS,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer
