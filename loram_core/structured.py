"""Shared machinery for structured pruners: ratio -> whole units removed per coupling group -> slice plan.

The strategy (how units are scored) stays in the pruner; this module only ranks and writes the plan.
"""

from __future__ import annotations

import contextlib
from typing import Callable

import attrs
import torch

from loram_core.arch import CouplingGroup
from loram_core.configs import parse_layers, ratio_in_unit_interval
from loram_core.errors import LoramError
from loram_core.fields import boolean, integer
from loram_core.plan import PrunePlan, PrunerInfo, SliceEntry
from loram_core.prune_context import PruneContext  # re-exported: plugins import it from here

__all__ = ["PruneContext", "StructuredConfig", "keep_units", "layer_range", "ratio_reached",
           "structured_plan", "with_ratio_reached"]


@attrs.frozen
class StructuredConfig:
    ratio: float = attrs.field(validator=ratio_in_unit_interval)
    layers: tuple[int, int] | None = attrs.field(default=None, converter=parse_layers)
    attention: bool = attrs.field(default=True, validator=boolean)
    mlp: bool = attrs.field(default=True, validator=boolean)
    # Kept widths (MLP channels; query and KV rows) rounded to a multiple of this, e.g. 32 for bitsandbytes'
    # packed CPU layout or tensor-core tiles; the ratio reached is recorded in the plan (docs/results.md).
    align_to: int = attrs.field(default=1, validator=integer(1))


def layer_range(cfg: StructuredConfig, ctx: PruneContext) -> range:
    n = ctx.arch.num_layers(ctx.model_config)
    start, end = cfg.layers if cfg.layers is not None else ctx.arch.default_layers(ctx.model_config)
    if end > n:
        raise LoramError(f"layer range {start}:{end} is outside the model's {n} decoder layers")
    return range(start, end)


def keep_units(scores: torch.Tensor, keep: int) -> torch.Tensor:
    """The ``keep`` highest-scoring units, sorted; ties go to the lower index, so ranking is deterministic."""
    order = torch.argsort(scores.double(), descending=True, stable=True)
    return order[:keep].sort().values


def structured_plan(
    model,
    cfg: StructuredConfig,
    ctx: PruneContext,
    pruner: PrunerInfo,
    score: Callable[[CouplingGroup], torch.Tensor],
) -> PrunePlan:
    """Remove ``group.removed(ratio)`` lowest-scoring units of every enabled group in the layer range."""
    slices: dict[str, dict[str, torch.Tensor]] = {}
    shapes: dict[str, tuple[int, int]] = {}
    layers = layer_range(cfg, ctx)
    # Record the resolved range: "default" means different layers for different models.
    pruner = attrs.evolve(pruner, params={**pruner.params, "layers": [layers.start, layers.stop]})
    with _layer_progress(ctx.progress, pruner.name, len(layers)) as (bar, task):
        for layer in layers:
            for group in ctx.arch.groups(ctx.model_config, layer):
                if not getattr(cfg, group.kind, True):
                    continue
                # A third party's config may have no align_to (the guide's in docs/plugins.md): no rounding.
                removed = group.removed(cfg.ratio, getattr(cfg, "align_to", 1))
                if removed == 0:
                    continue
                kept = keep_units(score(group), group.units - removed)
                for member in group.members:
                    axis = "keep_out" if member.axis == "out" else "keep_in"
                    slices.setdefault(member.module, {})[axis] = group.channels(member, kept)
                    shapes[member.module] = tuple(model.get_submodule(member.module).weight.shape)
            bar.advance(task)
    entries = {m: SliceEntry(shape=shapes[m], **axes) for m, axes in slices.items()}
    plan = PrunePlan(base=ctx.fingerprint, pruner=pruner, pattern="structured", entries=entries)
    return with_ratio_reached(plan, ctx, layers)


def ratio_reached(plan: PrunePlan, ctx: PruneContext, layers: range) -> dict[str, float]:
    """Per kind, the fraction of units the plan removes across ``layers`` (differs from the ratio asked
    where rounding, ``align_to`` or a kept minimum moved it)."""
    total: dict[str, int] = {}
    removed: dict[str, int] = {}
    for layer in layers:
        for group in ctx.arch.groups(ctx.model_config, layer):
            member = group.members[0]
            entry = plan.entries.get(member.module)
            idx = None if entry is None else (entry.keep_out if member.axis == "out" else entry.keep_in)
            kept = group.units if idx is None else idx.numel() // member.unit_size
            total[group.kind] = total.get(group.kind, 0) + group.units
            removed[group.kind] = removed.get(group.kind, 0) + group.units - kept
    return {kind: round(removed[kind] / total[kind], 6) for kind in sorted(total)}


def with_ratio_reached(plan: PrunePlan, ctx: PruneContext, layers: range) -> PrunePlan:
    params = {**plan.pruner.params, "ratio_reached": ratio_reached(plan, ctx, layers)}
    return attrs.evolve(plan, pruner=attrs.evolve(plan.pruner, params=params))


@contextlib.contextmanager
def _layer_progress(enabled: bool, name: str, total: int):
    # Scoring streams one layer's weights at a time from disk: minutes on a 70B model, so show it.
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn(f"[bold]prune[/] {name} layers"), MofNCompleteColumn(), BarColumn(), TimeRemainingColumn(),
                  console=Console(stderr=True), disable=not enabled) as bar:
        yield bar, bar.add_task("layers", total=total)
