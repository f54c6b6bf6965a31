"""Does a plan's expert entries fit a mixture-of-experts model? Shapes, and the couplings of each expert group:
one kept-expert set for the fused gate/up, the down projection and the router; per expert, the same channels in
its gate rows, its up rows and its down columns (arch/experts.py)."""

from __future__ import annotations

import torch

from loram_core.errors import PlanError


def _parameter_shapes(config) -> dict[str, tuple[int, ...]]:
    from loram_core.plan.fingerprint import meta_model

    return {name: tuple(p.shape) for name, p in meta_model(config).named_parameters()}


def check_expert_entries(plan, config, adapter, experts: dict) -> None:
    shapes = _parameter_shapes(config)
    for name, entry in experts.items():
        if name not in shapes:
            raise PlanError(f"plan names parameter '{name}', which this model does not have")
        if tuple(entry.shape) != shapes[name]:
            raise PlanError(f"{name}: plan expects shape {tuple(entry.shape)}, the model has {shapes[name]}")
    from loram_core.arch import layer_expert_groups

    groups = [g for layer in range(adapter.num_layers(config)) for g in layer_expert_groups(adapter, config, layer)]
    covered = set()
    for group in groups:
        members = (group.gate_up, group.down, group.router)
        covered.update(members)
        if any(m in experts for m in members):
            _check_group(group, {m: experts.get(m) for m in members})
    stray = sorted(set(experts) - covered)
    if stray:
        raise PlanError(f"{stray[0]}: not an expert parameter of a {adapter.name} model's expert groups")


def _same(a, b) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and torch.equal(a, b))


def _check_group(group, entries: dict) -> None:
    gate_up, down, router = (entries[group.gate_up], entries[group.down], entries[group.router])
    kept = [(n, None if e is None else e.keep_experts)
            for n, e in ((group.gate_up, gate_up), (group.down, down), (group.router, router))]
    reference = kept[0] if gate_up is not None else next(k for k in kept if entries[k[0]] is not None)
    for name, keep in kept:
        if entries[name] is None and reference[1] is not None:
            raise PlanError(f"{name}: breaks the router coupling of {group.name}: it keeps every expert while "
                            f"{reference[0]} removes some")
        if entries[name] is not None and not _same(keep, reference[1]):
            raise PlanError(f"{name}: breaks the router coupling of {group.name}: it keeps other experts than "
                            f"{reference[0]}")
    if router is not None and (router.keep_out is not None or router.keep_in is not None):
        raise PlanError(f"{group.router}: a router keeps its hidden width; only whole experts leave it")
    rows = None if gate_up is None else gate_up.keep_out
    cols = None if down is None else down.keep_in
    if (rows is None) != (cols is None):
        sliced = group.gate_up if rows is not None else group.down
        raise PlanError(f"{sliced}: breaks the coupling of {group.name}: its experts' channels are sliced while "
                        f"{group.down if rows is not None else group.gate_up} keeps them all")
    if (gate_up is not None and gate_up.keep_in is not None) or (down is not None and down.keep_out is not None):
        raise PlanError(f"{group.name}: the experts' hidden width is not prunable (only their intermediate channels)")
    if rows is None:
        return
    channels = group.channels_of(rows)
    if channels is None:
        raise PlanError(f"{group.gate_up}: breaks the coupling of {group.name}: an expert keeps other channels in "
                        "its gate rows than in its up rows")
    if not torch.equal(channels, cols):
        raise PlanError(f"{group.down}: breaks the coupling of {group.name}: an expert keeps other columns than "
                        f"the channels {group.gate_up} keeps for it")
