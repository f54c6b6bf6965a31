"""The Llama-family adapter (Llama, Mistral, Qwen2, Qwen3, Gemma 3 text): GQA-aware groups read from the config.

Qwen3's and Gemma 3's explicit ``head_dim`` (query width heads x head_dim, not the hidden size) is read from the
config; their per-head ``q_norm`` / ``k_norm`` act on head_dim, shared by every head, so removing heads leaves
them whole, and Gemma 3's extra feed-forward norms act on the hidden size, which pruning keeps.
"""

from __future__ import annotations

import attrs

from loram_core import hookimpl
from loram_core.arch import CouplingGroup, GroupMember


@attrs.frozen
class LlamaFamily:
    name: str = "llama"
    model_types: tuple[str, ...] = ("llama", "mistral", "qwen2", "qwen3", "gemma3_text")
    description: str = "decoder layers model.layers.N with q/k/v/o and gate/up/down projections"

    def num_layers(self, config) -> int:
        return config.num_hidden_layers

    def default_layers(self, config) -> tuple[int, int]:
        """The paper keeps the first 4 and last 2 decoder layers dense."""
        n = config.num_hidden_layers
        return (min(4, n), max(min(4, n), n - 2))

    def groups(self, config, layer: int) -> list[CouplingGroup]:
        heads, kv = config.num_attention_heads, config.num_key_value_heads
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
        per_kv = heads // kv  # query heads per KV head, in HF repeat_kv order: q head j uses KV head j // per_kv
        attn, mlp = f"model.layers.{layer}.self_attn", f"model.layers.{layer}.mlp"
        return [
            CouplingGroup(
                name=attn,
                kind="attention",
                layer=layer,
                units=kv,
                members=(
                    GroupMember(f"{attn}.q_proj", "out", per_kv * head_dim),
                    GroupMember(f"{attn}.k_proj", "out", head_dim),
                    GroupMember(f"{attn}.v_proj", "out", head_dim),
                    GroupMember(f"{attn}.o_proj", "in", per_kv * head_dim),
                ),
                rounding="floor",
            ),
            CouplingGroup(
                name=mlp,
                kind="mlp",
                layer=layer,
                units=config.intermediate_size,
                members=(
                    GroupMember(f"{mlp}.gate_proj", "out", 1),
                    GroupMember(f"{mlp}.up_proj", "out", 1),
                    GroupMember(f"{mlp}.down_proj", "in", 1),
                ),
                rounding="ceil",
            ),
        ]


@hookimpl
def register_architectures(register):
    register(LlamaFamily())
