"""MusicGen's sampling loop on a static KV cache, so that each decoder step can be one CUDA graph.

Why not transformers' `generate`: measured on an H200 (torch 2.11, cuDNN >= 9.15), a 60 s bed took
97 s, its first window at 51 ms per step and the later ones at 14 ms, while the small decoder's
weights take about 0.2 ms to read. Both costs come from shapes and launches, not arithmetic:

- `generate` grows its cache by one position per step (transformers' `EncoderDecoderCache` of
  `DynamicCache`s, which a static cache cannot replace there), so every step's self-attention has a
  key length never seen before. On Hopper torch >= 2.10 prefers cuDNN's attention when the bundled
  cuDNN is new enough (2.11's is), and cuDNN builds and caches an execution plan per shape: the first
  window pays a plan for each of its 1,500 lengths, the later windows (500 to 1,500 keys) find them
  cached. The extra cost per step was the same for the small and the medium model (37 and 36 ms), as
  a per-shape cost that does not depend on the model's size would be.
- what is left (14 ms for about 400 small kernels) is launch overhead: Python, the cache's
  concatenations, the delay-pattern mask re-applied to the whole sequence, a host sync per step.

Here the cache has one fixed size for the whole bed, positions are device tensors, and a step is a
fixed sequence of kernels, so on CUDA it is captured once as a graph and replayed (one launch per
step); sampling stays outside the graph, as plain torch ops seeded like `generate`'s.

The loop mirrors `MusicgenForConditionalGeneration.generate` (transformers 5.x) step for step:
classifier-free guidance on a doubled batch (conditional rows first), the delay pattern built and
applied by the model's own methods, the processors `generate` builds for MusicGen's settings (guidance,
then temperature, then top-k), `torch.multinomial` on the softmax. Without graph capture (on the CPU)
it gives `generate`'s tokens for the same seed; tests check it. Several beds can share one loop, each
sampled from its own generator, so a bed's tokens do not depend on its batch mates (up to the
rounding of batched matrix products on a GPU).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from zray.errors import ZrayError

log = logging.getLogger(__name__)

# Cache lengths and text lengths are rounded up to these, so one captured graph serves every window
# of a bed and prompts of similar length, and attention kernels see aligned masks.
LENGTH_MULTIPLE = 16
TEXT_MULTIPLE = 32


class UnsupportedSampling(ZrayError, ValueError):
    """The model's generation config asks for a processor this loop does not implement."""


@dataclass(frozen=True)
class Sampling:
    """What `generate` is asked for (plus the model's generation config's temperature)."""

    guidance_scale: float
    top_k: int
    temperature: float = 1.0

    @classmethod
    def for_model(cls, model: Any, *, guidance_scale: float, top_k: int) -> Sampling:
        """The sampling `generate(do_sample=True, guidance_scale=..., top_k=...)` would do with this
        model's generation config; UnsupportedSampling when it would add a processor not mirrored here."""
        config = model.generation_config
        unsupported = {
            "top_p": (getattr(config, "top_p", None), (None, 1.0)),
            "min_p": (getattr(config, "min_p", None), (None,)),
            "typical_p": (getattr(config, "typical_p", None), (None, 1.0)),
            "epsilon_cutoff": (getattr(config, "epsilon_cutoff", None), (None, 0.0)),
            "eta_cutoff": (getattr(config, "eta_cutoff", None), (None, 0.0)),
            "repetition_penalty": (getattr(config, "repetition_penalty", None), (None, 1.0)),
            "no_repeat_ngram_size": (getattr(config, "no_repeat_ngram_size", None), (None, 0)),
            "bad_words_ids": (getattr(config, "bad_words_ids", None), (None,)),
            "suppress_tokens": (getattr(config, "suppress_tokens", None), (None,)),
            "begin_suppress_tokens": (getattr(config, "begin_suppress_tokens", None), (None,)),
            "min_new_tokens": (getattr(config, "min_new_tokens", None), (None, 0)),
            "min_length": (getattr(config, "min_length", None), (None, 0)),
            "renormalize_logits": (getattr(config, "renormalize_logits", None), (None, False)),
            "remove_invalid_values": (getattr(config, "remove_invalid_values", None), (None, False)),
            "eos_token_id": (getattr(config, "eos_token_id", None), (None,)),
            "forced_bos_token_id": (getattr(config, "forced_bos_token_id", None), (None,)),
            "forced_eos_token_id": (getattr(config, "forced_eos_token_id", None), (None,)),
            "encoder_repetition_penalty": (getattr(config, "encoder_repetition_penalty", None), (None, 1.0)),
            "encoder_no_repeat_ngram_size": (
                getattr(config, "encoder_no_repeat_ngram_size", None),
                (None, 0),
            ),
            "exponential_decay_length_penalty": (
                getattr(config, "exponential_decay_length_penalty", None),
                (None,),
            ),
            "sequence_bias": (getattr(config, "sequence_bias", None), (None,)),
            "top_h": (getattr(config, "top_h", None), (None,)),
        }
        asked = [
            f"{name}={value!r}" for name, (value, neutral) in unsupported.items() if value not in neutral
        ]
        if asked:
            raise UnsupportedSampling(f"generation config sets {', '.join(asked)}")
        temperature = getattr(config, "temperature", None)
        return cls(
            guidance_scale=float(guidance_scale),
            top_k=int(top_k),
            temperature=1.0 if temperature is None else float(temperature),
        )

    @property
    def guided(self) -> bool:
        return self.guidance_scale > 1


