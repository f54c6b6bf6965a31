"""The layer-by-layer driver (``loram_core.layer_stream``, which SparseGPT drives): streamed from the checkpoint,
it computes what the whole model computes."""

import pytest
import torch
from transformers import AutoModelForCausalLM

from loram_core.checkpoint import CheckpointReader
from loram_core.layer_stream import stream_layers
from loram_core.plan.apply import empty_model
from loram_core.testing.tiny import save_tiny_model
from loram_plugin_sparsegpt.config import SparseGPTConfig
from loram_plugin_sparsegpt.hessian import InputStatistics
from loram_plugin_sparsegpt.pruner import SparseGPTPruner
from loram_plugin_sparsegpt.sparsegpt import sparsegpt_prune
from loram_plugin_sparsegpt.targets import layer_linears
from sparsegpt_helpers import make_context

IDS = torch.randint(0, 128, (5, 24), generator=torch.Generator().manual_seed(7))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("tiny") / "model", seed=4, layers=4)


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_streaming_without_pruning_reproduces_the_full_model(model_dir, attention):
    full = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation=attention).eval()
    full_config = full.config
    skeleton = empty_model(full_config)
    reader = CheckpointReader.open(model_dir)
    # batch 2 over 5 samples: the last micro-batch is smaller and gets its own layer arguments
    hidden = stream_layers(skeleton, IDS, stop=full_config.num_hidden_layers, batch_size=2, reader=reader)
    assert all(p.is_meta for p in skeleton.model.layers.parameters())  # every layer went back to meta
    assert skeleton.model.embed_tokens.weight.is_meta
    norm = reader.load_module(skeleton.model.norm, "model.norm")
    logits = norm(hidden) @ reader.get("model.embed_tokens.weight").T  # tied lm_head
    with torch.no_grad():
        expected = full(IDS)
    torch.testing.assert_close(logits, expected.logits, rtol=0, atol=1e-5)


def test_each_layer_sees_the_outputs_of_the_already_pruned_layers(model_dir):
    """Pruning in the driver, then the whole model with the pruned weights: layer k's inputs are the same."""
    full = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    cfg = SparseGPTConfig(pattern="2:4", blocksize=16)
    seen, pruned_weights = {}, {}

    def visit(index, prefix, layer, collect):
        hook = layer.register_forward_pre_hook(lambda m, args: seen.setdefault(index, []).append(args[0].clone()))
        targets = layer_linears(layer, prefix, cfg)
        with InputStatistics(targets) as stats:
            collect()
        hook.remove()
        for name, linear in targets.items():
            result = sparsegpt_prune(linear.weight, stats.xtx[name], stats.tokens[name], ratio=0.5, nm=(2, 4), blocksize=16)
            linear.weight.data.copy_(result.weight)
            pruned_weights[f"{name}.weight"] = result.weight

    stream_layers(empty_model(full.config), IDS, stop=4, batch_size=5, reader=CheckpointReader.open(model_dir), visit=visit)
    full.load_state_dict(pruned_weights, strict=False)
    with torch.no_grad():
        states = full(IDS, output_hidden_states=True).hidden_states
    for index in range(4):
        torch.testing.assert_close(torch.cat(seen[index]), states[index], rtol=0, atol=1e-5)
    assert len(pruned_weights) == 4 * 7


def test_pruning_an_in_memory_model_leaves_it_unchanged(model_dir):
    full = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    before = {k: v.clone() for k, v in full.state_dict().items()}
    plan = SparseGPTPruner().plan(full, SparseGPTConfig(ratio=0.5, blocksize=16), make_context(full))
    assert len(plan.entries) == 4 * 7
    assert all(torch.equal(v, before[k]) for k, v in full.state_dict().items())
