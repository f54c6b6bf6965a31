"""Wanda's decision on its own: scores, the per-row unstructured mask, N:M, and the calibration statistic."""

import pytest
import torch

from loram_core.configs import build_config
from loram_core.errors import LoramError
from loram_plugin_wanda.activations import input_feature_norms
from loram_plugin_wanda.config import WandaConfig
from loram_plugin_wanda.masks import nm_mask, unstructured_mask, wanda_scores


def test_activation_norm_can_overturn_magnitude():
    # Row [1.0, 0.5] reading features with norms [0.1, 10]: magnitude drops the 0.5, Wanda the 1.0 (0.1 < 5).
    scores = wanda_scores(torch.tensor([[1.0, -0.5]]), torch.tensor([0.1, 10.0]))
    assert torch.equal(scores, torch.tensor([[0.1, 5.0]]))
    assert unstructured_mask(scores, 0.5).tolist() == [[False, True]]


def test_unstructured_mask_drops_the_lowest_scores_of_every_row():
    scores = torch.rand(7, 40, generator=torch.Generator().manual_seed(0))
    mask = unstructured_mask(scores, 0.3)
    assert torch.equal((~mask).sum(1), torch.full((7,), int(40 * 0.3)))
    for row, keep in zip(scores, mask):  # every dropped score is below every kept one
        assert row[~keep].max() < row[keep].min()


def test_nm_mask_drops_the_lowest_n_of_every_m():
    scores = torch.rand(5, 32, generator=torch.Generator().manual_seed(1))
    mask = nm_mask(scores, 2, 4)
    groups, keep = scores.view(5, 8, 4), mask.view(5, 8, 4)
    assert torch.equal((~keep).sum(-1), torch.full((5, 8), 2))
    expected = groups.argsort(-1).argsort(-1) >= 2  # rank within the group: the two largest stay
    assert torch.equal(keep, expected)
    with pytest.raises(LoramError, match="30 inputs, not a multiple of 4"):
        nm_mask(torch.rand(2, 30), 2, 4, module="m")


def test_input_norms_are_the_norms_of_what_each_linear_reads():
    from loram_core.testing.tiny import tiny_llama

    model = tiny_llama(seed=0, layers=3)
    tokens = torch.randint(0, 128, (5, 12), generator=torch.Generator().manual_seed(2))
    modules = ["model.layers.1.self_attn.q_proj", "model.layers.2.mlp.down_proj"]
    norms = input_feature_norms(model, modules, tokens, batch_size=2, progress=False)  # batches of 2, 2, 1
    with torch.no_grad():
        hidden = model(input_ids=tokens, output_hidden_states=True).hidden_states
        q_in = model.model.layers[1].input_layernorm(hidden[1])
        layer = model.model.layers[2]
        attn_out = hidden[2] + layer.self_attn(layer.input_layernorm(hidden[2]), attention_mask=None,
                                               position_embeddings=model.model.rotary_emb(hidden[2], torch.arange(12)[None]))[0]
        mlp_in = layer.post_attention_layernorm(attn_out)
        down_in = layer.mlp.act_fn(layer.mlp.gate_proj(mlp_in)) * layer.mlp.up_proj(mlp_in)
    torch.testing.assert_close(norms[modules[0]], q_in.reshape(-1, 64).norm(dim=0), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(norms[modules[1]], down_in.reshape(-1, 96).norm(dim=0), rtol=1e-5, atol=1e-6)


def test_config_rejects_what_wanda_cannot_do():
    assert build_config(WandaConfig, {"pattern": "4:8", "ratio": 0.3}, owner="w").sparsity == 0.5
    with pytest.raises(LoramError, match="pattern must be 'unstructured' or N:M"):
        build_config(WandaConfig, {"pattern": "structured"}, owner="pruner 'wanda'")
    with pytest.raises(LoramError, match="pattern must be 'unstructured' or N:M"):
        build_config(WandaConfig, {"pattern": "4:4"}, owner="pruner 'wanda'")
    with pytest.raises(LoramError, match="samples must be a positive integer"):
        build_config(WandaConfig, {"samples": 0}, owner="pruner 'wanda'")
