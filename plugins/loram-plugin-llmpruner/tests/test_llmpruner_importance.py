"""Importance criteria, aggregation and the per-sample calibration gradients."""

import pytest
import torch

from loram_core.errors import LoramError
from loram_core.testing.tiny import tiny_llama
from loram_plugin_llmpruner.calibrate import calibration_gradients
from loram_plugin_llmpruner.importance import GradientStats, aggregate, element_importance

W = torch.tensor([[1.0, -2.0], [0.5, 0.0]])
STATS = GradientStats(grad=torch.tensor([[3.0, 1.0], [-4.0, 7.0]]), grad_sq=torch.tensor([[2.0, 4.0], [8.0, 1.0]]))


def test_element_criteria_follow_llm_pruner_formulas_exactly():
    assert torch.equal(element_importance(W, "param_first", STATS), torch.tensor([[3.0, 2.0], [2.0, 0.0]]))
    # w * acc * w: 1*2*1, 4*4, 0.25*8, 0
    assert torch.equal(element_importance(W, "param_second", STATS), torch.tensor([[2.0, 16.0], [2.0, 0.0]]))
    # |w*g - 0.5 * w*acc*w|: |3 - 1|, |-2 - 8|, |-2 - 1|, 0
    assert torch.equal(element_importance(W, "param_mix", STATS), torch.tensor([[2.0, 10.0], [3.0, 0.0]]))
    assert torch.equal(element_importance(W, "l1"), W.abs())
    assert torch.equal(element_importance(W, "l2"), W * W)


def test_taylor_criteria_without_gradients_are_an_error():
    with pytest.raises(LoramError, match="needs calibration gradients"):
        element_importance(W, "param_first")
    with pytest.raises(LoramError, match="squared per-sample gradients"):
        element_importance(W, "param_mix", GradientStats(grad=STATS.grad))


def test_aggregations_over_members():
    per_member = torch.tensor([[1.0, 4.0, 0.0], [3.0, 2.0, 5.0]])
    assert torch.equal(aggregate(per_member, "sum"), torch.tensor([4.0, 6.0, 5.0], dtype=torch.float64))
    assert torch.equal(aggregate(per_member, "mean"), torch.tensor([2.0, 3.0, 2.5], dtype=torch.float64))
    assert torch.equal(aggregate(per_member, "max"), torch.tensor([3.0, 4.0, 5.0], dtype=torch.float64))
    assert torch.equal(aggregate(per_member, "prod"), torch.tensor([3.0, 8.0, 0.0], dtype=torch.float64))


MODULES = ["model.layers.2.self_attn.q_proj", "model.layers.2.mlp.down_proj", "model.layers.5.mlp.gate_proj"]


def test_per_sample_gradients_match_the_batch_gradient_and_squared_mean():
    model = tiny_llama(seed=1)
    tokens = torch.randint(0, 128, (5, 12), generator=torch.Generator().manual_seed(3))
    stats = calibration_gradients(model, MODULES, tokens, second_order=True, progress=False)
    first_only = calibration_gradients(model, MODULES, tokens, second_order=False, progress=False)

    weights = [model.get_submodule(m).weight for m in MODULES]
    batch_loss = model(input_ids=tokens, labels=tokens, use_cache=False).loss  # LLM-Pruner's batch backward
    batch_grads = torch.autograd.grad(batch_loss, weights)
    per_sample = [
        torch.autograd.grad(model(input_ids=t[None], labels=t[None], use_cache=False).loss, weights) for t in tokens
    ]
    for i, m in enumerate(MODULES):
        torch.testing.assert_close(stats[m].grad, batch_grads[i], rtol=1e-4, atol=1e-7)
        torch.testing.assert_close(first_only[m].grad, stats[m].grad, rtol=1e-5, atol=1e-8)
        squares = torch.stack([g[i].square() for g in per_sample]).mean(0)
        torch.testing.assert_close(stats[m].grad_sq, squares, rtol=1e-4, atol=1e-10)
        assert first_only[m].grad_sq is None


def test_calibration_leaves_the_model_as_it_found_it():
    model = tiny_llama(seed=1).train()
    model.model.layers[0].mlp.up_proj.weight.requires_grad_(False)  # a caller's own freezing survives
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    tokens = torch.randint(0, 128, (2, 8), generator=torch.Generator().manual_seed(0))
    calibration_gradients(model, MODULES, tokens, second_order=True, progress=False)
    assert model.training
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())


def test_calibration_rejects_bad_token_shapes():
    with pytest.raises(LoramError, match="seq_len >= 2"):
        calibration_gradients(tiny_llama(), MODULES, torch.zeros(3, 1, dtype=torch.long), second_order=False, progress=False)