def sample(logits: Any, sampling: Sampling, generators: Sequence[Any], codebooks: int) -> Any:
    """Next tokens (beds * codebooks,) from float32 logits (rows * codebooks, vocab), as `generate`'s
    processors and `torch.multinomial` would draw them; bed b draws from generators[b] only."""
    import torch

    scores = logits
    if sampling.guided:
        cond, uncond = scores.split(scores.shape[0] // 2, dim=0)
        scores = uncond + (cond - uncond) * sampling.guidance_scale
    if sampling.temperature != 1.0:
        scores = scores / sampling.temperature
    top_k = min(sampling.top_k, scores.size(-1))
    scores = scores.masked_fill(scores < torch.topk(scores, top_k)[0][..., -1, None], -float("inf"))
    probs = torch.nn.functional.softmax(scores, dim=-1)
    draws = [
        torch.multinomial(probs[b * codebooks : (b + 1) * codebooks], num_samples=1, generator=generator)
        for b, generator in enumerate(generators)
    ]
    return torch.cat(draws).squeeze(1)


def round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


class StaticDecoder:
    """MusicGen's decoder over a fixed-size cache, for `beds` beds (2 rows each when guided).

    `length` cache positions and `text` encoder positions, both fixed: every step runs the same
    kernels on the same buffers, so with `capture` (CUDA only) the step is recorded once as a CUDA
    graph and replayed. The model's own modules do the arithmetic (layer norms, projections, heads);
    only the attention over the static cache is done here.
    """

    def __init__(self, model: Any, *, beds: int, length: int, text: int, guided: bool, capture: bool):
        import torch

        decoder = model.decoder.model.decoder
        config = model.decoder.config
        self.model = model
        self.decoder = decoder
        self.heads_out = model.decoder.lm_heads
        self.beds, self.length, self.text = beds, length, text
        self.rows = beds * (2 if guided else 1)
        self.codebooks = int(config.num_codebooks)
        self.heads = int(config.num_attention_heads)
        self.hidden = int(config.hidden_size)
        self.head_dim = self.hidden // self.heads
        parameter = next(decoder.parameters())
        self.device, self.dtype = parameter.device, parameter.dtype
        shape = (self.rows, self.heads, length, self.head_dim)
        cross = (self.rows, self.heads, text, self.head_dim)
        layers = len(decoder.layers)
        zeros = {"dtype": self.dtype, "device": self.device}
        # Zeros, not empty: masked positions are still multiplied by their (zero) weights.
        self.keys = [torch.zeros(shape, **zeros) for _ in range(layers)]
        self.values = [torch.zeros(shape, **zeros) for _ in range(layers)]
        self.cross_keys = [torch.zeros(cross, **zeros) for _ in range(layers)]
        self.cross_values = [torch.zeros(cross, **zeros) for _ in range(layers)]
        self.cross_mask = torch.ones((self.rows, 1, 1, text), dtype=torch.bool, device=self.device)
        self.ids = torch.full((self.rows, self.codebooks), int(config.pad_token_id), device=self.device)
        self.position = torch.zeros((1,), dtype=torch.long, device=self.device)
        self.slots = torch.arange(length, device=self.device)
        self.capture = capture and self.device.type == "cuda"
        self.graph: Any = None
        self.graph_logits: Any = None
        self.captured = False

    # -- per window ------------------------------------------------------------------------------------

    def set_text(self, bed: int, hidden: Any, mask: Any) -> None:
        """One bed's text as the decoder sees it: `hidden` (1 or 2 rows, s, width), projected and
        masked as `generate` prepares it (the conditional row, then the unconditional one), and its
        mask (rows, s). Each layer's cross-attention keys and values are computed once, from this
        bed's rows alone and at its own length, exactly as for a bed generated by itself; they are
        then padded to the decoder's text length, the padding masked out."""
        import torch

        s = hidden.shape[1]
        if s > self.text:
            raise ValueError(f"{s} text positions do not fit a decoder built for {self.text}")
        rows = [bed, bed + self.beds][: hidden.shape[0]]
        keep = torch.zeros((len(rows), self.text), dtype=torch.bool, device=self.device)
        keep[:, :s] = mask.bool()
        # A row with no text at all (the unconditional one) has all-zero keys and values: attending
        # to them gives exactly the zeros that transformers' fully masked rows give, without relying
        # on how each attention kernel treats a row with nothing to attend to.
        keep[~keep.any(dim=1)] = True
        hidden = hidden.to(self.dtype)
        with torch.inference_mode():
            for r, row in enumerate(rows):
                self.cross_mask[row, 0, 0].copy_(keep[r])
            for i, layer in enumerate(self.decoder.layers):
                attention = layer.encoder_attn
                keys, values = self._split(attention.k_proj(hidden)), self._split(attention.v_proj(hidden))
                for r, row in enumerate(rows):
                    self.cross_keys[i][row].zero_()
                    self.cross_values[i][row].zero_()
                    self.cross_keys[i][row, :, :s] = keys[r]
                    self.cross_values[i][row, :, :s] = values[r]

    def prefill(self, ids: Any) -> Any:
        """Run the prompt (rows, codebooks, n) at positions 0..n-1; the logits of its last position,
        float32 (rows * codebooks, vocab)."""
        import torch

        n = ids.shape[-1]
        if n >= self.length:
            raise ValueError(f"a prompt of {n} tokens leaves no room in a cache of {self.length}")
        with torch.inference_mode(), self._attention_kernels():
            hidden = sum(self.decoder.embed_tokens[k](ids[:, k]) for k in range(self.codebooks))
            positions = self.decoder.embed_positions.weights[:n]
            hidden = hidden + positions.to(hidden.device)
            for i, layer in enumerate(self.decoder.layers):
                residual = hidden
                x = layer.self_attn_layer_norm(hidden)
                attention = layer.self_attn
                q, k, v = (self._split(p(x)) for p in (attention.q_proj, attention.k_proj, attention.v_proj))
                self.keys[i][:, :, :n] = k
                self.values[i][:, :, :n] = v
                # As transformers does for a prompt: causal attention over the prompt alone.
                out = torch.nn.functional.scaled_dot_product_attention(
                    q, k, v, is_causal=n > 1, scale=attention.scaling
                )
                hidden = residual + attention.out_proj(self._merge(out))
                hidden = self._cross_and_feed_forward(i, layer, hidden)
            logits = self._logits(hidden[:, -1:])
        self.position.fill_(n)
        return logits

    def step(self, tokens: Any) -> Any:
        """Feed one token per row and codebook (rows, codebooks) at the current position; the next
        logits, float32 (rows * codebooks, vocab)."""
        import torch

        self.ids.copy_(tokens)
        if self.capture and not self.captured:
            self._capture()
        if self.graph is not None:
            self.graph.replay()
            return self.graph_logits
        with torch.inference_mode():
            return self._step_body()

    # -- the step --------------------------------------------------------------------------------------

    def _step_body(self) -> Any:
        with self._attention_kernels():
            return self._step_kernels()

    def _attention_kernels(self) -> Any:
        """On CUDA, attention without cuDNN's: its per-shape plans are what made `generate`'s first
        window slow, and kernels that need no plan are the ones safest to capture in a graph."""
        if self.device.type != "cuda":
            return contextlib.nullcontext()
        from torch.nn.attention import SDPBackend, sdpa_kernel

        return sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH])

    def _step_kernels(self) -> Any:
        import torch

        ids = self.ids
        hidden = sum(self.decoder.embed_tokens[k](ids[:, k : k + 1]) for k in range(self.codebooks))
        hidden = hidden + self.decoder.embed_positions.weights.index_select(0, self.position)
        visible = (self.slots <= self.position).view(1, 1, 1, self.length)
        for i, layer in enumerate(self.decoder.layers):
            residual = hidden
            x = layer.self_attn_layer_norm(hidden)
            attention = layer.self_attn
            q, k, v = (self._split(p(x)) for p in (attention.q_proj, attention.k_proj, attention.v_proj))
            self.keys[i].index_copy_(2, self.position, k)
            self.values[i].index_copy_(2, self.position, v)
            out = torch.nn.functional.scaled_dot_product_attention(
                q, self.keys[i], self.values[i], attn_mask=visible, scale=attention.scaling
            )
            hidden = residual + attention.out_proj(self._merge(out))
            hidden = self._cross_and_feed_forward(i, layer, hidden)
        logits = self._logits(hidden)
        self.position.add_(1)
        return logits

    def _cross_and_feed_forward(self, i: int, layer: Any, hidden: Any) -> Any:
        import torch

        residual = hidden
        x = layer.encoder_attn_layer_norm(hidden)
        attention = layer.encoder_attn
        out = torch.nn.functional.scaled_dot_product_attention(
            self._split(attention.q_proj(x)),
            self.cross_keys[i],
            self.cross_values[i],
            attn_mask=self.cross_mask,
            scale=attention.scaling,
        )
        hidden = residual + attention.out_proj(self._merge(out))
        residual = hidden
        x = layer.final_layer_norm(hidden)
        return residual + layer.fc2(layer.activation_fn(layer.fc1(x)))

    def _logits(self, hidden: Any) -> Any:
        import torch

        hidden = self.decoder.layer_norm(hidden)
        logits = torch.stack([head(hidden) for head in self.heads_out], dim=1)  # rows, codebooks, 1, vocab
        return logits[:, :, -1].reshape(self.rows * self.codebooks, -1).float()

    def _split(self, x: Any) -> Any:
        return x.view(x.shape[0], x.shape[1], self.heads, self.head_dim).transpose(1, 2)

    def _merge(self, x: Any) -> Any:
        return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], self.hidden)

    def _capture(self) -> None:
        """Record the step as a CUDA graph; on any failure, say why once and stay eager."""
        import torch

        self.captured = True
        saved = self.position.clone()
        try:
            stream = torch.cuda.Stream(device=self.device)
            stream.wait_stream(torch.cuda.current_stream(self.device))
            with torch.inference_mode(), torch.cuda.stream(stream):
                for _ in range(2):  # warm-up outside the graph: allocator pools, kernel selection
                    self.position.copy_(saved)
                    self._step_body()
            torch.cuda.current_stream(self.device).wait_stream(stream)
            self.position.copy_(saved)
            graph = torch.cuda.CUDAGraph()
            with torch.inference_mode(), torch.cuda.graph(graph):
                self.graph_logits = self._step_body()
            self.graph = graph
        except Exception as exc:  # a backend that cannot be captured: eager steps, still static shapes
            log.warning("MusicGen decoder step not captured as a CUDA graph (%s); running it eagerly", exc)
            self.graph = None
        finally:
            # The warm-up steps wrote keys at the saved position, which the real step overwrites.
            self.position.copy_(saved)


