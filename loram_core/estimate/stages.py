"""Each stage's memory by a first-order model, from the config and the checkpoint's file sizes alone: the figure
the run records next to the stage's measured peak (docs/scaling.md, "Larger than memory").

What each stage holds at its peak, above the resident set it started with:
- prune (a streaming pruner): the larger of one MLP group in fp32 (what an importance pass reads at once)
  and the largest tensor twice (its mapped file pages and the copy written) beside the shard being
  filled; an in-memory pruner: the original in fp32;
- train: ``estimate.memory`` (weights as trained, adapter state, activations, logits) plus the libraries the
  stage imports (accelerate, PEFT; measured ~150 MiB);
- recover: the recovered adapter, fp32 (the pruned one is smaller and freed factor by factor);
- merge: the recovered adapter and the larger of the largest adapted tensor four times (its mapped pages, fp32
  copy, delta, sum) and the largest tensor copied as it is (an embedding: Gemma 3's 262,144 x 640 is 10x
  any adapted one), written where it goes in its shard;
- eval: the larger of the pruned model as trained and the original (streamed: embedding, head and one
  decoder layer in fp32, the hidden states of every window; loaded: the original in fp32), plus one batch
  of logits three times (the logits, the shifted copy the loss reads, its log-softmax).
"""

from __future__ import annotations

from loram_core.estimate.memory import RUNTIME_OVERHEAD as RUNTIME  # kernels loaded on first use, allocator slack
from loram_core.train.targets import target_leaves

IMPORTS = 150 * 2**20
SHARD = 64 * 2**20  # ShardWriter's default shard (the prune stage's)
FP32 = 4


def _dims(config) -> dict[str, int]:
    from loram_core.estimate.memory import attention_dims

    heads, kv, head_dim, inter = attention_dims(config)
    return {"d": config.hidden_size, "q": heads * head_dim, "kv": kv * head_dim, "i": inter, "v": config.vocab_size}


def _layer_params(config) -> int:  # one decoder layer's parameters
    n = _dims(config)
    return 2 * n["d"] * n["q"] + 2 * n["d"] * n["kv"] + 3 * n["d"] * n["i"] + 2 * n["d"]


def _stored_bytes_per_param(params: int, model_path: str) -> float:
    from loram_core.estimate.preflight import checkpoint_bytes

    stored = checkpoint_bytes(model_path)
    return stored / params if stored else FP32


def _largest_tensor(config) -> int:
    n = _dims(config)
    return max(n["v"] * n["d"], n["i"] * n["d"], n["q"] * n["d"])


def _adapter_bytes(config, rank: int, targets) -> int:
    """The LoRA factors on the original's shapes, fp32 (an upper bound for the pruned adapter too)."""
    from loram_core.estimate.memory import _shapes

    n = _dims(config)
    per_layer = sum(rank * (o + i) for name, (o, i) in _shapes(n).items() if name in targets)
    return per_layer * config.num_hidden_layers * FP32


def stage_estimates(settings, config, model_path: str) -> dict[str, int]:
    """Bytes above the stage's starting resident set, for each stage the lifecycle runs."""
    from loram_core import registry
    from loram_core.estimate.preflight import train_estimate
    from loram_core.plan.fingerprint import count_parameters, meta_model
    from loram_core.protocols import Pruner, optional_member

    n = _dims(config)
    params = count_parameters(meta_model(config))
    original_fp32 = params * FP32
    stored = _stored_bytes_per_param(params, model_path)
    adapter = _adapter_bytes(config, settings.rank, target_leaves(config, settings.target_modules))
    out: dict[str, int] = {}
    if optional_member(registry.get("pruner", settings.pruner), Pruner, "streaming"):
        group = 4 * n["i"] * n["d"] * FP32  # gate, up, down and down's transposed copy, for importance
        out["prune"] = int(max(group, 2 * _largest_tensor(config) * stored + SHARD)) + RUNTIME
    else:
        out["prune"] = original_fp32 + RUNTIME
    train = train_estimate(settings, config)
    out["train"] = train.total + IMPORTS
    out["recover"] = adapter  # no kernels, no autograd: the measured overhead is a few MiB
    adapted = max(n["i"] * n["d"], n["q"] * n["d"])
    out["merge"] = adapter + int(max(adapted * (stored + 3 * FP32), _largest_tensor(config) * stored)) + RUNTIME
    windows = max(1, settings.eval_tokens // settings.eval_seq_len)
    # the logits, their shifted copy (reshaping a slice copies it) and the log-softmax (evaluate.perplexity)
    batch_logits = min(windows, 4) * settings.eval_seq_len * n["v"] * FP32 * 3
    streamed = (2 * n["v"] * n["d"] + _layer_params(config)) * FP32 + 2 * windows * settings.eval_seq_len * n["d"] * FP32
    from loram_core.lifecycle.evaluate import streams_text_eval

    stream = streams_text_eval(settings, config)
    out["eval"] = max(streamed if stream else original_fp32 + adapter, train.weights) + batch_logits + RUNTIME
    return out
