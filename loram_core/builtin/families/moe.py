"""Mixtures of experts (Mixtral, Qwen3-MoE, OLMoE): Llama-style attention and, in every sparse layer, an expert
group over the fused 3-D ``experts.gate_up_proj`` / ``experts.down_proj`` and the router ``gate.weight``.

Qwen3-MoE's dense layers (``mlp_only_layers``, ``decoder_sparse_step``) keep a plain gate/up/down MLP, pruned
as the Llama family's. OLMoE normalizes q and k over all heads at once (``q_norm`` weighs the full query
width), so removing heads would change what every head sees: its attention is not pruned, only its experts.
"""

from __future__ import annotations

import attrs

from loram_core.arch import ExpertGroup, GroupMember
from loram_core.builtin.families.llama import DecoderLayers, LlamaFamily, mlp_group
from loram_core.plan.experts import ExpertEntry


def num_experts(config) -> int:
    return getattr(config, "num_local_experts", None) or config.num_experts


def expert_channels(config) -> int:
    return getattr(config, "moe_intermediate_size", None) or config.intermediate_size


def is_sparse(config, layer: int) -> bool:
    if config.model_type != "qwen3_moe":
        return True
    return layer not in (config.mlp_only_layers or []) and (layer + 1) % config.decoder_sparse_step == 0


@attrs.frozen
class MixtureFamily(DecoderLayers):
    name: str = "moe"
    model_types: tuple[str, ...] = ("mixtral", "qwen3_moe", "olmoe")
    description: str = "model.layers.N: Llama attention, fused 3-D experts and a router per sparse layer"

    def _attention(self, config, layer: int, query_heads: bool):
        if config.model_type == "olmoe":
            return []
        dense = LlamaFamily()
        groups = dense.query_head_groups(config, layer) if query_heads else dense.groups(config, layer)
        return [g for g in groups if g.kind == "attention"]

    def groups(self, config, layer: int):
        groups = self._attention(config, layer, query_heads=False)
        if not is_sparse(config, layer):
            mlp = f"model.layers.{layer}.mlp"
            groups.append(mlp_group(layer, mlp, config.intermediate_size, tuple(
                GroupMember(f"{mlp}.{name}", axis, 1) for name, axis in
                (("gate_proj", "out"), ("up_proj", "out"), ("down_proj", "in"))
            )))
        return groups

    def query_head_groups(self, config, layer: int):
        return self._attention(config, layer, query_heads=True)

    def expert_groups(self, config, layer: int) -> list[ExpertGroup]:
        if not is_sparse(config, layer):
            return []
        mlp = f"model.layers.{layer}.mlp"
        return [ExpertGroup(name=mlp, layer=layer, experts=num_experts(config), channels=expert_channels(config),
                            gate_up=f"{mlp}.experts.gate_up_proj", down=f"{mlp}.experts.down_proj",
                            router=f"{mlp}.gate.weight", top_k=config.num_experts_per_tok)]

    def pruned_attributes(self, config, plan) -> dict[str, dict]:
        """The expert count the experts' and the router's forward read (one-hot width, top-k), and the query
        heads per KV head of attention pruned by query heads."""
        out = LlamaFamily.pruned_attributes(LlamaFamily(), config, plan) if config.model_type != "olmoe" else {}
        for layer in range(config.num_hidden_layers):
            for group in self.expert_groups(config, layer):
                entry = plan.entries.get(group.router)
                if isinstance(entry, ExpertEntry) and entry.keep_experts is not None:
                    kept = len(entry.keep_experts)
                    out[f"{group.name}.experts"] = {"num_experts": kept}
                    out[f"{group.name}.gate"] = {"num_experts": kept, "top_k": min(group.top_k, kept)}
        return out
