"""The mask/index protocol: round trips, validation with module names, apply == materialize."""

import json

import pytest
import torch

from loram_core.errors import PlanError
from loram_core.plan import MaskEntry, ModelFingerprint, PrunePlan, PrunerInfo, SliceEntry
from loram_core.plan.apply import apply_plan, materialize_pruned, pruned_state_dict
from loram_core.plan.serialize import load_plan, save_plan
from loram_core.plan.validate import validate_plan
from loram_core.testing.tiny import tiny_llama
from loram_test_helpers import make_plan, mask_plan


@pytest.mark.parametrize("pruner", ["random", "magnitude"])
@pytest.mark.parametrize("gqa", [True, False])
def test_structured_plan_round_trips_and_validates(tmp_path, pruner, gqa):
    model = tiny_llama(gqa=gqa)
    plan = make_plan(model, pruner)
    validate_plan(plan, model.config)
    save_plan(plan, tmp_path)
    again = load_plan(tmp_path)
    assert again.equals(plan)
    assert again.base == plan.base and again.pruner == plan.pruner
    # default layer range of an 8-layer model: [4, 6)
    layers = {int(m.split(".")[2]) for m in plan.entries}
    assert layers == {4, 5}


def test_mask_plan_round_trips_bit_packed(tmp_path):
    model = tiny_llama()
    plan = mask_plan(model)
    save_plan(plan, tmp_path)
    assert load_plan(tmp_path).equals(plan)
    doc = json.loads((tmp_path / "plan.json").read_text())
    assert doc["entries"]["model.layers.1.self_attn.q_proj"]["kind"] == "mask"


def test_gqa_query_heads_follow_their_kv_head():
    model = tiny_llama(gqa=True)  # 8 query heads, 4 KV heads, head_dim 8: 2 query heads per KV head
    plan = make_plan(model, "random", seed=3)
    k = plan.entries["model.layers.4.self_attn.k_proj"].keep_out
    q = plan.entries["model.layers.4.self_attn.q_proj"].keep_out
    o = plan.entries["model.layers.4.self_attn.o_proj"].keep_in
    kv_heads = k.view(-1, 8)[:, 0] // 8
    assert len(kv_heads) == 4 - int(4 * 0.5)
    expected_q = torch.cat([torch.arange(h * 16, h * 16 + 16) for h in kv_heads.tolist()])
    assert torch.equal(q, expected_q) and torch.equal(o, expected_q)


def test_materialized_pruned_model_equals_applied():
    model = tiny_llama(model_type="qwen2")  # biases on q/k/v are sliced too
    plan = make_plan(model, "magnitude")
    applied = apply_plan(tiny_llama(model_type="qwen2"), plan)
    built = materialize_pruned(model.config, plan, pruned_state_dict(applied))
    ids = torch.randint(0, 128, (2, 20), generator=torch.Generator().manual_seed(0))
    assert torch.equal(applied(ids).logits, built(ids).logits)
    a, b = applied.state_dict(), built.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    q = applied.get_submodule("model.layers.4.self_attn.q_proj")
    assert q.weight.shape == (32, 64) and q.bias.shape == (32,)


def test_mask_plan_zeroes_weights_and_keeps_shapes():
    model = tiny_llama()
    plan = mask_plan(model)
    before = model.get_submodule("model.layers.1.self_attn.q_proj").weight.clone()
    apply_plan(model, plan)
    after = model.get_submodule("model.layers.1.self_attn.q_proj").weight
    mask = plan.entries["model.layers.1.self_attn.q_proj"].mask
    assert after.shape == before.shape
    assert torch.equal(after, before * mask)
    assert int((after.view(after.shape[0], -1, 4) == 0).sum(-1).min()) >= 2


def _with_entry(plan, module, entry):
    return PrunePlan(base=plan.base, pruner=plan.pruner, pattern=plan.pattern, entries={**plan.entries, module: entry})


