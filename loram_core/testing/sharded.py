"""Random Llama-family checkpoints written straight into safetensors shards, tensor by tensor.

Tests and benchmarks of models larger than memory need a checkpoint bigger than the memory limit; building it
with ``from_config(...).save_pretrained`` would itself need the whole model in memory, so the weights are drawn
one tensor (and, for large ones, one block of rows) at a time from the meta skeleton's shapes and streamed into
shards (``ShardWriter``). ``scaled=True`` draws each weight with a standard deviation of 1/sqrt(fan-in) and the
two residual outputs (``o_proj``, ``down_proj``) with 1/sqrt(2 x layers) more, as GPT-2 initialises them, so
activations stay of order one through any number of layers, in bf16 too (docs/scaling.md, "Larger than memory").
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from loram_core.checkpoint import ShardWriter

ROWS_AT_ONCE = 1 << 24  # elements drawn per block: a 250M-element embedding never exists in fp32 whole


def sharded_llama_config(*, layers: int, hidden: int, intermediate: int, heads: int, kv_heads: int, vocab: int = 128,
                         **overrides):
    from loram_core.testing.tiny import tiny_llama_config

    return tiny_llama_config(layers=layers, hidden_size=hidden, intermediate_size=intermediate, num_attention_heads=heads,
                             num_key_value_heads=kv_heads, head_dim=hidden // heads, vocab_size=vocab, **overrides)


def llama2_13b_shape(vocab: int = 49152):
    """LLaMA-2-13B's shape (hidden 5120, intermediate 13,824, 40 layers of 40 heads, no GQA) with SmolLM2's
    vocabulary size, so its tokenizer drives it: 13.19B parameters, 26.4 GB in bf16."""
    return sharded_llama_config(layers=40, hidden=5120, intermediate=13824, heads=40, kv_heads=40, vocab=vocab,
                                max_position_embeddings=4096, tie_word_embeddings=False, rms_norm_eps=1e-5)


def _std(name: str, shape: tuple[int, ...], layers: int, scaled: bool) -> float:
    if not scaled:
        return 0.02
    if name.endswith("embed_tokens.weight"):
        return 1.0 / math.sqrt(shape[-1])  # also the output head when tied: logits of order one
    std = 1.0 / math.sqrt(shape[-1])
    if name.endswith(("o_proj.weight", "down_proj.weight")):
        std /= math.sqrt(2 * layers)
    return std


def _draw(shape: tuple[int, ...], std: float, dtype: torch.dtype, gen: torch.Generator) -> torch.Tensor:
    out = torch.empty(shape, dtype=dtype)
    flat = out.view(-1)
    for start in range(0, flat.numel(), ROWS_AT_ONCE):
        block = torch.randn(min(ROWS_AT_ONCE, flat.numel() - start), generator=gen)
        flat[start:start + block.numel()] = block.mul_(std)
    return out


def write_sharded_llama(path: str | Path, config, *, shard_bytes: int = 50 * 2**20, seed: int = 0,
                        dtype: torch.dtype = torch.float32, scaled: bool = False, tokenizer=None) -> Path:
    """Write a random model for ``config`` (weights ~N(0, 0.02), or ``scaled``; norms 1; biases 0) in ``dtype``,
    and ``tokenizer`` (default: the tiny character tokenizer) to ``path``.

    At most one shard plus one tensor is in memory at any time. Returns ``path``.
    """
    from loram_core.plan.fingerprint import meta_model
    from loram_core.testing.tiny import tiny_tokenizer

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    skeleton = meta_model(config)
    gen = torch.Generator().manual_seed(seed)
    writer = ShardWriter(path, shard_bytes=shard_bytes)
    layers = config.num_hidden_layers
    for name, param in skeleton.named_parameters():  # tied lm_head shares the embedding: listed once
        shape = tuple(param.shape)
        if name.endswith("norm.weight"):
            tensor = torch.ones(shape, dtype=dtype)
        elif name.endswith(".bias"):
            tensor = torch.zeros(shape, dtype=dtype)
        else:
            tensor = _draw(shape, _std(name, shape, layers, scaled), dtype, gen)
        writer.add(name, tensor)
        del tensor
    writer.close()
    config.dtype = dtype  # what the weights are (config.json "dtype")
    config.save_pretrained(path)
    (tokenizer if tokenizer is not None else tiny_tokenizer()).save_pretrained(path)
    return path


def main(argv: list[str] | None = None) -> int:
    """``python -m loram_core.testing.sharded OUT [--layers N] ...``: the benchmark's checkpoint generator."""
    import argparse

    p = argparse.ArgumentParser(description="write a random, scaled Llama-family checkpoint shard by shard")
    p.add_argument("out")
    p.add_argument("--shape", choices=("llama2-13b",), default="llama2-13b")
    p.add_argument("--layers", type=int, help="fewer decoder layers than the shape's (a smaller model of its width)")
    p.add_argument("--tokenizer", help="a folder whose tokenizer to copy (default: SmolLM2's, converted once)")
    p.add_argument("--dtype", choices=("bf16", "fp32"), default="bf16")
    p.add_argument("--shard-gb", type=float, default=2.0)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    from transformers import AutoTokenizer

    from loram_core.models.smollm2 import ensure_smollm2

    config = llama2_13b_shape()
    if args.layers:
        config.num_hidden_layers = args.layers
    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer or ensure_smollm2())
    write_sharded_llama(args.out, config, shard_bytes=int(args.shard_gb * 2**30), seed=args.seed, scaled=True,
                        dtype=torch.bfloat16 if args.dtype == "bf16" else torch.float32, tokenizer=tokenizer)
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
