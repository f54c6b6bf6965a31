"""Plans from ``llmpruner``: couplings on GQA, determinism, planted unimportant units, layer vs global ranking."""

import pytest
import torch

from llmpruner_helpers import make_context
from loram_core.configs import build_config
from loram_core.errors import LoramError
from loram_core.plan.apply import apply_plan
from loram_core.plan.serialize import plan_from_bytes, plan_to_bytes
from loram_core.plan.validate import validate_plan
from loram_core.testing.tiny import tiny_llama
from loram_plugin_llmpruner import LLMPruner, LLMPrunerConfig

PRUNER = LLMPruner()
HEADS, KV, HEAD_DIM, INTER = 8, 4, 8, 96  # the tiny GQA model: 2 query heads per KV head


def config(**options):
    return build_config(LLMPrunerConfig, {"ratio": 0.5, "layers": "1:7", **options}, owner="pruner 'llmpruner'")


def kept_kv_units(plan, layer):
    entry = plan.entries.get(f"model.layers.{layer}.self_attn.k_proj")  # absent: the layer keeps everything
    return torch.arange(KV) if entry is None else entry.keep_out.view(-1, HEAD_DIM)[:, 0] // HEAD_DIM


def kept_mlp_units(plan, layer):
    entry = plan.entries.get(f"model.layers.{layer}.mlp.gate_proj")
    return torch.arange(INTER) if entry is None else entry.keep_out


