"""The Llama family (Llama, Mistral, Qwen2, Qwen3, Gemma, Gemma 2, Gemma 3 text): separate q/k/v/o and
gate/up/down projections, GQA groups read from the config.

Qwen3's and Gemma's explicit ``head_dim`` (query width heads x head_dim, not the hidden size) is read from the
config; their per-head ``q_norm`` / ``k_norm`` act on head_dim, shared by every head, so removing heads leaves
them whole, and Gemma's extra feed-forward norms act on the hidden size, which pruning keeps.
"""

from __future__ import annotations

import attrs

from loram_core.arch import CouplingGroup, GroupMember
from loram_core.builtin.families.heads import Heads, kept_rows, query_head_group


def paper_layers(n: int) -> tuple[int, int]:
    """The paper keeps the first 4 and last 2 decoder layers dense."""
    return (min(4, n), max(min(4, n), n - 2))


class DecoderLayers:
    """``num_hidden_layers`` decoder layers, the paper's dense first 4 and last 2 (every built-in family)."""

    def num_layers(self, config) -> int:
        return config.num_hidden_layers

    def default_layers(self, config) -> tuple[int, int]:
        return paper_layers(config.num_hidden_layers)


def mlp_group(layer: int, name: str, units: int, members: tuple[GroupMember, ...]) -> CouplingGroup:
    return CouplingGroup(name=name, kind="mlp", layer=layer, units=units, members=members, rounding="ceil")


@attrs.frozen
class LlamaFamily(DecoderLayers):
    name: str = "llama"
    model_types: tuple[str, ...] = ("llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3_text")
    description: str = "decoder layers model.layers.N with q/k/v/o and gate/up/down projections"

    def groups(self, config, layer: int) -> list[CouplingGroup]:
        h = Heads.of(config)
        attn, mlp = f"model.layers.{layer}.self_attn", f"model.layers.{layer}.mlp"
        return [
            CouplingGroup(
                name=attn, kind="attention", layer=layer, units=h.kv, rounding="floor",
                members=(
                    GroupMember(f"{attn}.q_proj", "out", h.per_kv * h.dim),
                    GroupMember(f"{attn}.k_proj", "out", h.dim),
                    GroupMember(f"{attn}.v_proj", "out", h.dim),
                    GroupMember(f"{attn}.o_proj", "in", h.per_kv * h.dim),
                ),
            ),
            mlp_group(layer, mlp, config.intermediate_size, (
                GroupMember(f"{mlp}.gate_proj", "out", 1),
                GroupMember(f"{mlp}.up_proj", "out", 1),
                GroupMember(f"{mlp}.down_proj", "in", 1),
            )),
        ]

    def query_head_groups(self, config, layer: int) -> list[CouplingGroup]:
        attn = f"model.layers.{layer}.self_attn"
        return [query_head_group(layer, attn, f"{attn}.q_proj", f"{attn}.o_proj", Heads.of(config))]

    def pruned_attributes(self, config, plan) -> dict[str, dict]:
        """``num_key_value_groups`` (query heads per KV head, which repeat_kv reads) of every attention whose
        query heads were pruned inside their KV groups."""
        h = Heads.of(config)
        out = {}
        for layer in range(config.num_hidden_layers):
            attn = f"model.layers.{layer}.self_attn"
            query = kept_rows(plan, f"{attn}.q_proj", 0, h.query * h.dim) // h.dim
            kv = kept_rows(plan, f"{attn}.k_proj", 0, h.kv * h.dim) // h.dim
            if query // kv != h.per_kv:
                out[attn] = {"num_key_value_groups": query // kv}
        return out
