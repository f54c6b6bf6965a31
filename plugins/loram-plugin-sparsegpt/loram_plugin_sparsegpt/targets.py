"""Which layers and Linear modules a mask pruner prunes, and the plan parameters both pruners record."""

from __future__ import annotations

import attrs
from torch import nn

from loram_core.arch import is_mixture
from loram_core.errors import LoramError
from loram_plugin_sparsegpt.config import MaskPruneConfig


def with_modules(cfg: MaskPruneConfig, ctx) -> MaskPruneConfig:
    """``cfg`` with its modules resolved: as given, or every module the family's coupling groups list."""
    if cfg.modules is not None:
        return cfg
    groups = ctx.arch.groups(ctx.model_config, 0)
    return attrs.evolve(cfg, modules=tuple(dict.fromkeys(m.module.rsplit(".", 1)[-1] for g in groups for m in g.members)))


def unsupported(model_config) -> str | None:
    """Both pruners stream ``model.layers.N`` and read Linear weights as (out, in): GPT-2 has neither."""
    if model_config.model_type == "gpt2":
        return ("its blocks are transformer.h.N with Conv1D weights stored (in, out); use a structured pruner "
                "(random, magnitude, llmpruner)")
    if is_mixture(model_config):
        return "its experts are 3-D parameters, not Linear modules; use random or magnitude (expert channels)"
    return None



def layer_range(cfg: MaskPruneConfig, ctx) -> range:
    """The configured ``[start, end)``, or every decoder layer."""
    n = ctx.arch.num_layers(ctx.model_config)
    start, end = cfg.layers if cfg.layers is not None else (0, n)
    if end > n:
        raise LoramError(f"layer range {start}:{end} is outside the model's {n} decoder layers")
    return range(start, end)


def layer_linears(layer: nn.Module, prefix: str, cfg: MaskPruneConfig) -> dict[str, nn.Linear]:
    """Full module name -> Linear for the configured module names (``q_proj``, ...) inside ``layer``."""
    wanted = cfg.modules  # None (not resolved by with_modules): every Linear of the layer
    found = {f"{prefix}.{name}": m for name, m in layer.named_modules()
             if isinstance(m, nn.Linear) and (wanted is None or name.rsplit(".", 1)[-1] in wanted)}
    present = {name.rsplit(".", 1)[-1] for name in found}
    missing = [m for m in wanted or () if m not in present]
    if missing:
        have = sorted({n.rsplit(".", 1)[-1] for n, m in layer.named_modules() if isinstance(m, nn.Linear)})
        raise LoramError(f"{prefix} has no Linear named {', '.join(missing)} (it has: {', '.join(have)})")
    nm = cfg.nm
    if nm is not None:
        for name, linear in found.items():
            if linear.in_features % nm[1]:
                raise LoramError(f"{name}: pattern {cfg.pattern} needs in_features ({linear.in_features}) divisible by {nm[1]}")
    return found


def plan_params(cfg: MaskPruneConfig, layers: range) -> dict:
    """The resolved options a plan records (the ratio as applied: N/M for an N:M pattern)."""
    nm = cfg.nm
    return {
        "ratio": nm[0] / nm[1] if nm else cfg.ratio,
        "pattern": cfg.pattern,
        "layers": [layers.start, layers.stop],
        "modules": list(cfg.modules),
        "per_row": cfg.per_row,
        # masks keep shapes: the pruned count is the paper's theoretical (▲) one; training holds the full model
        "masks_reduce_training_memory": False,
    }
