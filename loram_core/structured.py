"""Shared machinery for structured pruners: ratio -> whole units removed per coupling group -> slice plan.

The strategy (how units are scored) stays in the pruner; this module only ranks and writes the plan.
"""

from __future__ import annotations

import contextlib
from typing import Callable

import attrs
import torch

from loram_core.arch import ATTENTION_UNITS, CouplingGroup, family_groups, layer_expert_groups
from loram_core.configs import parse_layers, ratio_in_unit_interval
from loram_core.errors import LoramError
from loram_core.fields import boolean, integer, one_of
from loram_core.plan import PrunePlan, PrunerInfo, SliceEntry
from loram_core.prune_context import PruneContext  # re-exported: plugins import it from here

__all__ = ["PruneContext", "StructuredConfig", "config_groups", "keep_units", "kept_units", "layer_range",
           "plan_from_kept", "ratio_reached", "structured_plan", "with_ratio_reached"]


@attrs.frozen
class StructuredConfig:
    ratio: float = attrs.field(validator=ratio_in_unit_interval)
    layers: tuple[int, int] | None = attrs.field(default=None, converter=parse_layers)
    attention: bool = attrs.field(default=True, validator=boolean)
    mlp: bool = attrs.field(default=True, validator=boolean)
    # Kept widths (MLP channels; query and KV rows) rounded to a multiple of this, e.g. 32 for bitsandbytes'
    # packed CPU layout or tensor-core tiles; the ratio reached is recorded in the plan (docs/results.md).
    align_to: int = attrs.field(default=1, validator=integer(1))
    # kv_groups: whole KV groups with their query heads; query_heads: query heads inside every KV group
    # (q rows, o columns; k and v kept), for models with one or few KV heads (docs/plugins.md).
    attention_units: str = attrs.field(default="kv_groups", validator=one_of(ATTENTION_UNITS))
    # Mixtures of experts: prune every expert's own intermediate channels at ``ratio``; and remove this share
    # of whole experts per layer, the least chosen by the router on calibration data (arch/experts.py).
    experts: bool = attrs.field(default=True, validator=boolean)
    experts_ratio: float = attrs.field(default=0.0, validator=ratio_in_unit_interval)


def config_groups(cfg, ctx, layer: int) -> list[CouplingGroup]:
    """The layer's coupling groups at the granularity ``cfg`` asks (a third party's config may not ask)."""
    return family_groups(ctx.arch, ctx.model_config, layer, getattr(cfg, "attention_units", "kv_groups"))


def layer_range(cfg: StructuredConfig, ctx: PruneContext) -> range:
    n = ctx.arch.num_layers(ctx.model_config)
    start, end = cfg.layers if cfg.layers is not None else ctx.arch.default_layers(ctx.model_config)
    if end > n:
        raise LoramError(f"layer range {start}:{end} is outside the model's {n} decoder layers")
    return range(start, end)


def keep_units(scores: torch.Tensor, keep: int, group: CouplingGroup | None = None) -> torch.Tensor:
    """The ``keep`` highest-scoring units, sorted; ties go to the lower index, so ranking is deterministic.
    With ``group``, its blocks each keep their share (``CouplingGroup.keep``)."""
    if group is not None:
        return group.keep(scores, keep)
    order = torch.argsort(scores.double(), descending=True, stable=True)
    return order[:keep].sort().values