@pytest.mark.parametrize("criterion", ["param_first", "param_second", "param_mix", "l1", "l2"])
def test_gqa_plan_removes_query_heads_with_their_kv_head(criterion):
    model = tiny_llama(seed=0, gqa=True)
    plan = PRUNER.plan(model, config(criterion=criterion), make_context(model))
    validate_plan(plan, model.config)
    per_kv = HEADS // KV
    for layer in range(1, 7):
        attn = f"model.layers.{layer}.self_attn"
        kv = kept_kv_units(plan, layer)
        assert kv.numel() == KV - int(KV * 0.5)
        # HF repeat_kv order: query head j reads KV head j // per_kv.
        q_heads = torch.tensor([j for j in range(HEADS) if j // per_kv in kv.tolist()])
        q_rows = (q_heads[:, None] * HEAD_DIM + torch.arange(HEAD_DIM)).flatten()
        kv_rows = (kv[:, None] * HEAD_DIM + torch.arange(HEAD_DIM)).flatten()
        assert torch.equal(plan.entries[f"{attn}.q_proj"].keep_out, q_rows)
        assert torch.equal(plan.entries[f"{attn}.o_proj"].keep_in, q_rows)
        assert torch.equal(plan.entries[f"{attn}.k_proj"].keep_out, kv_rows)
        assert torch.equal(plan.entries[f"{attn}.v_proj"].keep_out, kv_rows)
        mlp = kept_mlp_units(plan, layer)
        assert mlp.numel() == INTER - 48
        assert torch.equal(plan.entries[f"model.layers.{layer}.mlp.up_proj"].keep_out, mlp)
        assert torch.equal(plan.entries[f"model.layers.{layer}.mlp.down_proj"].keep_in, mlp)
    assert not any(".layers.0." in m or ".layers.7." in m for m in plan.entries)
    apply_plan(model, plan)  # the pruned model runs
    model(torch.zeros(1, 5, dtype=torch.long))


def test_plan_is_deterministic_for_a_seed_and_round_trips():
    a = PRUNER.plan(tiny_llama(seed=0), config(criterion="param_mix"), make_context(tiny_llama(seed=0), seed=7))
    b = PRUNER.plan(tiny_llama(seed=0), config(criterion="param_mix"), make_context(tiny_llama(seed=0), seed=7))
    assert a.equals(b)
    assert plan_from_bytes(*plan_to_bytes(a)).equals(a)
    params = a.pruner.params
    assert (params["criterion"], params["aggregation"], params["ranking"]) == ("param_mix", "sum", "layer")
    assert (params["samples"], params["seq_len"], params["seed"], params["layers"]) == (4, 16, 7, [1, 7])
    other = PRUNER.plan(tiny_llama(seed=0), config(criterion="param_mix"), make_context(tiny_llama(seed=0), seed=8))
    assert other.pruner.params["seed"] == 8


PLANTED_LAYERS = (2, 5)
PLANTED_KV = 3
PLANTED_MLP = torch.tensor([0, 5, 17, 18, 40, 41, 42, 60, 61, 77, 90, 95])  # 12 of 96 = ceil(96 * 0.125)


def planted_model():
    """Whole KV group 3 and 12 MLP channels zeroed (every coupled row and column) in layers 2 and 5."""
    model = tiny_llama(seed=3, gqa=True)
    q_rows = slice(PLANTED_KV * 2 * HEAD_DIM, (PLANTED_KV + 1) * 2 * HEAD_DIM)
    kv_rows = slice(PLANTED_KV * HEAD_DIM, (PLANTED_KV + 1) * HEAD_DIM)
    with torch.no_grad():
        for layer in PLANTED_LAYERS:
            attn, mlp = model.model.layers[layer].self_attn, model.model.layers[layer].mlp
            attn.q_proj.weight[q_rows] = 0
            attn.k_proj.weight[kv_rows] = 0
            attn.v_proj.weight[kv_rows] = 0
            attn.o_proj.weight[:, q_rows] = 0
            mlp.gate_proj.weight[PLANTED_MLP] = 0
            mlp.up_proj.weight[PLANTED_MLP] = 0
            mlp.down_proj.weight[:, PLANTED_MLP] = 0
    return model


def removed(kept, total):
    mask = torch.ones(total, dtype=torch.bool)
    mask[kept] = False
    return mask.nonzero().flatten()


@pytest.mark.parametrize("criterion", ["param_first", "l1", "l2", "param_second", "param_mix"])
@pytest.mark.parametrize("aggregation", ["sum", "prod"])
def test_planted_zero_units_are_exactly_the_ones_removed(criterion, aggregation):
    model = planted_model()
    # 0.25 removes int(4 * 0.25) = 1 KV group per layer; 0.125 removes ceil(96 * 0.125) = 12 channels.
    for ratio, kind in ((0.25, "attention"), (0.125, "mlp")):
        cfg = config(ratio=ratio, layers="0:8", criterion=criterion, aggregation=aggregation,
                     attention=kind == "attention", mlp=kind == "mlp")
        plan = PRUNER.plan(model, cfg, make_context(model))
        validate_plan(plan, model.config)
        for layer in PLANTED_LAYERS:
            if kind == "attention":
                assert removed(kept_kv_units(plan, layer), KV).tolist() == [PLANTED_KV]
            else:
                assert torch.equal(removed(kept_mlp_units(plan, layer), INTER), PLANTED_MLP)


def test_global_ranking_takes_the_planted_units_first_and_keeps_the_overall_ratio():
    model = planted_model()
    with torch.no_grad():  # a second dead KV group in layer 2: global ranking may take two there
        model.model.layers[2].self_attn.k_proj.weight[:HEAD_DIM] = 0
        model.model.layers[2].self_attn.v_proj.weight[:HEAD_DIM] = 0
        model.model.layers[2].self_attn.q_proj.weight[: 2 * HEAD_DIM] = 0
        model.model.layers[2].self_attn.o_proj.weight[:, : 2 * HEAD_DIM] = 0
    ctx = make_context(model)
    glob = PRUNER.plan(model, config(ratio=0.25, layers="0:8", ranking="global"), ctx)
    local = PRUNER.plan(model, config(ratio=0.25, layers="0:8", ranking="layer"), ctx)
    for plan in (glob, local):
        validate_plan(plan, model.config)
        kv_removed = sum(KV - kept_kv_units(plan, layer).numel() for layer in range(8))
        mlp_removed = sum(INTER - kept_mlp_units(plan, layer).numel() for layer in range(8))
        assert (kv_removed, mlp_removed) == (8 * 1, 8 * 24)  # the same overall ratio either way
        assert all(kept_kv_units(plan, layer).numel() >= 1 for layer in range(8))
    assert removed(kept_kv_units(glob, 2), KV).tolist() == [0, PLANTED_KV]
    assert removed(kept_kv_units(glob, 5), KV).tolist() == [PLANTED_KV]
    assert removed(kept_kv_units(local, 2), KV).tolist() == [PLANTED_KV]  # one per layer; a tie keeps the lower index
    for layer in PLANTED_LAYERS:
        assert set(PLANTED_MLP.tolist()) <= set(removed(kept_mlp_units(glob, layer), INTER).tolist())
    assert glob.pruner.params["ranking"] == "global" and glob.pruner.params["layers"] == [0, 8]


def test_global_ranking_never_empties_a_group():
    model = tiny_llama(seed=0)
    with torch.no_grad():  # layer 3 is worth nothing: global ranking would take all of it if allowed
        for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
            getattr(model.model.layers[3].self_attn, name).weight.mul_(1e-6)
    plan = PRUNER.plan(model, config(ratio=0.5, layers="1:7", ranking="global", mlp=False, criterion="l2"), make_context(model))
    validate_plan(plan, model.config)
    assert kept_kv_units(plan, 3).numel() == 1
    assert sum(KV - kept_kv_units(plan, layer).numel() for layer in range(1, 7)) == 6 * 2


def test_per_layer_rows_describe_the_plan_and_print_as_a_table(capsys):
    model = planted_model()
    plan = PRUNER.plan(model, config(ratio=0.25, layers="2:6"), make_context(model, progress=True))
    rows = plan.pruner.params["per_layer"]
    assert [r["layer"] for r in rows] == [2, 3, 4, 5]
    for row in rows:
        assert row["kv_groups"] == [3, 4] and row["mlp_channels"] == [72, 96]
        assert 0 <= row["attention_removed_share"] < 0.25 and 0 <= row["mlp_removed_share"] < 0.25
    assert rows[0]["attention_removed_share"] == 0.0 and rows[3]["mlp_removed_share"] > 0  # planted layer 2 / 5
    err = capsys.readouterr().err
    assert "KV groups kept" in err and "72/96" in err and "calibration samples" in err


@pytest.mark.parametrize(
    "options, message",
    [
        ({"criterion": "taylor"}, "criterion must be one of param_first, param_second, param_mix, l1, l2, got 'taylor'"),
        ({"aggregation": "median"}, "aggregation must be one of sum, mean, max, prod, got 'median'"),
        ({"ranking": "local"}, "ranking must be one of layer, global, got 'local'"),
        ({"samples": 0}, "samples must be an integer >= 1"),
        ({"seq_len": 1}, "seq_len must be an integer >= 2"),
        ({"attention": "yes"}, "attention must be true or false"),
        ({"ratio": 1.0}, "ratio must be in [0, 1)"),
        ({"layers": "4-8"}, "layers must look like START:END"),
        ({"taylor": "param_first"}, "unknown option(s) taylor"),
    ],
)
def test_config_errors_are_clear(options, message):
    with pytest.raises(LoramError) as err:
        config(**options)
    assert str(err.value).startswith("pruner 'llmpruner': ") and message in str(err.value)


def test_taylor_criteria_need_calibration_data_but_norms_do_not():
    model = tiny_llama(seed=0)
    ctx = make_context(model)
    import attrs

    no_data = attrs.evolve(ctx, calibration=None)
    with pytest.raises(LoramError, match="needs calibration data"):
        PRUNER.plan(model, config(), no_data)
    plan = PRUNER.plan(model, config(criterion="l1"), no_data)
    assert plan.pruner.params["samples"] is None


@pytest.mark.parametrize("ranking", ["layer", "global"])
def test_align_to_keeps_multiples_and_records_the_ratio_reached(ranking):
    model = tiny_llama(seed=0, gqa=True)
    plan = PRUNER.plan(model, config(criterion="l2", ranking=ranking, ratio=0.3, align_to=32), make_context(model))
    validate_plan(plan, model.config)
    kept = [kept_mlp_units(plan, layer).numel() for layer in range(1, 7)]
    assert all(k % 32 == 0 or k == INTER for k in kept), kept
    reached = plan.pruner.params["ratio_reached"]
    assert reached["mlp"] == round(1 - sum(kept) / (6 * INTER), 6) and plan.pruner.params["align_to"] == 32
    if ranking == "layer":  # 96 - ceil(28.8) = 67 -> 64 kept in every layer
        assert kept == [64] * 6
