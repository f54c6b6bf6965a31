"""Recovery (docs/architecture.md, "Recovery"): the recovered delta equals the pruned delta on kept rows/cols,
zero elsewhere."""

import pytest
import torch
from peft import LoraConfig, get_peft_model, get_peft_model_state_dict, set_peft_model_state_dict

from loram_core import registry
from loram_core.errors import AdapterError
from loram_core.plan import SliceEntry
from loram_core.plan.apply import apply_plan
from loram_core.plan.fingerprint import linear_shapes
from loram_core.recover import parse_lora_key, recover_adapter
from loram_core.testing.tiny import tiny_llama
from loram_test_helpers import make_plan, mask_plan

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
R, ALPHA = 4, 8


def trained_pruned_adapter(plan, seed=0, **model_kwargs):
    """A LoRA on the pruned model with random (non-zero) A and B, as if trained."""
    pruned = apply_plan(tiny_llama(**model_kwargs), plan)
    peft_model = get_peft_model(pruned, LoraConfig(r=R, lora_alpha=ALPHA, target_modules=TARGETS, lora_dropout=0.0))
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_" in name:
                p.copy_(torch.randn(p.shape, generator=gen))
    return peft_model, get_peft_model_state_dict(peft_model)


def delta(state, module):
    a = state[f"base_model.model.{module}.lora_A.weight"]
    b = state[f"base_model.model.{module}.lora_B.weight"]
    return (ALPHA / R) * (b @ a)


@pytest.mark.parametrize("model_type, gqa, extra", [("llama", True, {}), ("llama", False, {}), ("qwen2", True, {}),
                                                     ("qwen3", True, {"head_dim": 16}),  # query width 128 != hidden 64
                                                     ("gemma3_text", True, {"head_dim": 16, "sliding_window": 8})])
def test_recovery_invariant_for_every_module_kind(model_type, gqa, extra):
    original = tiny_llama(model_type=model_type, gqa=gqa, **extra)
    plan = make_plan(original, "random", seed=1)
    _, state = trained_pruned_adapter(plan, model_type=model_type, gqa=gqa, **extra)
    shapes = linear_shapes(original.config)
    recovered = recover_adapter(state, plan, shapes, registry.get("recoverer", "zero"))
    kinds_checked = set()
    for key in recovered:
        module, factor = parse_lora_key(key)
        if factor != "lora_A":
            continue
        full, small = delta(recovered, module), delta(state, module)
        assert full.shape == shapes[module]
        entry = plan.entries.get(module)
        if entry is None:  # dense layers and unpruned modules: copied unchanged
            assert torch.equal(full, small)
            continue
        rows = entry.keep_out if entry.keep_out is not None else torch.arange(full.shape[0])
        cols = entry.keep_in if entry.keep_in is not None else torch.arange(full.shape[1])
        assert torch.equal(full[rows][:, cols], small), module
        outside = torch.ones_like(full, dtype=torch.bool)
        outside[rows[:, None], cols] = False
        assert bool(outside.any()) and torch.count_nonzero(full[outside]) == 0, module
        kinds_checked.add(module.rsplit(".", 1)[1])
    assert kinds_checked == set(TARGETS)


def test_recovered_adapter_merged_into_original_changes_only_kept_block(tmp_path):
    original = tiny_llama()
    plan = make_plan(original, "magnitude")
    _, state = trained_pruned_adapter(plan)
    recovered = recover_adapter(state, plan, linear_shapes(original.config), registry.get("recoverer", "zero"))
    lora = get_peft_model(tiny_llama(), LoraConfig(r=R, lora_alpha=ALPHA, target_modules=TARGETS, lora_dropout=0.0))
    result = set_peft_model_state_dict(lora, recovered)
    assert not result.unexpected_keys
    merged = lora.merge_and_unload()
    module = "model.layers.4.mlp.down_proj"
    w0 = original.get_submodule(module).weight
    w = merged.get_submodule(module).weight
    cols = plan.entries[module].keep_in
    pruned_cols = torch.tensor(sorted(set(range(w.shape[1])) - set(cols.tolist())))
    assert torch.equal(w[:, pruned_cols], w0[:, pruned_cols])  # exactly the original where pruned
    torch.testing.assert_close(w[:, cols] - w0[:, cols], delta(state, module), rtol=0, atol=1e-5)