def structured_plan(
    model,
    cfg: StructuredConfig,
    ctx: PruneContext,
    pruner: PrunerInfo,
    score: Callable[[CouplingGroup], torch.Tensor],
    expert_score: Callable[[list], dict[str, torch.Tensor]] | None = None,
) -> PrunePlan:
    """Remove ``group.removed(ratio)`` lowest-scoring units of every enabled group in the layer range.

    In a mixture of experts, ``score(expert_group)`` gives [experts, channels] scores, and whole experts go by
    ``expert_score(groups) -> {name: [experts]}`` (default: router usage on calibration data)."""
    layers = layer_range(cfg, ctx)
    # Record the resolved range: "default" means different layers for different models.
    pruner = attrs.evolve(pruner, params={**pruner.params, "layers": [layers.start, layers.stop]})
    groups, kept = [], {}
    with _layer_progress(ctx.progress, pruner.name, len(layers)) as (bar, task):
        for layer in layers:
            for group in config_groups(cfg, ctx, layer):
                if not getattr(cfg, group.kind, True):
                    continue
                # A third party's config may have no align_to (the guide's in docs/plugins.md): no rounding.
                removed = group.removed(cfg.ratio, getattr(cfg, "align_to", 1))
                if removed == 0:
                    continue
                groups.append(group)
                kept[group.name] = group.keep(score(group), group.units - removed)
            bar.advance(task)
    plan = plan_from_kept(model, ctx, pruner, groups, kept)
    experts = [g for layer in layers for g in layer_expert_groups(ctx.arch, ctx.model_config, layer)]
    if experts:
        from loram_core.structured_experts import expert_entries

        entries = {**plan.entries, **expert_entries(model, cfg, ctx, experts, score, expert_score)}
        plan = attrs.evolve(plan, entries=entries)
    return with_ratio_reached(plan, ctx, layers, cfg)



def plan_from_kept(model, ctx, info: PrunerInfo, groups: list[CouplingGroup], kept) -> PrunePlan:
    """Slice entries for every member of every group that loses units: coupled axes share the unit set, and
    a fused module's axis keeps what its members keep plus every channel outside their segments (Phi-3's
    k and v rows when only query heads go)."""
    from loram_core.plan.layout import out_in_shape

    masks: dict[tuple[str, str], torch.Tensor] = {}
    for group in groups:
        units = kept[group.name]
        if units.numel() == group.units:
            continue
        for member in group.members:
            key = (member.module, "keep_out" if member.axis == "out" else "keep_in")
            if key not in masks:
                out, inp = out_in_shape(model.get_submodule(member.module))
                masks[key] = torch.ones(out if member.axis == "out" else inp, dtype=torch.bool)
            start, end = group.span(member)
            masks[key][start:end] = False
            masks[key][group.channels(member, units)] = True
    axes: dict[str, dict[str, torch.Tensor]] = {}
    for (module, axis), mask in masks.items():
        axes.setdefault(module, {})[axis] = mask.nonzero().flatten()
    entries = {m: SliceEntry(shape=out_in_shape(model.get_submodule(m)), **a) for m, a in axes.items()}
    return PrunePlan(base=ctx.fingerprint, pruner=info, pattern="structured", entries=entries)


def kept_units(plan: PrunePlan, group: CouplingGroup) -> torch.Tensor:
    """The units of ``group`` that ``plan`` keeps (all of them when the group is not in the plan)."""
    member = group.members[0]
    entry = plan.entries.get(member.module)
    idx = None if entry is None else (entry.keep_out if member.axis == "out" else entry.keep_in)
    return torch.arange(group.units) if idx is None else group.units_of(member, idx)


def ratio_reached(plan: PrunePlan, ctx: PruneContext, layers: range, cfg=None) -> dict[str, float]:
    """Per kind, the fraction of units the plan removes across ``layers`` (differs from the ratio asked
    where rounding, ``align_to`` or a kept minimum moved it); units at ``cfg``'s granularity."""
    total: dict[str, int] = {}
    removed: dict[str, int] = {}
    for layer in layers:
        for group in config_groups(cfg, ctx, layer):
            kept = kept_units(plan, group).numel()
            total[group.kind] = total.get(group.kind, 0) + group.units
            removed[group.kind] = removed.get(group.kind, 0) + group.units - kept
    return {kind: round(removed[kind] / total[kind], 6) for kind in sorted(total)}


def with_ratio_reached(plan: PrunePlan, ctx: PruneContext, layers: range, cfg=None) -> PrunePlan:
    params = {**plan.pruner.params, "ratio_reached": ratio_reached(plan, ctx, layers, cfg)}
    return attrs.evolve(plan, pruner=attrs.evolve(plan.pruner, params=params))


@contextlib.contextmanager
def _layer_progress(enabled: bool, name: str, total: int):
    # Scoring streams one layer's weights at a time from disk: minutes on a 70B model, so show it.
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn(f"[bold]prune[/] {name} layers"), MofNCompleteColumn(), BarColumn(), TimeRemainingColumn(),
                  console=Console(stderr=True), disable=not enabled) as bar:
        yield bar, bar.add_task("layers", total=total)