def test_plan_breaking_kv_coupling_is_rejected_naming_module():
    model = tiny_llama()
    plan = make_plan(model, "magnitude")
    k = plan.entries["model.layers.4.self_attn.k_proj"]
    other = torch.tensor([h for h in range(4) if h not in (k.keep_out.view(-1, 8)[:, 0] // 8).tolist()])
    bad_v = SliceEntry(shape=k.shape, keep_out=(other[:, None] * 8 + torch.arange(8)).flatten())
    with pytest.raises(PlanError, match=r"model\.layers\.4\.self_attn\.v_proj: breaks the coupling"):
        validate_plan(_with_entry(plan, "model.layers.4.self_attn.v_proj", bad_v), model.config)


def test_plan_with_partial_head_is_rejected():
    model = tiny_llama()
    plan = make_plan(model, "magnitude")
    k = plan.entries["model.layers.4.self_attn.k_proj"]
    partial = SliceEntry(shape=k.shape, keep_out=k.keep_out[:-1])
    with pytest.raises(PlanError, match=r"k_proj: breaks the coupling .* partial KV group"):
        validate_plan(_with_entry(plan, "model.layers.4.self_attn.k_proj", partial), model.config)


def test_plan_missing_a_coupled_module_is_rejected():
    model = tiny_llama()
    plan = make_plan(model, "magnitude")
    entries = dict(plan.entries)
    del entries["model.layers.5.mlp.down_proj"]
    broken = PrunePlan(base=plan.base, pruner=plan.pruner, pattern=plan.pattern, entries=entries)
    with pytest.raises(PlanError, match=r"model\.layers\.5\.mlp\.down_proj: breaks the coupling"):
        validate_plan(broken, model.config)


def test_plan_for_another_model_is_rejected_with_module_and_shape():
    small = tiny_llama()
    plan = make_plan(small, "magnitude")
    bigger = tiny_llama(intermediate_size=128)
    with pytest.raises(PlanError, match="not this model"):
        validate_plan(plan, bigger.config)
    with pytest.raises(PlanError, match=r"model\.layers\.4\.mlp\.down_proj: plan expects weight shape \(64, 96\), model has \(64, 128\)"):
        validate_plan(plan, bigger.config, check_fingerprint=False)
    with pytest.raises(PlanError, match=r"shape \(64, 96\), model has \(64, 128\)"):
        apply_plan(bigger, plan)


def test_plan_naming_unknown_module_or_unprunable_axis_is_rejected():
    model = tiny_llama()
    plan = make_plan(model, "magnitude")
    ghost = _with_entry(plan, "model.layers.99.mlp.up_proj", SliceEntry(shape=(96, 64), keep_out=[0]))
    with pytest.raises(PlanError, match="model.layers.99.mlp.up_proj"):
        validate_plan(ghost, model.config)
    gate = plan.entries["model.layers.4.mlp.gate_proj"]
    hidden = _with_entry(plan, "model.layers.4.mlp.gate_proj", SliceEntry(shape=(96, 64), keep_out=gate.keep_out, keep_in=[0, 1]))
    with pytest.raises(PlanError, match=r"model\.layers\.4\.mlp\.gate_proj: its 'in' axis is not prunable"):
        validate_plan(hidden, model.config)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: SliceEntry(shape=(4, 4), keep_out=[2, 1]), "sorted and unique"),
        (lambda: SliceEntry(shape=(4, 4), keep_out=[0, 4]), "outside"),
        (lambda: MaskEntry(mask=torch.ones(4, 8, dtype=torch.bool), pattern="2:4"), "breaks 2:4"),
        (lambda: MaskEntry(mask=torch.ones(4, 8, dtype=torch.bool), pattern="4:4"), "0 < N < M"),
    ],
)
def test_malformed_entries_are_rejected(make, message):
    fp = ModelFingerprint("X", "llama", "0", 1)
    with pytest.raises(PlanError, match=message):
        PrunePlan(base=fp, pruner=PrunerInfo("t", "0"), pattern="structured", entries={"m": make()})


def test_corrupt_or_foreign_plan_files_raise_plan_error(tmp_path):
    model = tiny_llama()
    save_plan(make_plan(model), tmp_path)
    doc = json.loads((tmp_path / "plan.json").read_text())
    (tmp_path / "plan.json").write_text(json.dumps({**doc, "schema": 99}))
    with pytest.raises(PlanError, match="schema 99"):
        load_plan(tmp_path)
    (tmp_path / "plan.json").write_text(json.dumps(doc))
    data = (tmp_path / "plan.safetensors").read_bytes()
    (tmp_path / "plan.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(PlanError, match="unreadable plan"):
        load_plan(tmp_path)
    (tmp_path / "plan.safetensors").unlink()
    with pytest.raises(PlanError, match="plan.safetensors is missing"):
        load_plan(tmp_path)


def test_pruners_are_deterministic_for_a_seed():
    model = tiny_llama()
    assert make_plan(model, "random", seed=1).equals(make_plan(model, "random", seed=1))
    assert not make_plan(model, "random", seed=1).equals(make_plan(model, "random", seed=2))


def test_ratio_counts_follow_the_paper():
    model = tiny_llama(intermediate_size=96)
    plan = make_plan(model, "magnitude", ratio=0.3, layers="2:3")
    # KV heads kept = KV - int(KV * r) = 4 - 1; MLP channels kept = I - ceil(I * r) = 96 - 29
    assert plan.entries["model.layers.2.self_attn.k_proj"].keep_out.numel() == 3 * 8
    assert plan.entries["model.layers.2.mlp.up_proj"].keep_out.numel() == 96 - 29


def test_magnitude_removes_planted_zero_channels_first():
    model = tiny_llama()
    mlp = model.get_submodule("model.layers.4.mlp")
    dead = torch.tensor([3, 10, 50])
    with torch.no_grad():
        mlp.gate_proj.weight[dead] = 0
        mlp.up_proj.weight[dead] = 0
        mlp.down_proj.weight[:, dead] = 0
    plan = make_plan(model, "magnitude", ratio=0.03, layers="4:5", attention=False)  # ceil(96*0.03) = 3
    kept = plan.entries["model.layers.4.mlp.up_proj"].keep_out
    assert set(range(96)) - set(kept.tolist()) == set(dead.tolist())
