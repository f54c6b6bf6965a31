"""An estimate of LoRA training memory from a config: weights + adapter state + activations.

A first-order model, calibrated against measured peaks (tests/plan/test_estimate.py checks it within 25 % on a
small model; the measured numbers stay the truth, this only answers "will it fit?" before loading
anything). Counted:
- frozen weights at the training dtype, or packed at ``bits`` per quantized decoder weight plus one fp32
  absmax per block; mask plans hold their zeros, so their weights are not smaller;
- LoRA factors on the target modules with their pruned shapes: parameter, gradient and two AdamW states, fp32;
- activations kept for backward, per token and decoder layer, with LoRA (dropout) on all seven projections:
  ~10.25 d + 6.25 q + 3 kv + 5.25 I + 7 r floats (norm inputs/outputs, dropout outputs and masks, q/k/v
  after RoPE, repeated KV heads, the attention output, the four MLP intermediates), attention through SDPA
  (no s x s matrix kept);
- the logits: fp32 logits, log-probabilities and their gradient, 3 V floats per token;
- with ``gradient_checkpointing`` (the run flag of the same name) only each decoder layer's input is kept,
  d floats per token and layer, plus one layer's activations while it is recomputed in backward; with
  ``loss_chunk = N`` the logits exist for N positions at a time (checked against measured peaks too);
- a fixed runtime overhead (kernels loaded on first use, autograd and optimizer bookkeeping): ~30 MiB on
  CPU, fitted on small models where the terms above explain the growth with batch x length to ~5 %.
"""

from __future__ import annotations

import attrs

from loram_core.estimate.params import ParamEstimate

RUNTIME_OVERHEAD = 30 * 2**20
DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@attrs.frozen
class MemoryEstimate:
    weights: int
    adapter_state: int
    activations: int
    logits: int
    overhead: int = RUNTIME_OVERHEAD

    @property
    def total(self) -> int:
        return self.weights + self.adapter_state + self.activations + self.logits + self.overhead

    def to_dict(self) -> dict:
        return {"weights": self.weights, "adapter_state": self.adapter_state, "activations": self.activations,
                "logits": self.logits, "overhead": self.overhead, "total": self.total}


def attention_dims(config) -> tuple[int, int, int, int]:
    """(query heads, KV heads, head_dim, MLP width) under any family's config names (GPT-2: multi-head
    attention, ``n_inner`` or 4 x hidden)."""
    heads = config.num_attention_heads
    kv = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    inter = getattr(config, "intermediate_size", None) or getattr(config, "n_inner", None) or 4 * config.hidden_size
    return heads, kv, head_dim, inter


def _layer_dims(config, arch, params: ParamEstimate, ratio: float | None, layer: int, align_to: int = 1) -> dict[str, int]:
    heads, kv, head_dim, inter = attention_dims(config)
    kept_kv = kv
    if params.pattern == "structured" and ratio and params.layers[0] <= layer < params.layers[1]:
        for group in arch.groups(config, layer):
            kept = group.units - group.removed(ratio, align_to)
            if group.kind == "attention":
                kept_kv = kept
            elif group.kind == "mlp":
                inter = kept
    return {"d": config.hidden_size, "q": kept_kv * (heads // kv) * head_dim, "kv": kept_kv * head_dim, "i": inter}


def _shapes(dims: dict[str, int]) -> dict[str, tuple[int, int]]:
    d, q, kv, i = dims["d"], dims["q"], dims["kv"], dims["i"]
    return {"q_proj": (q, d), "k_proj": (kv, d), "v_proj": (kv, d), "o_proj": (d, q),
            "gate_proj": (i, d), "up_proj": (i, d), "down_proj": (d, i)}


def estimate_train_memory(config, arch, params: ParamEstimate, *, ratio: float | None, batch_size: int,
                          seq_len: int, rank: int = 8, dtype_bytes: int = 4, blocksize: int = 64,
                          targets: tuple[str, ...] = DEFAULT_TARGETS, gradient_checkpointing: bool = False,
                          loss_chunk: int = 0, align_to: int = 1) -> MemoryEstimate:
    tokens = batch_size * seq_len
    n_layers = arch.num_layers(config)
    linear_weights = adapter = 0
    layer_floats = []
    for layer in range(n_layers):
        dims = _layer_dims(config, arch, params, ratio, layer, align_to)
        shapes = _shapes(dims)
        linear_weights += sum(o * i for o, i in shapes.values())
        adapter += sum(rank * (o + i) for name, (o, i) in shapes.items() if name in targets)
        layer_floats.append(10.25 * dims["d"] + 6.25 * dims["q"] + 3 * dims["kv"] + 5.25 * dims["i"]
                            + len(targets) * rank)
    if gradient_checkpointing:
        act_floats = n_layers * config.hidden_size + max(layer_floats)
    else:
        act_floats = sum(layer_floats)
    held = params.pruned if params.pattern == "structured" else params.original  # masks keep their zeros
    if params.bits:
        other = held - linear_weights
        weights = int(linear_weights * params.bits / 8 + linear_weights / blocksize * 4 + other * dtype_bytes)
    else:
        weights = held * dtype_bytes
    logits = 3 * config.vocab_size * (min(loss_chunk, tokens) if loss_chunk else tokens) * 4
    activations = int((act_floats + 3 * config.hidden_size) * tokens * dtype_bytes)  # kept at the training dtype
    return MemoryEstimate(weights=weights, adapter_state=adapter * 4 * 4, activations=activations, logits=logits)
