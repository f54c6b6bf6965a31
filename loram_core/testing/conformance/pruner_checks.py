"""The pruner contract beyond the members of ``loram_core.protocols.Pruner`` (``run_pruner`` checks those), one
check per rule: the plan validates (couplings kept), the pruned model runs, the ratio or pattern is hit, the plan
is deterministic and survives serialization, and the pruner only decides.

Each check takes a ``PruneOutcome`` (harness.run_pruner) and raises ``ConformanceError`` naming the module.
"""

from __future__ import annotations

from pathlib import Path

import torch

from loram_core.protocols import Pruner, optional_member
from loram_core.testing.conformance.failure import ConformanceError, fail
from loram_core.testing.conformance.harness import PruneOutcome, fixed_batch, materialize, run_pruner


def subject(outcome: PruneOutcome) -> str:
    opts = ",".join(f"{k}={v}" for k, v in outcome.options.items()) or "defaults"
    return f"pruner '{outcome.pruner.name}' on tiny {outcome.family.name} ({opts})"


def check_plan_validates(outcome: PruneOutcome) -> None:
    """A ``PrunePlan`` for this model, named after the pruner, that ``validate_plan`` accepts (couplings kept)."""
    from loram_core.errors import PlanError
    from loram_core.plan import PrunePlan
    from loram_core.plan.validate import validate_plan

    where, plan = subject(outcome), outcome.plan
    if not isinstance(plan, PrunePlan):
        fail(where, f"plan() returned {type(plan).__name__}, not a loram_core.plan.PrunePlan")
    if plan.pruner.name != outcome.pruner.name:
        fail(where, f"the plan says it was made by '{plan.pruner.name}' (PrunerInfo.name must be the registered name)")
    try:
        validate_plan(plan, outcome.config)
    except PlanError as exc:
        fail(where, f"the core rejects the plan: {exc}")


def check_pruned_model_runs(outcome: PruneOutcome, workdir: Path):
    """The core applies the plan (in memory or streamed) and the pruned model gives finite logits; returns it."""
    from loram_core.plan import ExpertEntry, MaskEntry
    from loram_core.plan.layout import out_in_weight

    where = subject(outcome)
    model = materialize(outcome, workdir)
    for module, entry in outcome.plan.entries.items():
        if isinstance(entry, ExpertEntry):  # keyed by its 3-D parameter
            if tuple(model.get_parameter(module).shape) != entry.pruned_shape:
                fail(where, f"{module}: pruned parameter has shape {tuple(model.get_parameter(module).shape)}, "
                            f"the plan gives {entry.pruned_shape}")
            continue
        weight = out_in_weight(model.get_submodule(module))
        if tuple(weight.shape) != tuple(entry.pruned_shape):
            fail(where, f"{module}: pruned weight has shape {tuple(weight.shape)}, the plan gives {entry.pruned_shape}")
        if isinstance(entry, MaskEntry) and bool(weight[~entry.mask].ne(0).any()):
            fail(where, f"{module}: masked weights are not zero in the pruned model")
    batch = fixed_batch(outcome.config)
    with torch.no_grad():
        logits = model(input_ids=batch).logits
    if tuple(logits.shape) != (*batch.shape, outcome.config.vocab_size) or not bool(torch.isfinite(logits).all()):
        fail(where, "the pruned model does not produce finite logits of the vocabulary's size")
    return model


def _layer_range(outcome: PruneOutcome) -> range | None:
    """The layers the plan must cover: those requested, else those the plan records; None if neither."""
    from loram_core.configs import parse_layers

    requested = outcome.options.get("layers")
    recorded = outcome.plan.pruner.params.get("layers")
    ok = isinstance(recorded, (list, tuple)) and len(recorded) == 2 and all(isinstance(v, int) for v in recorded)
    if requested is not None:
        start, end = parse_layers(requested)
        if recorded is not None and ok and tuple(recorded) != (start, end):
            fail(subject(outcome), f"asked for layers {start}:{end}, the plan records {recorded[0]}:{recorded[1]}")
        return range(start, end)
    return range(*recorded) if ok else None


def _requested_pattern(outcome: PruneOutcome) -> str | None:
    return getattr(outcome.pruner_config, "pattern", None) or optional_member(outcome.pruner, Pruner, "pattern", None)


def check_ratio(outcome: PruneOutcome) -> None:
    """The plan removes what was asked: ``group.removed(ratio)`` units of every group in the layer range
    (structured), N of every M weights (N:M), or the ratio of every module's weights (unstructured)."""
    from loram_core.arch import adapter_for, family_groups

    where, plan, config = subject(outcome), outcome.plan, outcome.config
    pattern = _requested_pattern(outcome)
    if pattern is not None and plan.pattern != pattern:
        fail(where, f"asked for pattern '{pattern}', the plan has '{plan.pattern}'")
    layers = _layer_range(outcome)
    ratio = getattr(outcome.pruner_config, "ratio", None)
    adapter = adapter_for(config)
    units = getattr(outcome.pruner_config, "attention_units", "kv_groups")
    for layer in range(adapter.num_layers(config)):
        for group in family_groups(adapter, config, layer, units):
            wanted = (layers is None or layer in layers) and bool(getattr(outcome.pruner_config, group.kind, True))
            present = [m for m in group.members if m.module in plan.entries]
            if not wanted:
                if present:
                    why = "outside the layer range" if layers is not None and layer not in layers else f"with {group.kind}=False"
                    fail(where, f"{present[0].module}: pruned {why}")
                continue
            if plan.pattern == "structured":
                _check_group_removal(where, plan, group, ratio, strict=layers is not None)
            else:
                _check_group_masks(where, plan, group, ratio, strict=layers is not None)


