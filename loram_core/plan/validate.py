"""Does a plan fit a model? Shapes per module and the couplings of the architecture adapter."""

from __future__ import annotations

import torch

from loram_core.arch import adapter_for, family_groups
from loram_core.errors import PlanError
from loram_core.plan.entries import SliceEntry
from loram_core.plan.experts import ExpertEntry
from loram_core.plan.validate_experts import check_expert_entries
from loram_core.plan.fingerprint import ModelFingerprint, linear_shapes
from loram_core.plan.plan import PrunePlan


def _fmt(units) -> str:
    return "[" + ", ".join(str(int(u)) for u in units[:8]) + (", ..." if len(units) > 8 else "") + "]"


def validate_plan(plan: PrunePlan, config, *, check_fingerprint: bool = True) -> None:
    """Raise ``PlanError`` naming the module when ``plan`` does not fit the model described by ``config``."""
    if check_fingerprint:
        here = ModelFingerprint.from_config(config)
        if not plan.base.matches(here):
            raise PlanError(
                f"plan was made for {plan.base.name_or_path or plan.base.architecture} "
                f"(config {plan.base.config_hash}, {plan.base.num_parameters:,} params), "
                f"not this model (config {here.config_hash}, {here.num_parameters:,} params)"
            )
    shapes = linear_shapes(config)
    experts = {n: e for n, e in plan.entries.items() if isinstance(e, ExpertEntry)}
    for module, entry in plan.entries.items():
        if module in experts:
            continue
        if module not in shapes:
            raise PlanError(f"plan names module '{module}', which this model does not have")
        if tuple(entry.shape) != tuple(shapes[module]):
            raise PlanError(f"{module}: plan expects weight shape {tuple(entry.shape)}, model has {shapes[module]}")

    adapter = adapter_for(config)
    if experts:
        check_expert_entries(plan, config, adapter, experts)
    query_heads = getattr(adapter, "query_head_groups", None) is not None
    prunable: set[tuple[str, str]] = set()
    for layer in range(adapter.num_layers(config)):
        alternatives = {g.name: g for g in family_groups(adapter, config, layer, "query_heads")} if query_heads else {}
        for group in adapter.groups(config, layer):
            prunable.update((m.module, m.axis) for m in group.members)
            other = alternatives.get(group.name) if group.kind == "attention" else None
            if other is not None and _keeps_unsliced(plan, group, other):
                _check_group(plan, other)  # query heads pruned inside their KV groups; k and v whole
            else:
                _check_group(plan, group)
    for module, entry in plan.entries.items():
        if isinstance(entry, SliceEntry):
            for axis, idx in (("out", entry.keep_out), ("in", entry.keep_in)):
                if idx is not None and (module, axis) not in prunable:
                    raise PlanError(f"{module}: its '{axis}' axis is not prunable in a {adapter.name} model")


def _index(plan: PrunePlan, member):
    entry = plan.entries.get(member.module)
    if not isinstance(entry, SliceEntry):
        return None
    return entry.keep_out if member.axis == "out" else entry.keep_in


def _keeps_unsliced(plan: PrunePlan, group, query_group) -> bool:
    """Whether the plan slices only the query-head group's members' segments, every other member of the
    KV group whole (then the query-head coupling applies)."""
    inside = {(m.module, m.axis, m.offset) for m in query_group.members}
    outside = [m for m in group.members if (m.module, m.axis, m.offset) not in inside]
    if any(_index(plan, m) is None for m in query_group.members):
        return False
    for m in outside:
        idx = _index(plan, m)
        if idx is not None and group.segment(m, idx).numel() != group.units * m.unit_size:
            return False
    return True


def _check_group(plan: PrunePlan, group) -> None:
    sliced = [m for m in group.members if isinstance(plan.entries.get(m.module), SliceEntry)]
    if not sliced:
        return
    reference = None
    for member in group.members:
        idx = _index(plan, member)
        if idx is None:
            raise PlanError(
                f"{member.module}: breaks the coupling of {group.name}: its '{member.axis}' axis is not sliced "
                f"while {sliced[0].module} is"
            )
        units = group.units_of(member, idx)
        if units is None:
            raise PlanError(
                f"{member.module}: breaks the coupling of {group.name}: keeps a partial "
                f"{'query head' if group.blocks > 1 else 'KV group' if group.kind == 'attention' else 'unit'} "
                f"(indices must cover whole units of {member.unit_size})"
            )
        if group.blocks > 1 and len(set(torch.bincount(units // group.block_units, minlength=group.blocks).tolist())) > 1:
            raise PlanError(
                f"{member.module}: breaks the coupling of {group.name}: keeps different numbers of query heads "
                f"in its {group.blocks} KV groups (each KV group must keep the same number)"
            )
        if reference is None:
            reference = (member.module, units)
        elif not (len(units) == len(reference[1]) and bool((units == reference[1]).all())):
            raise PlanError(
                f"{member.module}: breaks the coupling of {group.name}: keeps units {_fmt(units)} "
                f"but {reference[0]} keeps {_fmt(reference[1])}"
            )
