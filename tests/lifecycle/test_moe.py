"""Mixtures of experts (Mixtral, Qwen3-MoE, OLMoE) on tiny random models: expert-channel and whole-expert
plans, their validation, the pruned model's arithmetic, recovery per expert, and the lifecycle end to end."""

from __future__ import annotations

import copy
import json

import attrs
import pytest
import torch

from loram_core.arch import adapter_for
from loram_core.builtin.magnitude import MagnitudePruner
from loram_core.builtin.random_structured import RandomStructuredPruner
from loram_core.errors import PlanError
from loram_core.plan import ModelFingerprint
from loram_core.plan.apply import apply_plan, materialize_pruned, pruned_state_dict
from loram_core.plan.serialize import plan_from_bytes, plan_to_bytes
from loram_core.plan.validate import validate_plan
from loram_core.prune_context import PruneContext
from loram_core.structured import StructuredConfig
from loram_core.testing.tiny import tiny_llama

FAMILIES = ("mixtral", "qwen3_moe", "olmoe")
IDS = torch.arange(48).reshape(2, 24) % 128


def _context(model):
    config = model.config
    windows = torch.Generator().manual_seed(0)
    return PruneContext(model_config=config, arch=adapter_for(config), fingerprint=ModelFingerprint.from_config(config),
                        calibration=lambda **_: torch.randint(0, 128, (4, 32), generator=windows))


def _plan(model, pruner=None, **options):
    cfg = StructuredConfig(**{"ratio": 0.5, "layers": (1, 7), **options})
    return (pruner or MagnitudePruner()).plan(model, cfg, _context(model))


@pytest.mark.parametrize("model_type", FAMILIES)
def test_plans_keep_every_expert_rectangular_and_round_trip(model_type):
    model = tiny_llama(0, model_type=model_type)
    plan = _plan(model, experts_ratio=0.5)
    validate_plan(plan, model.config)
    gate_up, down = plan.entries["model.layers.3.mlp.experts.gate_up_proj"], plan.entries["model.layers.3.mlp.experts.down_proj"]
    assert gate_up.pruned_shape == (2, 96, 64) and down.pruned_shape == (2, 64, 48)  # 2 of 4 experts, 48 of 96 channels
    assert torch.equal(gate_up.keep_out[:, 48:], gate_up.keep_out[:, :48] + 96) and torch.equal(down.keep_in, gate_up.keep_out[:, :48])
    assert torch.equal(plan.entries["model.layers.3.mlp.gate.weight"].keep_experts, gate_up.keep_experts)
    assert not torch.equal(gate_up.keep_out[0], gate_up.keep_out[1])  # each expert its own channels
    assert plan_from_bytes(*plan_to_bytes(plan)).equals(plan)
    assert "model.layers.0.mlp.experts.gate_up_proj" not in plan.entries  # the dense first layers stay whole


def test_whole_experts_go_by_router_usage_and_random_draws_its_own():
    model = tiny_llama(0, model_type="mixtral")
    from loram_core.expert_usage import expert_usage

    ctx = _context(model)
    groups = adapter_for(model.config).expert_groups(model.config, 2)
    usage = expert_usage(model, groups, ctx.calibration())["model.layers.2.mlp"]
    assert usage.sum().item() == 4 * 32 * 2  # every token picks top-2
    kept = _plan(model, ratio=0.0, experts_ratio=0.5).entries["model.layers.2.mlp.gate.weight"].keep_experts
    assert torch.equal(kept, torch.argsort(usage, descending=True, stable=True)[:2].sort().values)
    random = _plan(model, RandomStructuredPruner(), experts_ratio=0.5)
    assert random.entries["model.layers.2.mlp.gate.weight"].keep_experts.numel() == 2


@pytest.mark.parametrize("model_type", FAMILIES)
def test_expert_channel_pruning_is_the_original_with_those_channels_silenced(model_type):
    model = tiny_llama(1, model_type=model_type)
    plan = _plan(model)  # channels only: every expert keeps half its own channels
    pruned = apply_plan(copy.deepcopy(model), plan)
    silenced = copy.deepcopy(model)
    with torch.no_grad():
        for name, entry in plan.entries.items():
            if name.endswith("experts.down_proj"):
                down = silenced.get_parameter(name)
                mask = torch.ones_like(down, dtype=torch.bool)
                mask.scatter_(2, entry.keep_in[:, None, :].expand(-1, down.shape[1], -1), False)
                down[mask] = 0
            elif name.endswith("o_proj"):  # attention units removed: their o_proj columns
                o = silenced.get_submodule(name).weight
                cols = torch.ones(o.shape[1], dtype=torch.bool)
                cols[entry.keep_in] = False
                o[:, cols] = 0
        expected, got = silenced(input_ids=IDS).logits, pruned(input_ids=IDS).logits
        built = materialize_pruned(model.config, plan, pruned_state_dict(pruned))(input_ids=IDS).logits
    assert torch.equal(got, built)
    assert (got - expected).abs().max().item() < 1e-5


