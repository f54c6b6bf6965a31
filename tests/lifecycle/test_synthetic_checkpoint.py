"""The checkpoint generator for models larger than memory: tensor by tensor, seeded, and scaled so that a deep
model's activations stay of order one (docs/scaling.md, "Larger than memory")."""

import json

import torch

from loram_core.memory import current_rss_mb, peak_rss_mb, reset_peak_rss
from loram_core.testing.sharded import llama2_13b_shape, sharded_llama_config, write_sharded_llama


def test_a_deep_scaled_model_keeps_activations_finite_and_of_order_one_in_bf16(tmp_path):
    from transformers import AutoModelForCausalLM

    config = sharded_llama_config(layers=40, hidden=128, intermediate=344, heads=4, kv_heads=4, vocab=128)
    path = write_sharded_llama(tmp_path / "m", config, dtype=torch.bfloat16, scaled=True, shard_bytes=1 << 20)
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    assert model.dtype == torch.bfloat16 and json.loads((path / "config.json").read_text())["dtype"] == "bfloat16"
    ids = torch.randint(0, 128, (2, 32), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = model(input_ids=ids, output_hidden_states=True)
    last = out.hidden_states[-2].float()  # the residual stream entering the last layer
    assert torch.isfinite(out.logits).all()
    assert 0.3 < last.std().item() < 5, last.std().item()
    assert 0.3 < out.logits.float().std().item() < 5


def test_the_same_seed_writes_the_same_weights_with_the_scale_asked_for(tmp_path, monkeypatch):
    import loram_core.testing.sharded as sharded
    from loram_core.checkpoint import load_weights

    config = sharded_llama_config(layers=2, hidden=64, intermediate=96, heads=4, kv_heads=2, vocab=128)
    monkeypatch.setattr(sharded, "ROWS_AT_ONCE", 1000)  # large tensors are drawn in blocks
    a = load_weights(write_sharded_llama(tmp_path / "a", config, scaled=True, seed=3))
    b = load_weights(write_sharded_llama(tmp_path / "b", config, scaled=True, seed=3))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    std = a["model.layers.0.mlp.down_proj.weight"].std().item()
    assert abs(std - 1 / (96 ** 0.5 * 2)) < 0.01  # 1/sqrt(fan-in) / sqrt(2 x layers)
    assert abs(a["model.layers.1.mlp.up_proj.weight"].std().item() - 1 / 64 ** 0.5) < 0.01


def test_writing_a_model_holds_one_shard_and_one_tensor_not_the_model(tmp_path):
    config = sharded_llama_config(layers=16, hidden=512, intermediate=1536, heads=8, kv_heads=8, vocab=8192)
    reset_peak_rss()
    before = current_rss_mb()
    path = write_sharded_llama(tmp_path / "m", config, dtype=torch.bfloat16, scaled=True, shard_bytes=8 << 20)
    size_mb = sum(p.stat().st_size for p in path.glob("*.safetensors")) / 2**20
    assert size_mb > 100
    if before is not None:
        assert peak_rss_mb() - before < size_mb / 2, (peak_rss_mb() - before, size_mb)


def test_the_13b_shape_counts_13_2_billion_parameters():
    from loram_core.plan.fingerprint import count_parameters, meta_model

    config = llama2_13b_shape()
    assert (config.hidden_size, config.intermediate_size, config.num_hidden_layers, config.num_key_value_heads,
            config.vocab_size) == (5120, 13824, 40, 40, 49152)
    assert 13.1e9 < count_parameters(meta_model(config)) < 13.3e9  # 13.0B + the larger vocabulary
