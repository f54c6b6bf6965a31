"""Which modules LoRA adapts: names as given, or ``all-linear`` (PEFT's and TRL's spelling), which means
every Linear or ``Conv1D`` leaf of the decoder, the output head excepted. One answer per model family:
q/k/v/o and gate/up/down for Llama, ``qkv_proj``/``gate_up_proj`` for Phi-3, ``c_attn``/``c_fc`` for GPT-2."""

from __future__ import annotations

from loram_core.errors import LoramError

ALL_LINEAR = "all-linear"


def target_leaves(model_or_config, names: tuple[str, ...]) -> tuple[str, ...]:
    """Module leaf names that ``names`` targets in the model (a config builds it on the meta device)."""
    if ALL_LINEAR not in names:
        return tuple(names)
    if len(names) > 1:
        raise LoramError(f"target_modules: '{ALL_LINEAR}' stands alone, got {', '.join(names)}")
    from loram_core.plan.layout import is_prunable

    model = model_or_config
    if not hasattr(model, "named_modules"):
        from loram_core.plan.fingerprint import meta_model

        model = meta_model(model_or_config)
    head = model.get_output_embeddings()
    leaves = (name.rsplit(".", 1)[-1] for name, m in model.named_modules() if is_prunable(m) and m is not head)
    return tuple(dict.fromkeys(leaves))  # first-seen order: q, k, v, o, gate, up, down