def test_mask_entries_recover_as_identity():
    original = tiny_llama()
    plan = mask_plan(original)
    _, state = trained_pruned_adapter(plan)
    recovered = recover_adapter(state, plan, linear_shapes(original.config), registry.get("recoverer", "zero"))
    assert recovered.keys() == state.keys()
    assert all(torch.equal(recovered[k], state[k]) for k in state)


def test_normal_fill_puts_noise_only_in_pruned_lora_a_columns():
    original = tiny_llama()
    plan = make_plan(original, "magnitude")
    _, state = trained_pruned_adapter(plan)
    gen = torch.Generator().manual_seed(0)
    recovered = recover_adapter(state, plan, linear_shapes(original.config), registry.get("recoverer", "normal"), generator=gen)
    module = "model.layers.4.self_attn.o_proj"
    a = recovered[f"base_model.model.{module}.lora_A.weight"]
    keep = plan.entries[module].keep_in
    pruned = torch.tensor(sorted(set(range(a.shape[1])) - set(keep.tolist())))
    assert torch.equal(a[:, keep], state[f"base_model.model.{module}.lora_A.weight"])
    assert torch.count_nonzero(a[:, pruned]) == a[:, pruned].numel()
    assert abs(float(a[:, pruned].std()) - 1 / R) < 0.1
    b = recovered["base_model.model.model.layers.4.self_attn.q_proj.lora_B.weight"]
    q_pruned = sorted(set(range(b.shape[0])) - set(plan.entries["model.layers.4.self_attn.q_proj"].keep_out.tolist()))
    assert torch.count_nonzero(b[q_pruned]) == 0


def test_adapter_that_does_not_fit_the_plan_is_an_error_naming_the_module():
    original = tiny_llama()
    plan_a = make_plan(original, "magnitude", ratio=0.5)
    plan_b = make_plan(original, "magnitude", ratio=0.25)
    _, state = trained_pruned_adapter(plan_a)
    zero = registry.get("recoverer", "zero")
    with pytest.raises(AdapterError, match=r"model\.layers\.4\.\S+: lora_[AB] has \d+ (rows|columns), the plan keeps \d+"):
        recover_adapter(state, plan_b, linear_shapes(original.config), zero)
    # an adapter for a bigger model: the unpruned layer 0 no longer matches
    bigger = tiny_llama(intermediate_size=128)
    with pytest.raises(AdapterError, match=r"model\.layers\.\d\.mlp\.\w+_proj: recovered lora_[AB] has shape"):
        recover_adapter(state, plan_a, linear_shapes(bigger.config), zero)


def test_empty_tensors_are_refused():
    original = tiny_llama()
    plan = make_plan(original, "magnitude")
    _, state = trained_pruned_adapter(plan)
    key = "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"
    state = {**state, key: torch.empty(0)}
    with pytest.raises(AdapterError, match="is empty"):
        recover_adapter(state, plan, linear_shapes(original.config), registry.get("recoverer", "zero"))


def test_recovery_does_not_loop_over_channels_in_python(monkeypatch):
    """Scatter is one index_copy_ per tensor (the reference code's `i not in list` loop is quadratic)."""
    calls = []
    real = torch.Tensor.index_copy_
    monkeypatch.setattr(torch.Tensor, "index_copy_", lambda self, *a: calls.append(1) or real(self, *a))
    original = tiny_llama()
    plan = make_plan(original, "magnitude")
    _, state = trained_pruned_adapter(plan)
    recover_adapter(state, plan, linear_shapes(original.config), registry.get("recoverer", "zero"))
    sliced = sum(isinstance(e, SliceEntry) for e in plan.entries.values())
    assert len(calls) == sliced  # one factor per sliced module
