"""MusicGen's static-cache sampling loop (the "graphs" method): the same beds as transformers'
`generate`, several beds in one loop each the bed it would be alone, and the pieces that make it so.

The CUDA graph capture itself needs a GPU (the `gpu` test at the end); everything else is the very
code the graph records, run eagerly on the CPU with tiny random-weight models.
"""

from __future__ import annotations

import logging
import os

import numpy as np
import pytest
from conftest import needs_extra

from zray.engines.base import EngineError
from zray.engines.musicgen import MusicGenEngine, MusicGenSettings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch = needs_extra("models", "torch")
needs_extra("models", "transformers")

from tiny_musicgen import build_tiny_musicgen_components  # noqa: E402

from zray.engines.musicgen_static import (  # noqa: E402
    Sampling,
    StaticDecoder,
    UnsupportedSampling,
    generate_window,
    round_up,
    sample,
)

PROMPT = "calm piano music with soft strings"
PROMPTS = [
    PROMPT,
    "epic orchestral soundtrack for a nature documentary, slow strings and distant drums rising",
    "lofi",
]
WINDOW = 1.0
SECONDS = 2.5  # three windows of 1 s: the first, then two continuations on the previous tail


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def engine(method: str, *, stereo: bool = False, text_width: int = 16, **changes) -> MusicGenEngine:
    model, processor = build_tiny_musicgen_components(stereo=stereo, text_width=text_width)
    settings = MusicGenSettings(
        **{"model": "tiny-musicgen", "window": WINDOW, "device": "cpu", "method": method, **changes}
    )
    return MusicGenEngine(settings, model=model, processor=processor)


@pytest.mark.parametrize(
    "variant",
    [
        {},
        {"stereo": True},
        {"text_width": 24},  # a projection from the text encoder to the decoder, as the real models have
        {"dtype": "bfloat16"},
    ],
    ids=["mono", "stereo", "projected-text", "bfloat16"],
)
def test_graphs_method_makes_generates_bed_bit_for_bit(variant) -> None:
    old = engine("generate", **variant)
    new = engine("graphs", **variant)
    bed = new.generate(PROMPT, seconds=SECONDS)
    assert new.method == "graphs" and old.method is None  # the graphs engine did not fall back
    np.testing.assert_array_equal(bed, old.generate(PROMPT, seconds=SECONDS))
    assert old.method == "generate"


def test_the_loop_draws_generates_tokens_for_the_same_seed() -> None:
    """Below the engine: one window's codes from the static loop against the codes `generate` decodes."""
    model, processor = build_tiny_musicgen_components(text_width=24)
    captured = {}
    decode = model.audio_encoder.decode

    def recording(codes, *args, **kwargs):
        captured["codes"] = codes.clone()
        return decode(codes, *args, **kwargs)

    model.audio_encoder.decode = recording
    inputs = processor(text=[PROMPT], padding=True, return_tensors="pt")
    with torch.random.fork_rng(devices=[]), torch.inference_mode():
        torch.manual_seed(7)
        model.generate(**inputs, do_sample=True, guidance_scale=3.0, top_k=250, max_new_tokens=40)
    sampling = Sampling.for_model(model, guidance_scale=3.0, top_k=250)
    with torch.inference_mode():
        hidden = model.text_encoder(**inputs).last_hidden_state
        decoder = StaticDecoder(model, beds=1, length=64, text=32, guided=True, capture=True)
        codes = generate_window(
            model,
            decoder,
            texts=[(hidden[0], inputs["attention_mask"][0])],
            prompt_codes=None,
            new_tokens=40,
            sampling=sampling,
            generators=[torch.Generator().manual_seed(7)],
        )
    assert decoder.graph is None  # no CUDA: the very step a graph would record, run eagerly
    assert codes.shape == captured["codes"][0].shape == (1, 4, 37)  # 40 steps less the delay pattern
    torch.testing.assert_close(codes, captured["codes"][0], rtol=0, atol=0)


def test_each_bed_of_a_batch_is_the_bed_it_would_be_alone() -> None:
    """Prompts of different lengths share one loop; each bed draws from its own seeded generator."""
    batched = engine("graphs", text_width=24)
    many = batched.generate_many(PROMPTS, seconds=SECONDS)
    reordered = batched.generate_many(list(reversed(PROMPTS)), seconds=SECONDS)
    alone = [engine("generate", text_width=24).generate(prompt, seconds=SECONDS) for prompt in PROMPTS]
    for bed, other, solo in zip(many, reversed(reordered), alone, strict=True):
        np.testing.assert_array_equal(bed, solo)
        np.testing.assert_array_equal(other, solo)
    assert not np.array_equal(many[0], many[1])  # different prompts, different beds
    # The generate method makes the same beds, one after another.
    sequential = engine("generate", text_width=24).generate_many(PROMPTS[:2], seconds=SECONDS)
    for bed, solo in zip(sequential, alone[:2], strict=True):
        np.testing.assert_array_equal(bed, solo)
    assert batched.generate_many([], seconds=SECONDS) == []


