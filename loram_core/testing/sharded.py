"""A random Llama written straight into small safetensors shards, tensor by tensor.

Tests of pruning beyond memory need a model whose full size exceeds a memory limit; building it with
``from_config(...).save_pretrained`` would itself need the whole model in memory, so the weights are drawn
one tensor at a time from the meta skeleton's shapes and streamed into shards (``ShardWriter``).
"""

from __future__ import annotations

from pathlib import Path

import torch

from loram_core.checkpoint import ShardWriter


def sharded_llama_config(*, layers: int, hidden: int, intermediate: int, heads: int, kv_heads: int, vocab: int = 128):
    from loram_core.testing.tiny import tiny_llama_config

    return tiny_llama_config(layers=layers, hidden_size=hidden, intermediate_size=intermediate, num_attention_heads=heads,
                             num_key_value_heads=kv_heads, head_dim=hidden // heads, vocab_size=vocab)


def write_sharded_llama(path: str | Path, config, *, shard_bytes: int = 50 * 2**20, seed: int = 0) -> Path:
    """Write a random fp32 model for ``config`` (weights ~N(0, 0.02), norms 1) and the tiny tokenizer to ``path``.

    At most one shard plus one tensor is in memory at any time. Returns ``path``.
    """
    from loram_core.plan.fingerprint import meta_model
    from loram_core.testing.tiny import tiny_tokenizer

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    skeleton = meta_model(config)
    gen = torch.Generator().manual_seed(seed)
    writer = ShardWriter(path, shard_bytes=shard_bytes)
    for name, param in skeleton.named_parameters():  # tied lm_head shares the embedding: listed once
        if name.endswith("norm.weight"):
            tensor = torch.ones(param.shape)
        else:
            tensor = torch.randn(param.shape, generator=gen).mul_(0.02)
        writer.add(name, tensor)
        del tensor
    writer.close()
    config.save_pretrained(path)
    tiny_tokenizer().save_pretrained(path)
    return path
