"""Every built-in family, both attention granularities: the pruned model computes what the original computes
with the removed units silenced (their input columns of o_proj / down_proj / c_proj zeroed). That holds only
if the family's fused segments, Conv1D layout and pruned attributes (head counts, split sizes) are right."""

from __future__ import annotations

import copy

import pytest
import torch

from loram_core.arch import adapter_for, family_groups
from loram_core.errors import PlanError
from loram_core.plan import ModelFingerprint, PrunerInfo, SliceEntry
from loram_core.plan.apply import apply_plan, materialize_pruned, pruned_state_dict
from loram_core.plan.layout import out_in_weight
from loram_core.plan.validate import validate_plan
from loram_core.prune_context import PruneContext
from loram_core.structured import StructuredConfig, kept_units, structured_plan
from loram_core.testing.tiny import tiny_llama

FAMILIES = {
    "llama": {}, "gemma": {"head_dim": 16}, "gemma2": {"head_dim": 16, "sliding_window": 8},
    "qwen3": {"head_dim": 16}, "phi3": {}, "gpt2": {"gqa": False},
}
CASES = [(t, u) for t in FAMILIES for u in ("kv_groups", "query_heads") if not (t == "gpt2" and u == "query_heads")]


def _plan(model, units: str, seed: int = 0):
    config = model.config
    ctx = PruneContext(model_config=config, arch=adapter_for(config), fingerprint=ModelFingerprint.from_config(config))
    gen = torch.Generator().manual_seed(seed)
    cfg = StructuredConfig(ratio=0.5, layers=(1, 7), attention_units=units)
    return structured_plan(model, cfg, ctx, PrunerInfo("test", "0"), lambda g: torch.rand(g.units, generator=gen)), ctx, cfg


def _silenced(model, plan, ctx, units):
    """The original with every removed unit's input columns of its "in" member zeroed."""
    model = copy.deepcopy(model)
    with torch.no_grad():
        for layer in range(1, 7):
            for group in family_groups(ctx.arch, ctx.model_config, layer, units):
                kept = kept_units(plan, group)
                removed = torch.ones(group.units, dtype=torch.bool)
                removed[kept] = False
                for member in group.members:
                    if member.axis == "in":
                        columns = group.channels(member, removed.nonzero().flatten())
                        out_in_weight(model.get_submodule(member.module))[:, columns] = 0
    return model


@pytest.mark.parametrize(("model_type", "units"), CASES, ids=[f"{t}-{u}" for t, u in CASES])
def test_the_pruned_model_is_the_original_with_removed_units_silenced(model_type, units):
    model = tiny_llama(3, model_type=model_type, **FAMILIES[model_type])
    plan, ctx, _ = _plan(model, units)
    validate_plan(plan, model.config)
    pruned = apply_plan(copy.deepcopy(model), plan)
    assert sum(p.numel() for p in pruned.parameters()) < sum(p.numel() for p in model.parameters())
    ids = torch.arange(48).reshape(2, 24) % 128
    with torch.no_grad():
        expected = _silenced(model, plan, ctx, units)(input_ids=ids).logits
        got = pruned(input_ids=ids).logits
        built = materialize_pruned(model.config, plan, pruned_state_dict(pruned))(input_ids=ids).logits
    assert torch.equal(got, built)  # materialized from config + plan + weights == applied in place
    assert (got - expected).abs().max().item() < 1e-5