def test_one_static_decoder_serves_every_window_of_a_batch() -> None:
    """The cache is sized for a whole window, so all windows (and later beds) reuse one decoder
    (one CUDA graph on a GPU); a batch of another size replaces it rather than piling up."""
    batched = engine("graphs")
    batched.generate_many(PROMPTS[:2], seconds=SECONDS)
    decoders = list(batched._decoders.values())
    assert len(decoders) == 1 and decoders[0].beds == 2
    assert decoders[0].length == round_up(1 + round(WINDOW * 50), 16)
    batched.generate_many(PROMPTS[:2], seconds=SECONDS)
    assert list(batched._decoders.values()) == decoders
    batched.generate(PROMPT, seconds=SECONDS)
    assert [d.beds for d in batched._decoders.values()] == [1]


def test_decoder_logits_match_the_models_own_forward() -> None:
    """Prefill and single steps over the static cache against MusicGen's decoder on the whole
    sequence at once (the arithmetic `generate` builds on)."""
    model, _ = build_tiny_musicgen_components(text_width=24)
    rows, text, steps = 2, 5, 6
    generator = torch.Generator().manual_seed(3)
    ids = torch.randint(0, 2048, (rows, 4, 3 + steps), generator=generator)
    hidden = torch.randn((rows, text, 16), generator=generator)
    mask = torch.ones((rows, text), dtype=torch.long)
    mask[1, 3:] = 0
    with torch.inference_mode():
        reference = model.decoder(
            input_ids=ids.reshape(rows * 4, -1),
            encoder_hidden_states=hidden * mask[..., None],
            encoder_attention_mask=mask,
            use_cache=False,
        ).logits.reshape(rows, 4, ids.shape[-1], -1)
        decoder = StaticDecoder(model, beds=rows, length=32, text=8, guided=False, capture=False)
        for bed in range(rows):
            decoder.set_text(bed, (hidden * mask[..., None])[bed : bed + 1], mask[bed : bed + 1])
        got = [decoder.prefill(ids[..., :3])]
        got += [decoder.step(ids[..., t]).clone() for t in range(3, 3 + steps - 1)]
    for offset, logits in enumerate(got):
        expected = reference[:, :, 2 + offset].reshape(rows * 4, -1)
        torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-5)


def test_sampling_is_generates_processors_and_multinomial() -> None:
    from transformers import LogitsProcessorList, TemperatureLogitsWarper, TopKLogitsWarper
    from transformers.generation.logits_process import ClassifierFreeGuidanceLogitsProcessor

    logits = torch.randn((2 * 2 * 4, 50), generator=torch.Generator().manual_seed(5))  # 2 beds, guided
    processors = LogitsProcessorList(
        [ClassifierFreeGuidanceLogitsProcessor(3.0), TemperatureLogitsWarper(0.7), TopKLogitsWarper(10)]
    )
    scores = processors(torch.zeros((8, 1), dtype=torch.long), logits.clone())
    expected = torch.cat(
        [
            torch.multinomial(torch.softmax(scores[b * 4 : (b + 1) * 4], -1), 1, generator=g)
            for b, g in enumerate([torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)])
        ]
    ).squeeze(1)
    got = sample(
        logits,
        Sampling(guidance_scale=3.0, top_k=10, temperature=0.7),
        [torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)],
        codebooks=4,
    )
    torch.testing.assert_close(got, expected, rtol=0, atol=0)


def test_a_generation_config_the_loop_does_not_mirror_falls_back_to_generate(caplog) -> None:
    graphs = engine("graphs")
    graphs.load()
    graphs._model.generation_config.top_p = 0.9
    with pytest.raises(UnsupportedSampling, match=r"top_p=0\.9"):
        Sampling.for_model(graphs._model, guidance_scale=3.0, top_k=250)
    reference = engine("generate")
    reference.load()
    reference._model.generation_config.top_p = 0.9
    with caplog.at_level(logging.WARNING, logger="zray.engines.musicgen"):
        bed = graphs.generate(PROMPT, seconds=1.0)
    assert graphs.method == "generate" and "top_p" in caplog.text
    np.testing.assert_array_equal(bed, reference.generate(PROMPT, seconds=1.0))


def test_method_resolves_on_the_worker_and_stays_out_of_the_identity() -> None:
    auto = engine("auto")
    auto.load()
    assert auto.method == "generate"  # on a CPU: transformers' own loop
    identities = {
        m: MusicGenEngine(MusicGenSettings(method=m)).identity() for m in ("auto", "generate", "graphs")
    }
    assert identities["auto"] == identities["generate"] == identities["graphs"]
    assert "method" not in identities["auto"]
    with pytest.raises(
        EngineError, match="musicgen method must be one of auto, generate, graphs, not 'fast'"
    ):
        MusicGenSettings(method="fast")
    with pytest.raises(EngineError, match="list of prompts"):
        engine("graphs").generate_many("one prompt", seconds=1.0)  # type: ignore[arg-type]


@pytest.mark.gpu
def test_graphs_on_cuda_capture_one_graph_and_make_a_finite_bed() -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    new = engine("auto", device="cuda")
    bed = new.generate(PROMPT, seconds=SECONDS)
    assert new.method == "graphs"
    assert [d.graph is not None for d in new._decoders.values()] == [True]
    assert np.isfinite(bed).all() and bed.shape == (1, round(SECONDS * 48_000))
    many = new.generate_many(PROMPTS, seconds=SECONDS)
    assert all(np.isfinite(b).all() for b in many)
