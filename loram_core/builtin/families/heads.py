"""Head bookkeeping shared by the families: the shape of a config's attention and the heads a plan keeps."""

from __future__ import annotations

import attrs

from loram_core.plan.entries import SliceEntry


@attrs.frozen
class Heads:
    query: int  # query heads
    kv: int  # key/value heads
    dim: int  # channels per head

    @classmethod
    def of(cls, config) -> Heads:
        query = config.num_attention_heads
        kv = getattr(config, "num_key_value_heads", None) or query
        return cls(query, kv, getattr(config, "head_dim", None) or config.hidden_size // query)

    @property
    def per_kv(self) -> int:
        """Query heads per KV head, in HF repeat_kv order: query head j uses KV head j // per_kv."""
        return self.query // self.kv


def kept_rows(plan, module: str, start: int, end: int) -> int:
    """How many of rows ``[start, end)`` of ``module``'s weight ``plan`` keeps."""
    entry = plan.entries.get(module)
    if not isinstance(entry, SliceEntry) or entry.keep_out is None:
        return end - start
    return int(((entry.keep_out >= start) & (entry.keep_out < end)).sum())


def query_head_group(layer: int, attn: str, q_module: str, o_module: str, heads: Heads):
    """Single query heads (q rows at the start of ``q_module``, o columns), the same number removed inside
    every KV group; k and v are not members, so they stay whole."""
    from loram_core.arch import CouplingGroup, GroupMember

    return CouplingGroup(name=attn, kind="attention", layer=layer, units=heads.query, blocks=heads.kv, rounding="floor",
                         members=(GroupMember(q_module, "out", heads.dim), GroupMember(o_module, "in", heads.dim)))
