"""The streamed quantized load: the pruned model built from its shards one module at a time is the model the
in-memory path quantizes, bit for bit, and training never sees the difference."""

import bitsandbytes as bnb
import pytest
import torch

from loram_core.cli.main import main
from loram_core.lifecycle.pruned_folder import load_pruned_model
from loram_core.lifecycle.quantize import load_trainable_pruned, quantize_pruned
from loram_core.lifecycle.resources import Resources
from loram_core.lifecycle.rundir import RunDir
from loram_core.lifecycle.settings import RunSettings
from loram_core.testing.tiny import FAST_FLAGS


@pytest.fixture
def pruned_run(inputs, tmp_path, bnb):
    model_dir, data = inputs
    run = tmp_path / "run"
    assert main(["prune", str(run), "--model", str(model_dir), "--data", str(data), "--pruner", "magnitude",
                 "--ratio", "0.5", *FAST_FLAGS]) == 0
    settings = RunSettings(model=str(model_dir), data=str(data), quantizer="nf4")
    return RunDir(run), Resources(settings, progress=False)


def _state(model) -> dict[str, torch.Tensor]:
    out = {}
    for name, module in model.named_modules():
        if isinstance(module, bnb.nn.Linear4bit):
            state = module.weight.quant_state
            out[f"{name}.packed"] = module.weight.data
            out[f"{name}.absmax"] = state.absmax
            out[f"{name}.nested_absmax"] = state.state2.absmax
    out.update({n: p.data for n, p in model.named_parameters() if p.dtype.is_floating_point})
    return out


def test_streamed_nf4_model_is_bitwise_the_in_memory_one(pruned_run):
    run, res = pruned_run
    streamed, info = load_trainable_pruned(run, res, torch.float32)
    in_memory, reference_info = quantize_pruned(load_pruned_model(run, res)[0], res.settings)
    assert info == reference_info
    a, b = _state(streamed), _state(in_memory)
    assert a.keys() == b.keys() and sum(k.endswith(".packed") for k in a) == 8 * 7
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])][:3]
    assert not any(p.is_meta for p in streamed.parameters())
    assert streamed.lm_head.weight is streamed.model.embed_tokens.weight  # the tiny model ties them, still tied
    batch = torch.arange(24).reshape(2, 12)
    with torch.no_grad():
        assert torch.equal(streamed(input_ids=batch).logits, in_memory(input_ids=batch).logits)


def test_streamed_load_reads_one_linear_before_quantizing_it(pruned_run):
    run, res = pruned_run
    import loram_plugin_bnb

    seen = []

    def build(model, load):
        def watched(name):
            # nothing loaded yet but what was quantized: a loaded Linear is quantized before the next is read
            held = [n for n, m in model.named_modules() if type(m) is torch.nn.Linear and not m.weight.is_meta]
            seen.append((name, held))
            load(name)

        return loram_plugin_bnb.quantize_model(model, loram_plugin_bnb.NF4Config(), watched)

    load_pruned_model(run, res, build=build)
    assert len(seen) == 8 * 7 and all(held == [] for _, held in seen)


def test_streamed_load_holds_the_unquantized_modules_at_the_run_dtype(pruned_run):
    """``--dtype bf16`` with a quantizer: embeddings, norms and skipped Linears in bf16 (as transformers' ``dtype=``
    holds them beside 4-bit weights), the packed weights bit for bit those of the fp32 load."""
    run, res = pruned_run
    full, _ = load_trainable_pruned(run, res, torch.float32)
    half, _ = load_trainable_pruned(run, res, torch.bfloat16)
    a, b = _state(full), _state(half)
    packed = [k for k in a if k.endswith(("packed", "absmax"))]  # packed, absmax, nested absmax
    assert len(packed) == 8 * 7 * 3 and all(torch.equal(a[k], b[k]) for k in packed)
    unquantized = {n: p for n, p in half.named_parameters() if p.dtype.is_floating_point}
    assert {"model.embed_tokens.weight", "model.norm.weight"} <= unquantized.keys()
    assert all(p.dtype == torch.bfloat16 for p in unquantized.values()), {n: p.dtype for n, p in unquantized.items()}
    assert all(torch.equal(p, a[n].to(torch.bfloat16)) for n, p in unquantized.items())
    assert half.lm_head.weight is half.model.embed_tokens.weight
    batch = torch.arange(24).reshape(2, 12)
    with torch.no_grad():
        logits = half(input_ids=batch).logits
    assert logits.dtype == torch.bfloat16 and torch.isfinite(logits).all()
