"""A tiny random-weight MusicGen saved like a Hub checkpoint, for tests that must never download.

transformers' own test config (T5 d_model 16, EnCodec hidden 99, a 4-codebook decoder), with the codec
laid out like the official 32 kHz one (hop 640 = 50 frames per second, 2048 codes, 2.2 kbps = 4
codebooks) so that audio prompts round-trip: the test config's 128 codes would overflow a 99-token
decoder, and its default bandwidth gives 2 codebooks where the decoder wants 4. Its MusicgenProcessor
is a Unigram tokenizer trained on the spot in T5TokenizerFast and an EncodecFeatureExtractor.

`build_tiny_musicgen_components()` returns (model, processor) in memory, for
`MusicGenEngine(settings, model=..., processor=...)`; `build_tiny_musicgen(dest)` saves both, so
`AutoProcessor.from_pretrained(folder)` works as for a real model id. About 9 MB; builds in about a
second.
"""

from __future__ import annotations

from pathlib import Path

SAMPLING_RATE = 32_000
FRAME_RATE = 50
CODEBOOKS = 4

_CORPUS = [
    "calm piano music with soft strings",
    "epic orchestral soundtrack for a nature documentary",
    "lofi hip hop beat with warm vinyl crackle",
    "ambient pads at night, slow and dreamy",
    "upbeat acoustic guitar and light percussion",
]


def build_tiny_musicgen(dest: Path, *, stereo: bool = False) -> Path:
    """Build the model and processor into `dest` (created) and return it; same weights every time."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    model, processor = build_tiny_musicgen_components(stereo=stereo)
    model.save_pretrained(dest)
    processor.save_pretrained(dest)
    return dest


def build_tiny_musicgen_components(*, stereo: bool = False, text_width: int = 16):
    """(model, processor) in memory, float32 on the CPU; same weights every time.

    `stereo` makes it like musicgen-stereo-*: 8 interleaved codebooks, each channel coded by the
    mono codec, and a feature extractor that takes (2, n) audio prompts. A `text_width` other than
    the decoder's 16 gives the model a projection from the text encoder to the decoder, as the
    real checkpoints have (T5-base's 768 into musicgen-small's 1024)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers
    from transformers import (
        EncodecConfig,
        EncodecFeatureExtractor,
        MusicgenConfig,
        MusicgenDecoderConfig,
        MusicgenForConditionalGeneration,
        MusicgenProcessor,
        T5Config,
        T5TokenizerFast,
    )

    codes = 2048
    text_encoder = T5Config(vocab_size=99, d_model=text_width, d_ff=4, num_layers=2, num_heads=4)
    audio_encoder = EncodecConfig(
        hidden_size=99,
        compress=1,
        num_filters=4,
        codebook_size=codes,
        codebook_dim=99,
        sampling_rate=SAMPLING_RATE,
        upsampling_ratios=[8, 5, 4, 4],
        target_bandwidths=[2.2],
    )
    decoder = MusicgenDecoderConfig(
        vocab_size=codes,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=4,
        ffn_dim=4,
        pad_token_id=codes,
        decoder_start_token_id=codes,
        bos_token_id=codes,
        num_codebooks=CODEBOOKS * (2 if stereo else 1),
        tie_word_embeddings=False,
        audio_channels=2 if stereo else 1,
    )
    config = MusicgenConfig(text_encoder=text_encoder, audio_encoder=audio_encoder, decoder=decoder)
    assert audio_encoder.frame_rate == FRAME_RATE and audio_encoder.num_quantizers == CODEBOOKS
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = MusicgenForConditionalGeneration(config).eval()
        # EnCodec's codebooks start as zero buffers, which would decode every code to the same sound;
        # at this scale the codes change the output about as much as the biases' fixed pattern does.
        with torch.no_grad():
            for layer in model.audio_encoder.quantizer.layers:
                layer.codebook.embed.copy_(30 * torch.randn_like(layer.codebook.embed))
                layer.codebook.embed_avg.copy_(layer.codebook.embed)

    tokenizer = Tokenizer(models.Unigram(unigram_vocab(_CORPUS), unk_id=2))
    tokenizer.normalizer = normalizers.NFKC()
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    processor = MusicgenProcessor(
        feature_extractor=EncodecFeatureExtractor(
            feature_size=2 if stereo else 1, sampling_rate=SAMPLING_RATE, padding_value=0.0
        ),
        tokenizer=T5TokenizerFast(
            tokenizer_object=tokenizer, eos_token="</s>", unk_token="<unk>", pad_token="<pad>", extra_ids=0
        ),
    )
    return model, processor


def unigram_vocab(corpus: list[str]) -> list[tuple[str, float]]:
    """A fixed Unigram vocabulary: the specials, the corpus's words, then single characters.

    Written out rather than trained: the Unigram trainer breaks ties in whatever order its threads
    finish, so two builds could tokenize a prompt differently, and then two "identical" models
    would make different music."""
    words = sorted({word for line in corpus for word in line.lower().replace(",", " ").split()})
    characters = "abcdefghijklmnopqrstuvwxyz0123456789.,;:!?-'"
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -8.0)]
    vocab += [("\u2581" + word, -5.0) for word in words]
    vocab += [(character, -10.0) for character in characters]
    return vocab