def _check_group_removal(where, plan, group, ratio, strict: bool) -> None:
    from loram_core.plan import SliceEntry

    member = group.members[0]
    entry = plan.entries.get(member.module)
    if entry is not None and not isinstance(entry, SliceEntry):
        fail(where, f"{member.module}: a structured plan holds a {entry.kind} entry")
    if ratio is None or (entry is None and not strict):
        return
    idx = None if entry is None else (entry.keep_out if member.axis == "out" else entry.keep_in)
    units = None if idx is None else group.units_of(member, idx)
    if idx is not None and units is None:
        fail(where, f"{member.module}: keeps part of a unit of {group.name} (indices must cover whole units)")
    kept = group.units if idx is None else len(units)
    removed, expected = group.units - kept, group.removed(ratio)
    if removed != expected:
        fail(where, f"{group.name}: removes {removed} of {group.units} {group.kind} units; "
                    f"ratio {ratio} asks for {expected} (CouplingGroup.removed)")


def _check_group_masks(where, plan, group, ratio, strict: bool) -> None:
    from loram_core.plan import MaskEntry

    for member in group.members:
        entry = plan.entries.get(member.module)
        if entry is None:
            if strict:
                fail(where, f"{member.module}: not pruned, though its layer is in the range")
            continue
        if not isinstance(entry, MaskEntry) or entry.pattern != plan.pattern:
            fail(where, f"{member.module}: a '{plan.pattern}' plan needs mask entries of that pattern")
        removed = ~entry.mask
        out_features, in_features = entry.shape
        if plan.pattern == "unstructured":
            if ratio is None:
                continue
            sparsity = float(removed.sum()) / removed.numel()
            # Pruners round per row, per block or per module: any of them lands within a weight per row.
            if abs(sparsity - ratio) > 1.0 / in_features + 1e-9:
                fail(where, f"{member.module}: sparsity {sparsity:.4f}, ratio {ratio} asks for {ratio:.4f}")
        else:
            n, m = (int(v) for v in plan.pattern.split(":"))
            per_group = removed.reshape(out_features, in_features // m, m).sum(-1)
            if not bool((per_group == n).all()):
                fail(where, f"{member.module}: {plan.pattern} needs exactly {n} zeros in every {m} weights "
                            f"of a row; found groups with {int(per_group.min())} to {int(per_group.max())}")


def check_deterministic(outcome: PruneOutcome, workdir: Path) -> None:
    """The same model, options and seed give the same plan and the same reconstructed weights."""
    where = subject(outcome)
    again = run_pruner(outcome.pruner, outcome.family, outcome.options, workdir)
    if not again.plan.equals(outcome.plan):
        fail(where, "two runs with the same seed give different plans")
    if again.store.modules() != outcome.store.modules():
        fail(where, "two runs with the same seed store reconstructed weights for different modules")
    for module in outcome.store.modules():
        if not torch.equal(again.store.get(module), outcome.store.get(module)):
            fail(where, f"{module}: two runs with the same seed store different reconstructed weights")


def check_round_trip(outcome: PruneOutcome, workdir: Path) -> None:
    """``save_plan`` / ``load_plan`` give back an equal plan with the same hash (JSON-safe params, no pickle)."""
    import tempfile

    from loram_core.plan.serialize import load_plan, plan_hash, save_plan

    where = subject(outcome)
    folder = Path(tempfile.mkdtemp(prefix="plan-", dir=workdir))
    try:
        save_plan(outcome.plan, folder)
    except (TypeError, ValueError) as exc:
        fail(where, f"the plan does not serialize (PrunerInfo.params must be JSON values): {exc}")
    loaded = load_plan(folder)
    if not loaded.equals(outcome.plan):
        fail(where, "the plan loaded back from plan.json + plan.safetensors differs from the one emitted")
    if plan_hash(loaded) != plan_hash(outcome.plan):
        fail(where, "the plan's hash changes through save_plan / load_plan")


def check_decides_only(outcome: PruneOutcome) -> None:
    """``plan()`` leaves the model's weights alone; reconstructed weights go to planned modules, full shape."""
    where = subject(outcome)
    if outcome.mutated:
        fail(where, f"plan() changed the model's {outcome.mutated[0]}: a pruner decides, the core applies")
    for module in outcome.store.modules():
        entry = outcome.plan.entries.get(module)
        if entry is None:
            fail(where, f"{module}: a reconstructed weight was stored for a module the plan does not prune")
        weight = outcome.store.get(module)
        if tuple(weight.shape) != tuple(entry.shape) or not bool(torch.isfinite(weight).all()):
            fail(where, f"{module}: the stored weight must be finite with the original shape {entry.shape}")


__all__ = [
    "ConformanceError",
    "check_decides_only",
    "check_deterministic",
    "check_plan_validates",
    "check_pruned_model_runs",
    "check_ratio",
    "check_round_trip",
]
