"""Phi-3: fused ``qkv_proj`` (q, k and v rows one after the other) and ``gate_up_proj`` (gate rows, then up
rows), so one module holds several coupled segments; each segment is a member with its own offset.

Phi-3's attention finds the q/k/v split from ``config.num_attention_heads`` and its ``num_key_value_heads``,
so a pruned attention gets its own copy of the config with its kept head counts (``pruned_attributes``).
"""

from __future__ import annotations

import copy

import attrs

from loram_core.arch import CouplingGroup, GroupMember
from loram_core.builtin.families.heads import Heads, kept_rows, query_head_group
from loram_core.builtin.families.llama import DecoderLayers, mlp_group


@attrs.frozen
class Phi3Family(DecoderLayers):
    name: str = "phi3"
    model_types: tuple[str, ...] = ("phi3",)
    description: str = "decoder layers model.layers.N with fused qkv_proj and gate_up_proj"

    def groups(self, config, layer: int) -> list[CouplingGroup]:
        h = Heads.of(config)
        attn, mlp = f"model.layers.{layer}.self_attn", f"model.layers.{layer}.mlp"
        qkv, q_width, kv_width = f"{attn}.qkv_proj", h.query * h.dim, h.kv * h.dim
        inter = config.intermediate_size
        return [
            CouplingGroup(
                name=attn, kind="attention", layer=layer, units=h.kv, rounding="floor",
                members=(
                    GroupMember(qkv, "out", h.per_kv * h.dim),
                    GroupMember(qkv, "out", h.dim, offset=q_width),
                    GroupMember(qkv, "out", h.dim, offset=q_width + kv_width),
                    GroupMember(f"{attn}.o_proj", "in", h.per_kv * h.dim),
                ),
            ),
            mlp_group(layer, mlp, inter, (
                GroupMember(f"{mlp}.gate_up_proj", "out", 1),
                GroupMember(f"{mlp}.gate_up_proj", "out", 1, offset=inter),
                GroupMember(f"{mlp}.down_proj", "in", 1),
            )),
        ]

    def query_head_groups(self, config, layer: int) -> list[CouplingGroup]:
        attn = f"model.layers.{layer}.self_attn"
        return [query_head_group(layer, attn, f"{attn}.qkv_proj", f"{attn}.o_proj", Heads.of(config))]

    def pruned_attributes(self, config, plan) -> dict[str, dict]:
        h = Heads.of(config)
        q_width, kv_width = h.query * h.dim, h.kv * h.dim
        out = {}
        for layer in range(config.num_hidden_layers):
            attn = f"model.layers.{layer}.self_attn"
            query = kept_rows(plan, f"{attn}.qkv_proj", 0, q_width) // h.dim
            kv = kept_rows(plan, f"{attn}.qkv_proj", q_width, q_width + kv_width) // h.dim
            if (query, kv) == (h.query, h.kv):
                continue
            own = copy.copy(config)  # read by forward for the q/k/v split; shared by every layer otherwise
            own.num_attention_heads, own.num_key_value_heads = query, kv
            out[attn] = {"config": own, "num_key_value_heads": kv, "num_key_value_groups": query // kv}
        return out
