"""``align_to``: structured pruners keep widths that are multiples of N, and the plan records the ratio reached."""

import pytest

from loram_core import registry
from loram_core.arch import adapter_for
from loram_core.configs import build_config
from loram_core.errors import LoramError
from loram_core.estimate.params import estimate_params
from loram_core.plan import ModelFingerprint
from loram_core.plan.apply import apply_plan
from loram_core.plan.validate import validate_plan
from loram_core.structured import PruneContext
from loram_core.testing.tiny import tiny_llama


def smollm2_groups():
    from transformers import LlamaConfig

    config = LlamaConfig(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                         num_key_value_heads=3, head_dim=64, vocab_size=49152)
    return config, {g.kind: g for g in adapter_for(config).groups(config, 4)}


def test_rounding_of_kept_units_is_to_the_nearest_multiple():
    _, groups = smollm2_groups()
    mlp, attention = groups["mlp"], groups["attention"]
    # ratio 0.3: ceil(1536 x 0.3) = 461 removed, 1075 kept -> 1088 = 34 x 32 kept (nearest multiple of 32)
    assert mlp.removed(0.3) == 461 and mlp.removed(0.3, align_to=32) == 1536 - 1088
    assert mlp.removed(0.3, align_to=64) == 1536 - 1088  # 1075 / 64 = 16.8 -> 17 x 64
    assert mlp.removed(0.5, align_to=32) == 768  # already a multiple: unchanged
    assert mlp.removed(0.0, align_to=32) == 0
    # a KV group spans 3 x 64 query rows and 64 KV rows: every kept count is a multiple of 32 already
    assert attention.unit_step(32) == 1 and attention.removed(0.5, align_to=32) == attention.removed(0.5)
    assert attention.unit_step(128) == 2  # 64-row KV heads: an even number of them
    # never fewer than one step, never a whole group
    assert mlp.removed(0.99, align_to=32) == 1536 - 32
    assert mlp.aligned_keep(1530, 64) == 1536  # rounding up past the dense width keeps the dense width


@pytest.mark.parametrize("pruner", ["magnitude", "random"])
def test_structured_pruners_keep_multiples_and_record_the_ratio_reached(pruner):
    model = tiny_llama(seed=0, intermediate_size=100)
    cfg = model.config
    ctx = PruneContext(cfg, adapter_for(cfg), ModelFingerprint.from_config(cfg, "tiny"))
    p = registry.get("pruner", pruner)
    plain = p.plan(model, build_config(p.config_cls, {"ratio": 0.3, "layers": "1:7"}, owner=pruner), ctx)
    plan = p.plan(model, build_config(p.config_cls, {"ratio": 0.3, "layers": "1:7", "align_to": 32}, owner=pruner), ctx)
    validate_plan(plan, cfg)
    for layer in range(1, 7):
        mlp = f"model.layers.{layer}.mlp"
        # 100 - ceil(30) = 70 kept; nearest multiple of 32 is 64
        assert plain.entries[f"{mlp}.gate_proj"].keep_out.numel() == 70
        assert plan.entries[f"{mlp}.gate_proj"].keep_out.numel() == 64
        assert plan.entries[f"{mlp}.down_proj"].keep_in.numel() == 64
        # 4 KV heads of 8 rows (16 query rows each): 3 kept is 24 KV rows; the nearest multiple of 32 is all 4
        assert plain.entries[f"model.layers.{layer}.self_attn.k_proj"].keep_out.numel() == 24
        assert f"model.layers.{layer}.self_attn.k_proj" not in plan.entries
    assert plain.pruner.params["ratio_reached"] == {"attention": 0.25, "mlp": 0.3}
    assert plan.pruner.params["ratio_reached"] == {"attention": 0.0, "mlp": 0.36}
    assert plan.pruner.params["align_to"] == 32
    # the estimate counts what the plan removes
    pcfg = build_config(p.config_cls, {"ratio": 0.3, "layers": "1:7", "align_to": 32}, owner=pruner)
    estimate = estimate_params(cfg, adapter_for(cfg), p, pcfg)
    pruned = sum(t.numel() for t in apply_plan(tiny_llama(seed=0, intermediate_size=100), plan).parameters())
    assert estimate.pruned == pruned


@pytest.mark.parametrize("value", [0, -32, 1.5, True])
def test_a_bad_align_to_is_a_clear_error(value):
    p = registry.get("pruner", "magnitude")
    with pytest.raises(LoramError, match="align_to must be a positive integer"):
        build_config(p.config_cls, {"ratio": 0.3, "align_to": value}, owner="pruner 'magnitude'")
