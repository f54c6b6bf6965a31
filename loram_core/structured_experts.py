"""Structured pruning of expert groups: every kept expert keeps its best ``channels - removed`` intermediate
channels (its own indices, the same count for all), and the least-used experts go when ``experts_ratio`` > 0."""

from __future__ import annotations

import torch

from loram_core.arch import ExpertGroup
from loram_core.plan.experts import ExpertEntry


def router_usage(model, ctx, groups: list[ExpertGroup]) -> dict[str, torch.Tensor]:
    """Default expert scores: how often the router picks each expert on the run's calibration windows."""
    from loram_core.checkpoint import CheckpointReader
    from loram_core.errors import LoramError
    from loram_core.expert_usage import expert_usage

    if ctx.calibration is None:
        raise LoramError("experts_ratio > 0 ranks experts by router usage on calibration data, and there is none")
    streamed = any(p.is_meta for p in model.parameters())
    reader = CheckpointReader.open(ctx.model_path) if streamed else None
    return expert_usage(model, groups, ctx.calibration(), reader=reader)


def expert_entries(model, cfg, ctx, groups: list[ExpertGroup], score, expert_score=None) -> dict[str, ExpertEntry]:
    entries: dict[str, ExpertEntry] = {}
    ratio, experts_ratio = cfg.ratio, getattr(cfg, "experts_ratio", 0.0)
    prune_channels = getattr(cfg, "experts", True) and ratio > 0
    drop = {g.name: g.removed_experts(experts_ratio) for g in groups}
    usage = (expert_score or (lambda gs: router_usage(model, ctx, gs)))(groups) if any(drop.values()) else {}
    shapes = {name: tuple(p.shape) for name, p in model.named_parameters()}
    for group in groups:
        keep_experts = None
        if drop[group.name]:
            order = torch.argsort(usage[group.name].double(), descending=True, stable=True)
            keep_experts = order[: group.experts - drop[group.name]].sort().values
        channels = None
        removed = group.removed_channels(ratio) if prune_channels else 0
        if removed:
            scores = score(group)  # [experts, channels]
            if keep_experts is not None:
                scores = scores[keep_experts]
            order = torch.argsort(scores.double(), dim=1, descending=True, stable=True)
            channels = order[:, : group.channels - removed].sort(dim=1).values
        if keep_experts is None and channels is None:
            continue
        entries[group.gate_up] = ExpertEntry(shapes[group.gate_up], keep_experts,
                                             None if channels is None else group.gate_up_rows(channels))
        entries[group.down] = ExpertEntry(shapes[group.down], keep_experts, keep_in=channels)
        if keep_experts is not None:
            entries[group.router] = ExpertEntry(shapes[group.router], keep_experts)
    return entries