def generate_window(
    model: Any,
    decoder: StaticDecoder,
    *,
    texts: Sequence[tuple[Any, Any]],
    prompt_codes: Any | None,
    new_tokens: int,
    sampling: Sampling,
    generators: Sequence[Any],
) -> Any:
    """Codes (beds, codebooks, frames) for one window, as `generate` would sample them.

    `texts` holds each bed's text encoder output (s, width) and mask (s,), at the bed's own length;
    `prompt_codes` (beds, codebooks, n) the codec's codes of the audio prompt, or None. The result
    holds the prompt's codes followed by the new ones, as `generate` returns them.
    """
    import torch

    beds, codebooks = decoder.beds, decoder.codebooks
    start = int(model.generation_config.decoder_start_token_id)
    pad = int(
        model.generation_config.pad_token_id if model.generation_config.pad_token_id is not None else start
    )

    for bed, (text_hidden, text_mask) in enumerate(texts):
        hidden, mask = _decoder_text(model, text_hidden[None], text_mask[None], guided=sampling.guided)
        decoder.set_text(bed, hidden, mask)

    first = torch.full((beds * codebooks, 1), start, dtype=torch.long, device=decoder.device)
    if prompt_codes is None:
        input_ids = first
    else:
        input_ids = torch.cat([first, prompt_codes.reshape(beds * codebooks, -1).to(decoder.device)], dim=-1)
    max_length = input_ids.shape[-1] + new_tokens
    if max_length > decoder.length:
        raise ValueError(f"a window of {max_length} positions does not fit a cache of {decoder.length}")
    input_ids, pattern = model.decoder.build_delay_pattern_mask(
        input_ids, pad_token_id=start, max_length=max_length
    )
    sequence = torch.full((beds * codebooks, max_length), pad, dtype=torch.long, device=decoder.device)
    prompt = input_ids.shape[-1]
    sequence[:, :prompt] = input_ids
    rows = model.decoder.apply_delay_pattern_mask(input_ids, pattern).reshape(beds, codebooks, prompt)
    if sampling.guided:
        rows = rows.repeat(2, 1, 1)
    logits = decoder.prefill(rows)
    fill = pattern != -1
    for t in range(prompt, max_length):
        tokens = sample(logits, sampling, generators, codebooks)
        tokens = torch.where(fill[:, t], pattern[:, t], tokens)
        sequence[:, t] = tokens
        if t + 1 == max_length:
            break
        step_ids = tokens.reshape(beds, codebooks)
        logits = decoder.step(step_ids.repeat(2, 1) if sampling.guided else step_ids)
    out = model.decoder.apply_delay_pattern_mask(sequence, pattern)
    return out[out != pad].reshape(beds, codebooks, -1)


def _decoder_text(model: Any, text_hidden: Any, text_mask: Any, *, guided: bool) -> tuple[Any, Any]:
    """What the decoder's cross-attention sees, as `generate` prepares it: the unconditional half (zeros,
    fully masked) after the conditional one, projected when the text encoder's width differs, masked."""
    import torch

    hidden, mask = text_hidden, text_mask
    if guided:
        hidden = torch.cat([hidden, torch.zeros_like(hidden)], dim=0)
        mask = torch.cat([mask, torch.zeros_like(mask)], dim=0)
    text_width = model.text_encoder.config.hidden_size
    decoder_config = model.decoder.config
    if text_width != decoder_config.hidden_size and decoder_config.cross_attention_hidden_size is None:
        hidden = model.enc_to_dec_proj(hidden)
    hidden = hidden * mask[..., None]
    return hidden, mask
