"""LLM-Pruner on mixtures of experts: Taylor importance of every expert's channels from the gradients of the
fused 3-D expert parameters; whole experts by router usage; the plan validates under both rankings."""

from __future__ import annotations

import copy

import pytest
import torch

from loram_core.arch import adapter_for
from loram_core.builtin.magnitude import expert_channel_norms
from loram_core.plan import ModelFingerprint
from loram_core.plan.apply import apply_plan
from loram_core.plan.validate import validate_plan
from loram_core.prune_context import PruneContext
from loram_core.testing.tiny import tiny_llama
from loram_plugin_llmpruner.calibrate import calibration_gradients
from loram_plugin_llmpruner.config import LLMPrunerConfig
from loram_plugin_llmpruner.importance import expert_channel_importance
from loram_plugin_llmpruner.pruner import LLMPruner

WINDOWS = torch.randint(0, 128, (4, 32), generator=torch.Generator().manual_seed(0))


def _context(model):
    config = model.config
    return PruneContext(model_config=config, arch=adapter_for(config), fingerprint=ModelFingerprint.from_config(config),
                        calibration=lambda **_: WINDOWS, progress=False)


def test_l2_channel_importance_is_the_squared_norm_magnitude_ranks_by():
    model = tiny_llama(0, model_type="mixtral")
    group = adapter_for(model.config).expert_groups(model.config, 3)[0]
    l2 = expert_channel_importance(model, group, "l2", "sum")
    assert l2.shape == (4, 96)
    assert torch.allclose(l2, expert_channel_norms(model, group).double().square(), rtol=1e-6)


def test_taylor_importance_of_an_expert_channel_is_weight_times_gradient_summed_over_its_three_slices():
    model = tiny_llama(0, model_type="mixtral")
    group = adapter_for(model.config).expert_groups(model.config, 3)[0]
    stats = calibration_gradients(model, [group.gate_up, group.down], WINDOWS, second_order=False, progress=False)
    # the reference: autograd on the batch's mean loss (the mean of the per-sample mean losses)
    reference = copy.deepcopy(model)
    gate_up, down = reference.get_parameter(group.gate_up), reference.get_parameter(group.down)
    loss = sum(reference(input_ids=w[None], labels=w[None]).loss for w in WINDOWS) / len(WINDOWS)
    g_gate_up, g_down = torch.autograd.grad(loss, [gate_up, down])
    taylor_gate_up = (gate_up * g_gate_up).abs().sum(2).double()
    expected = taylor_gate_up[:, :96] + taylor_gate_up[:, 96:] + (down * g_down).abs().sum(1).double()
    got = expert_channel_importance(model, group, "param_first", "sum", stats)
    assert torch.allclose(got, expected, rtol=1e-4, atol=1e-9)


@pytest.mark.parametrize("ranking", ["layer", "global"])
@pytest.mark.parametrize("model_type", ["mixtral", "qwen3_moe", "olmoe"])
def test_llmpruner_plans_every_moe_family(model_type, ranking):
    model = tiny_llama(0, model_type=model_type)
    config = LLMPrunerConfig(ratio=0.5, layers=(1, 7), experts_ratio=0.5, ranking=ranking)
    plan = LLMPruner().plan(model, config, _context(model))
    validate_plan(plan, model.config)
    entry = plan.entries["model.layers.4.mlp.experts.gate_up_proj"]
    assert entry.pruned_shape == (2, 96, 64) and plan.pruner.params["experts_ratio"] == 0.5
    pruned = apply_plan(copy.deepcopy(model), plan)
    with torch.no_grad():
        assert torch.isfinite(pruned(input_ids=WINDOWS[:1]).logits).all()