def test_query_heads_keep_k_and_v_whole_and_every_kv_group_the_same_count():
    model = tiny_llama(0, model_type="llama")  # 8 query heads over 4 KV heads, head_dim 8
    plan, _, _ = _plan(model, "query_heads")
    entry = plan.entries["model.layers.2.self_attn.q_proj"]
    assert "model.layers.2.self_attn.k_proj" not in plan.entries and "model.layers.2.self_attn.v_proj" not in plan.entries
    heads = entry.keep_out.view(-1, 8)[:, 0] // 8
    assert torch.equal(torch.bincount(heads // 2, minlength=4), torch.ones(4, dtype=torch.int64))  # one of 2 per group
    assert torch.equal(plan.entries["model.layers.2.self_attn.o_proj"].keep_in, entry.keep_out)


def test_phi3_query_heads_keep_the_k_and_v_rows_of_the_fused_projection():
    model = tiny_llama(0, model_type="phi3")
    plan, _, _ = _plan(model, "query_heads")
    keep = plan.entries["model.layers.3.self_attn.qkv_proj"].keep_out
    assert keep.numel() == 32 + 2 * 32 and torch.equal(keep[32:], torch.arange(64, 128))  # q: 4 of 8 heads; k, v whole


def _evolve(plan, module, **axes):
    import attrs

    entries = dict(plan.entries)
    entries[module] = attrs.evolve(entries[module], **axes)
    return attrs.evolve(plan, entries=entries)


def test_a_fused_segment_that_breaks_its_coupling_is_rejected_naming_the_module():
    model = tiny_llama(0, model_type="phi3")
    plan, _, _ = _plan(model, "kv_groups")
    name = "model.layers.2.self_attn.qkv_proj"
    keep = plan.entries[name].keep_out
    broken = torch.cat([keep[keep < 64], torch.arange(64, 96), keep[keep >= 96]])  # k segment kept whole
    with pytest.raises(PlanError, match=rf"{name}: breaks the coupling of model\.layers\.2\.self_attn"):
        validate_plan(_evolve(plan, name, keep_out=broken), model.config)
    name = "model.layers.2.mlp.gate_up_proj"
    keep = plan.entries[name].keep_out
    shifted = torch.cat([keep[keep < 96], (keep[keep >= 96] + 1).clamp(max=191).unique()])  # up keeps other channels
    with pytest.raises(PlanError, match=rf"{name}: breaks the coupling of model\.layers\.2\.mlp"):
        validate_plan(_evolve(plan, name, keep_out=shifted), model.config)


def test_query_heads_kept_unevenly_across_kv_groups_are_rejected():
    model = tiny_llama(0, model_type="llama")
    plan, _, _ = _plan(model, "query_heads")
    uneven = torch.cat([torch.arange(0, 16), torch.arange(32, 48)])  # heads 0, 1 (KV group 0) and 4, 5 (group 2)
    broken = _evolve(_evolve(plan, "model.layers.2.self_attn.q_proj", keep_out=uneven),
                     "model.layers.2.self_attn.o_proj", keep_in=uneven)
    with pytest.raises(PlanError, match=r"q_proj: breaks the coupling .* different numbers of query heads"):
        validate_plan(broken, model.config)


def test_gpt2_plans_speak_out_in_although_conv1d_stores_in_out():
    model = tiny_llama(0, model_type="gpt2", gqa=False)
    plan, _, _ = _plan(model, "kv_groups")
    c_attn = plan.entries["transformer.h.2.attn.c_attn"]
    assert isinstance(c_attn, SliceEntry) and c_attn.shape == (192, 64)  # Conv1D weight is [64, 192]
    assert tuple(model.transformer.h[2].attn.c_attn.weight.shape) == (64, 192)
    assert c_attn.keep_out.numel() == 3 * 32 and plan.entries["transformer.h.2.mlp.c_proj"].shape == (64, 96)


@pytest.mark.parametrize(("model_type", "units"), CASES, ids=[f"{t}-{u}" for t, u in CASES])
def test_streamed_pruning_writes_what_in_memory_pruning_gives(model_type, units, tmp_path):
    from loram_core.checkpoint import CheckpointReader
    from loram_core.lifecycle.pruned_folder import stream_pruned_weights
    from loram_core.plan.apply import empty_model
    from loram_core.checkpoint import load_weights

    model = tiny_llama(3, model_type=model_type, **FAMILIES[model_type])
    model.save_pretrained(tmp_path / "model")
    plan, _, _ = _plan(model, units)
    (tmp_path / "pruned").mkdir()
    stream_pruned_weights(CheckpointReader.open(tmp_path / "model"), plan, empty_model(model.config), tmp_path / "pruned")
    streamed = load_weights(tmp_path / "pruned")
    in_memory = pruned_state_dict(apply_plan(copy.deepcopy(model), plan))
    assert set(streamed) == set(in_memory)
    assert all(torch.equal(streamed[k], in_memory[k]) for k in in_memory)


@pytest.mark.parametrize(("model_type", "units"), CASES, ids=[f"{t}-{u}" for t, u in CASES])
def test_a_broken_coupling_is_rejected_naming_the_module(model_type, units):
    model = tiny_llama(3, model_type=model_type, **FAMILIES[model_type])
    plan, ctx, _ = _plan(model, units)
    attention = family_groups(ctx.arch, model.config, 3, units)[0]
    output = next(m.module for m in attention.members if m.axis == "in")  # o_proj / c_proj
    entries = {k: v for k, v in plan.entries.items() if k != output}
    broken = type(plan)(base=plan.base, pruner=plan.pruner, pattern=plan.pattern, entries=entries)
    layer = attention.name.rsplit(".", 1)[0].replace(".", r"\.")
    with pytest.raises(PlanError, match=rf"^{layer}\.\S+: breaks the coupling of {attention.name.replace('.', chr(92) + '.')}"):
        validate_plan(broken, model.config)
