"""GPT-2: ``Conv1D`` projections (weights stored (in, out); plan/layout.py hides that) and a fused ``c_attn``
holding q, k and v, each ``n_embd`` wide. Multi-head attention: a unit is one head of q, k and v.

GPT-2's attention splits ``c_attn``'s output at ``split_size``, set from the config, so a pruned attention
gets its kept width (``pruned_attributes``).
"""

from __future__ import annotations

import attrs

from loram_core.arch import CouplingGroup, GroupMember
from loram_core.builtin.families.heads import kept_rows
from loram_core.builtin.families.llama import DecoderLayers, mlp_group


@attrs.frozen
class GPT2Family(DecoderLayers):
    name: str = "gpt2"
    model_types: tuple[str, ...] = ("gpt2",)
    description: str = "blocks transformer.h.N with Conv1D c_attn (fused q/k/v), c_proj, c_fc"

    def groups(self, config, layer: int) -> list[CouplingGroup]:
        width, dim = config.n_embd, config.n_embd // config.n_head
        attn, mlp = f"transformer.h.{layer}.attn", f"transformer.h.{layer}.mlp"
        return [
            CouplingGroup(
                name=attn, kind="attention", layer=layer, units=config.n_head, rounding="floor",
                members=(
                    GroupMember(f"{attn}.c_attn", "out", dim),
                    GroupMember(f"{attn}.c_attn", "out", dim, offset=width),
                    GroupMember(f"{attn}.c_attn", "out", dim, offset=2 * width),
                    GroupMember(f"{attn}.c_proj", "in", dim),
                ),
            ),
            mlp_group(layer, mlp, config.n_inner or 4 * width, (
                GroupMember(f"{mlp}.c_fc", "out", 1),
                GroupMember(f"{mlp}.c_proj", "in", 1),
            )),
        ]

    def pruned_attributes(self, config, plan) -> dict[str, dict]:
        width, dim = config.n_embd, config.n_embd // config.n_head
        out = {}
        for layer in range(config.n_layer):
            attn = f"transformer.h.{layer}.attn"
            kept = kept_rows(plan, f"{attn}.c_attn", 0, width)
            if kept != width:
                out[attn] = {"split_size": kept, "num_heads": kept // dim}
        return out