def test_removing_experts_equals_a_model_built_with_the_kept_experts():
    model = tiny_llama(1, model_type="mixtral")
    plan = _plan(model, ratio=0.0, experts_ratio=0.5)
    pruned = apply_plan(copy.deepcopy(model), plan)
    small = copy.deepcopy(model.config)
    small.num_local_experts = 2
    reference = type(model)(small).eval()
    state = {k: v for k, v in model.state_dict().items()}
    for name, entry in plan.entries.items():
        state[name] = entry.apply(state[name])
    assert all(f"model.layers.{i}.mlp.gate.weight" in plan.entries for i in range(1, 7))
    # layers 0 and 7 keep their 4 experts: compare one pruned block with the 2-expert reference block
    layer, ref_layer = pruned.model.layers[3].mlp, reference.model.layers[3].mlp
    ref_layer.load_state_dict({k.removeprefix("model.layers.3.mlp."): v for k, v in state.items()
                               if k.startswith("model.layers.3.mlp.")})
    hidden = torch.randn(2, 24, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(layer(hidden), ref_layer(hidden))
    assert pruned.model.layers[3].mlp.experts.num_experts == 2 and pruned.model.layers[3].mlp.gate.top_k == 2


def _evolve(plan, name, **fields):
    return attrs.evolve(plan, entries={**plan.entries, name: attrs.evolve(plan.entries[name], **fields)})


def test_broken_expert_plans_are_rejected_naming_the_parameter():
    model = tiny_llama(0, model_type="mixtral")
    plan = _plan(model, experts_ratio=0.5)
    gate_up, down, router = (f"model.layers.3.mlp.{p}" for p in ("experts.gate_up_proj", "experts.down_proj", "gate.weight"))
    rows = plan.entries[gate_up].keep_out
    with pytest.raises(PlanError, match=rf"{gate_up}: keep_out: experts keep 94, 96 channels; .*rectangular"):
        _evolve(plan, gate_up, keep_out=[rows[0][:-2], rows[1]])
    others = torch.tensor([e for e in range(4) if e not in plan.entries[router].keep_experts.tolist()])
    with pytest.raises(PlanError, match=rf"{router}: breaks the router coupling of model\.layers\.3\.mlp"):
        validate_plan(_evolve(plan, router, keep_experts=others), model.config)
    up_shifted = torch.cat([rows[:, :48], (rows[:, 48:] + 1).clamp(max=191)], dim=1)
    with pytest.raises(PlanError, match=rf"{gate_up}: breaks the coupling .* gate rows than in its up rows"):
        validate_plan(_evolve(plan, gate_up, keep_out=up_shifted), model.config)
    with pytest.raises(PlanError, match=rf"{down}: breaks the coupling"):
        validate_plan(_evolve(plan, down, keep_in=plan.entries[down].keep_in.flip(0)), model.config)
    entries = {k: v for k, v in plan.entries.items() if k != router}
    with pytest.raises(PlanError, match=rf"{router}: breaks the router coupling"):
        validate_plan(attrs.evolve(plan, entries=entries), model.config)


TARGETS = ("experts.gate_up_proj", "experts.down_proj")


def _delta(a, b, experts):
    """Per-expert LoRA deltas [experts, out, in] from PEFT's factors (docs/architecture.md, "Recovery")."""
    a = a.reshape(experts, -1, a.shape[1])
    b = b.reshape(b.shape[0], -1, experts)
    return torch.einsum("ore,eri->eoi", b, a)


@pytest.mark.parametrize("model_type", FAMILIES)
def test_recovery_scatters_each_experts_factors_to_its_own_channels_exactly(model_type):
    import peft

    from loram_core.builtin.recoverers import ZeroFill
    from loram_core.lifecycle.recover import expert_parameters
    from loram_core.plan.fingerprint import linear_shapes
    from loram_core.recover import recover_adapter

    model = tiny_llama(0, model_type=model_type)
    plan = _plan(model, experts_ratio=0.5)
    pruned = apply_plan(copy.deepcopy(model), plan)
    lora = peft.get_peft_model(pruned, peft.LoraConfig(r=2, lora_alpha=2, target_modules=["o_proj"],
                                                       target_parameters=list(TARGETS), lora_dropout=0.0))
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in lora.named_parameters():
            if "lora_" in name:  # integer factors: the products below are exact
                p.copy_(torch.randint(-3, 4, p.shape, generator=gen).float())
    state = peft.get_peft_model_state_dict(lora)
    parameters, shapes = expert_parameters(model.config, TARGETS)
    recovered = recover_adapter(state, plan, linear_shapes(model.config), ZeroFill(), parameters=parameters,
                                parameter_shapes=shapes)
    checked = 0
    for key_module, name in parameters.items():
        prefix = f"base_model.model.{key_module}"
        if f"{prefix}.lora_A.weight" not in state:
            continue
        entry = plan.entries.get(name)
        full = _delta(recovered[f"{prefix}.lora_A.weight"], recovered[f"{prefix}.lora_B.weight"], shapes[name][0])
        if entry is None:  # a layer outside the range: copied unchanged
            assert torch.equal(recovered[f"{prefix}.lora_A.weight"], state[f"{prefix}.lora_A.weight"])
            continue
        small = _delta(state[f"{prefix}.lora_A.weight"], state[f"{prefix}.lora_B.weight"], entry.experts)
        expected = torch.zeros(shapes[name])
        for i, e in enumerate(entry.keep_experts.tolist()):
            rows = entry.keep_out[i] if entry.keep_out is not None else torch.arange(shapes[name][1])
            cols = entry.keep_in[i] if entry.keep_in is not None else torch.arange(shapes[name][2])
            expected[e][rows[:, None], cols[None, :]] = small[i]
        assert torch.equal(full, expected), name  # each kept expert's delta on its own channels, zero elsewhere
        removed = [e for e in range(shapes[name][0]) if e not in entry.keep_experts.tolist()]
        assert removed and torch.equal(full[removed], torch.zeros_like(full[removed]))  # a removed expert: no delta
        checked += 1
    assert checked == 2 * 6  # two expert parameters in each of the six pruned layers


# Shakespeare for one family (the plays take a while to tokenize), a small text for the others
@pytest.mark.parametrize(("model_type", "data", "steps"), [("mixtral", "shakespeare", 40), ("qwen3_moe", None, 30),
                                                           ("olmoe", None, 30)])
def test_a_moe_trains_and_its_recovered_adapter_improves_the_original(model_type, data, steps, tmp_path):
    from loram_core.cli.main import main
    from loram_core.testing.tiny import FAST_FLAGS, peft_and_merged_logits, save_tiny_model

    model = save_tiny_model(tmp_path / "model", seed=2, model_type=model_type)
    if data is None:
        data = tmp_path / "data.txt"
        data.write_text("\n\n".join(f"the king said to the queen of the sea, {i} times, and the sea said nothing."
                                     for i in range(200)))
    run = tmp_path / "run"
    flags = list(FAST_FLAGS)
    flags[flags.index("--steps") + 1] = str(steps)
    assert main(["run", "--model", str(model), "--data", str(data), "--pruner", "magnitude", "--ratio", "0.5",
                 "--layers", "1:7", "--pruner-opt", "experts_ratio=0.5", "--target-parameters", ",".join(TARGETS),
                 "--dropout", "0", "--lr", "3e-3", "--out", str(run), "--json", *flags]) == 0
    report = json.loads((run / "report.json").read_text())
    assert report["ppl"]["loram"] < report["ppl"]["original"]
    assert report["params"]["pruned"] < report["params"]["original"]
    untuned, a, b = peft_and_merged_logits(model, run, IDS)
    assert (a - b).abs().max().item() < 1e-4 and (a - untuned).abs().max().item() > 1e-4


def test_estimate_counts_mixtral_8x7b_total_and_active_parameters(tmp_path, capsys):
    from transformers import MixtralConfig

    from loram_core.cli.main import main

    MixtralConfig(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                  num_key_value_heads=8, vocab_size=32000, num_local_experts=8, num_experts_per_tok=2,
                  max_position_embeddings=32768, tie_word_embeddings=False).save_pretrained(tmp_path / "mixtral")
    assert main(["estimate", "--model", str(tmp_path / "mixtral"), "--pruner", "magnitude", "--ratio", "0.5",
                 "--pruner-opt", "experts_ratio=0.25", "--json"]) == 0
    params = json.loads(capsys.readouterr().out)["params"]
    assert abs(params["original"] - 46.7e9) / 46.7e9 < 0.01  # the published 46.7B
    assert abs(params["active"] - 12.9e9) / 12.9e9 < 0.01  # and 12.9B used per token (two of eight experts)
    # layers 4..29: 2 of 8 experts go (with their router rows), the 6 kept lose half their channels, and 4 of
    # 8 KV groups go (each: 4 query heads' q rows and o columns, one head's k and v rows, head_dim 128)
    expert, kv_group = 3 * 14336 * 4096, (2 * 4 * 128 + 2 * 128) * 4096
    assert params["original"] - params["pruned"] == 26 * (2 * (expert + 4096) + 6 * expert // 2 + 4 * kv_group)


def test_estimate_equals_what_a_tiny_moe_plan_removes():
    from loram_core.estimate.params import estimate_params
    from loram_core.registry import get

    model = tiny_llama(0, model_type="qwen3_moe")
    cfg = StructuredConfig(ratio=0.5, experts_ratio=0.5)
    estimate = estimate_params(model.config, adapter_for(model.config), get("pruner", "magnitude"), cfg)
    pruned = apply_plan(copy.deepcopy(model), MagnitudePruner().plan(model, cfg, _context(model)))
    assert estimate.pruned == sum(p.numel() for p in pruned.parameters())
    assert estimate.active == sum(p.numel() for p in model.parameters()) - 8 * 2 * 3 * 96 * 64
