"""Recovery checked exactly (docs/architecture.md, "Recovery"): LoRA on the pruned model, recovered to the
original shapes.

The LoRA factors are set to small integers, so every product and sum below is exact in floating point and
``scale * B_R @ A_R == scale * B_P @ A_P`` on ``[keep_out][:, keep_in]`` (zero elsewhere) is an equality.
"""

from __future__ import annotations

import torch

from loram_core.testing.conformance.failure import fail

RANK, ALPHA = 4, 8  # scale alpha / r = 2: exact


def lora_targets(plan, config) -> list[str]:
    """Every planned module, and the projections of one unplanned layer (whose adapter must come back as is).
    Expert entries (3-D parameters, not modules) are left to tests of their own: tests/lifecycle/test_moe.py."""
    from loram_core.arch import adapter_for
    from loram_core.plan import ExpertEntry

    adapter = adapter_for(config)
    planned = {m for m, e in plan.entries.items() if not isinstance(e, ExpertEntry)}
    for layer in range(adapter.num_layers(config)):
        members = [m.module for g in adapter.groups(config, layer) for m in g.members]
        if not any(m in planned for m in members):
            return sorted(planned | set(members))
    return sorted(planned)


def lora_config(targets):
    import peft

    # Full module names: PEFT matches them exactly, so only these get LoRA (wrapping all is slow and adds nothing).
    return peft.LoraConfig(r=RANK, lora_alpha=ALPHA, target_modules=list(targets), lora_dropout=0.0, bias="none")


def integer_lora(model, targets, seed: int = 0):
    """``model`` wrapped with LoRA on ``targets``, factors drawn from the integers -3..3."""
    import peft

    wrapped = peft.get_peft_model(model, lora_config(targets))
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in wrapped.named_parameters():
            if "lora_" in name:
                p.copy_(torch.randint(-3, 4, tuple(p.shape), generator=gen).to(p.dtype))
    return wrapped


def lora_factors(state) -> dict[str, dict[str, torch.Tensor]]:
    from loram_core.recover import parse_lora_key

    factors: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in state.items():
        parsed = parse_lora_key(key)
        if parsed is not None:
            factors.setdefault(parsed[0], {})[parsed[1]] = tensor
    return factors


def check_invariant(where: str, plan, shapes, pruned_state, recovered_state, *, zero_fill: bool = True) -> None:
    """The recovery invariant on every module: equal deltas on kept positions; zero elsewhere when the fill is
    zero; masks: identity."""
    from loram_core.plan import SliceEntry

    scale = ALPHA / RANK
    if pruned_state.keys() != recovered_state.keys():
        fail(where, "recovery changed the adapter's keys")
    small, large = lora_factors(pruned_state), lora_factors(recovered_state)
    for module, f in small.items():
        b_p, a_p = f["lora_B"].double(), f["lora_A"].double()
        b_r, a_r = large[module]["lora_B"].double(), large[module]["lora_A"].double()
        out_features, in_features = shapes[module]
        if b_r.shape != (out_features, RANK) or a_r.shape != (RANK, in_features):
            fail(where, f"{module}: recovered factors {tuple(b_r.shape)} x {tuple(a_r.shape)} do not fit {shapes[module]}")
        entry = plan.entries.get(module)
        delta_p, delta_r = scale * b_p @ a_p, scale * b_r @ a_r
        if not isinstance(entry, SliceEntry):  # unpruned or masked: shapes never changed, recovery is the identity
            if not (torch.equal(b_r, b_p) and torch.equal(a_r, a_p)):
                fail(where, f"{module}: recovery must copy the adapter of an unsliced module unchanged")
            continue
        rows = entry.keep_out if entry.keep_out is not None else torch.arange(out_features)
        cols = entry.keep_in if entry.keep_in is not None else torch.arange(in_features)
        if not torch.equal(delta_r[rows][:, cols], delta_p):
            fail(where, f"{module}: recovered delta differs from the pruned one on the kept rows/columns")
        kept = torch.zeros(out_features, in_features, dtype=torch.bool)
        kept[rows[:, None], cols] = True
        if zero_fill and bool(delta_r[~kept].ne(0).any()):
            fail(where, f"{module}: recovered delta is not zero at pruned positions")


def check_survives_recovery(outcome, pruned_model, recoverer=None) -> None:
    """Train-shaped LoRA on the pruned model -> ``recover_adapter`` -> the recovery invariant -> loads into the
    original."""
    import peft

    from loram_core.plan.fingerprint import linear_shapes
    from loram_core.recover import recover_adapter
    from loram_core.registry import get
    from loram_core.testing.conformance.harness import fixed_batch, original_model
    from loram_core.testing.conformance.pruner_checks import subject

    where, plan, config = subject(outcome), outcome.plan, outcome.config
    recoverer = recoverer or get("recoverer", "zero")
    targets = lora_targets(plan, config)
    small = integer_lora(pruned_model, targets)
    with torch.no_grad():
        logits = small(input_ids=fixed_batch(config)).logits
    if not bool(torch.isfinite(logits).all()):
        fail(where, "the pruned model with LoRA gives non-finite logits")
    state = {k: v.detach().clone() for k, v in peft.get_peft_model_state_dict(small).items()}
    shapes = linear_shapes(config)
    recovered = recover_adapter(state, plan, shapes, recoverer, generator=torch.Generator().manual_seed(0))
    check_invariant(where, plan, shapes, state, recovered, zero_fill=recoverer.name == "zero")
    large = peft.get_peft_model(original_model(outcome.model_path), lora_config(targets))
    result = peft.set_peft_model_state_dict(large, recovered)
    missing = [k for k in result.missing_keys if "lora_" in k]
    if result.unexpected_keys or missing:
        fail(where, f"the recovered adapter does not load into the original (e.g. {(result.unexpected_keys or missing)[0]})")
