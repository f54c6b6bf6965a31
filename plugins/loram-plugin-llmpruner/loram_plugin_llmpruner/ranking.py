"""Unit scores -> which units go: per layer (uniform shapes) or globally across layers, as a slice plan."""

from __future__ import annotations

from typing import Mapping

import attrs
import torch

from loram_core.arch import CouplingGroup
from loram_core.errors import LoramError
from loram_core.plan import PrunePlan, PrunerInfo
from loram_core.structured import config_groups, keep_units, layer_range, plan_from_kept, structured_plan, with_ratio_reached


def groups_to_prune(cfg, ctx) -> list[CouplingGroup]:
    """The enabled coupling groups of the layer range that lose at least one unit at ``cfg.ratio``."""
    return [
        group
        for layer in layer_range(cfg, ctx)
        for group in config_groups(cfg, ctx, layer)
        if getattr(cfg, group.kind, True) and group.removed(cfg.ratio, cfg.align_to) > 0
    ]


def layer_ranking_plan(model, cfg, ctx, info: PrunerInfo, scores: Mapping[str, torch.Tensor]) -> PrunePlan:
    """Every group loses ``group.removed(ratio)`` of its lowest-scoring units: the core's uniform plan."""
    return structured_plan(model, cfg, ctx, info, lambda group: scores[group.name])


def global_removal(groups: list[CouplingGroup], scores: Mapping[str, torch.Tensor], ratio: float) -> dict[str, torch.Tensor]:
    """Removed units per group when the units of all ``groups`` compete on raw score.

    The budget is what per-layer ranking would remove in total (so the overall ratio is the same); each
    group keeps at least one unit. Raw, unnormalized scores are compared, as LLM-Pruner's global pruning
    does (its ``TaylorImportance`` has no normalizer by default). On a tie the earlier layer / lower index is
    kept, as the core's ``keep_units`` keeps the lower index.
    """
    budget = sum(g.removed(ratio) for g in groups)
    flat = torch.cat([scores[g.name].double() for g in groups])
    owner = torch.cat([torch.full((g.units,), i, dtype=torch.int64) for i, g in enumerate(groups)])
    local = torch.cat([torch.arange(g.units) for g in groups])
    cap = torch.tensor([g.units - 1 for g in groups])  # never a whole group
    # Least important first; the flip of a stable descending sort puts tied later units before earlier ones.
    order = torch.argsort(flat, descending=True, stable=True).flip(0)
    # Rank of each unit inside its own group, in that same order: group the sorted list by owner
    # (stable, so score order survives), then count from each group's start.
    owner_sorted = owner[order]
    by_owner = torch.argsort(owner_sorted, stable=True)
    starts = torch.cumsum(torch.tensor([0] + [g.units for g in groups[:-1]]), 0)
    rank = torch.empty_like(order)
    rank[by_owner] = torch.arange(order.numel()) - starts[owner_sorted[by_owner]]
    eligible = rank < cap[owner_sorted]
    chosen = order[eligible][:budget]
    return {
        g.name: local[chosen[owner[chosen] == i]].sort().values for i, g in enumerate(groups)
    }


def global_ranking_plan(
    model, cfg, ctx, info: PrunerInfo, groups: list[CouplingGroup], scores: Mapping[str, torch.Tensor]
) -> PrunePlan:
    """One competition per kind (KV groups with KV groups, MLP channels with MLP channels) across layers."""
    if any(g.blocks > 1 for g in groups):
        raise LoramError("llmpruner: ranking=global competes whole units across layers; with "
                         "attention_units=query_heads every KV group keeps the same count, so use ranking=layer")
    removed: dict[str, torch.Tensor] = {}
    for kind in sorted({g.kind for g in groups}):
        removed.update(global_removal([g for g in groups if g.kind == kind], scores, cfg.ratio))
    kept = {}
    for g in groups:
        mask = torch.ones(g.units, dtype=torch.bool)
        mask[removed[g.name]] = False
        kept[g.name] = mask.nonzero().flatten()
        if cfg.align_to > 1:
            kept[g.name] = keep_units(scores[g.name], g.aligned_keep(kept[g.name].numel(), cfg.align_to), g)
    layers = layer_range(cfg, ctx)
    info = attrs.evolve(info, params={**info.params, "layers": [layers.start, layers.stop]})
    return with_ratio_reached(plan_from_kept(model, ctx, info, groups, kept), ctx, layers, cfg)
