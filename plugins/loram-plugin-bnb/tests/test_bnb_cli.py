"""``loram run --quantizer nf4`` end to end: train on the 4-bit pruned model, recover, merge into the fp32 original."""

import json

import pytest
import torch
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from loram_core import plugins
from loram_core.cli.main import main
from loram_core.testing.mask_pruner import MaskPlugin
from loram_core.testing.tiny import FAST_FLAGS

IDS = torch.randint(0, 128, (2, 24), generator=torch.Generator().manual_seed(0))


def run(inputs, out, *flags):
    model, data = inputs
    assert main(["run", "--model", str(model), "--data", str(data), "--out", str(out), "--json", *FAST_FLAGS,
                 *flags]) == 0
    return json.loads((out / "report.json").read_text())


def logits(model):
    with torch.no_grad():
        return model(IDS).logits


def test_structured_plan_trains_in_nf4_and_merges_into_the_unquantized_original(bnb, inputs, tmp_path):
    model_dir, _ = inputs
    out = tmp_path / "qloram"
    report = run(inputs, out, "--pruner", "magnitude", "--ratio", "0.5", "--quantizer", "nf4")
    plain = run(inputs, tmp_path / "loram", "--pruner", "magnitude", "--ratio", "0.5")

    q = report["quantizer"]
    assert (q["name"], q["bits"], q["quant_type"], q["double_quant"], q["blocksize"]) == ("nf4", 4, "nf4", True, 64)
    assert q["modules_kept"]["linear"] == ["lm_head"] and sum(q["modules_quantized"].values()) == 8 * 7
    p = report["params"]
    assert p == plain["params"] | {"reduction_ratio": p["original"] / (p["pruned"] * 4 / 16)}  # the paper's formula
    assert q["params_quantized"] + q["params_kept"] == p["pruned"]
    # the same adapter over a base held in 4 bits + quantization state (fp32 embedding and norms) instead of fp32
    adapter_bytes = plain["memory"]["param_bytes_train"] - 4 * p["pruned"]
    assert report["memory"]["param_bytes_train"] == q["param_bytes_base"] + adapter_bytes
    assert q["param_bytes_base"] < 0.3 * 4 * p["pruned"]
    assert report["memory"]["train_peak_rss_mb"] is not None

    # merged into the fp32 ORIGINAL: a stock HF folder, no quantization config, full-precision full-size weights
    merged_config = json.loads((out / "merged" / "config.json").read_text())
    assert "quantization_config" not in merged_config
    merged = AutoModelForCausalLM.from_pretrained(out / "merged")
    assert merged.model.layers[4].mlp.gate_proj.weight.shape == (96, 64)
    assert all(p.dtype == torch.float32 for p in merged.parameters())
    unmerged = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(model_dir), out / "adapter")
    torch.testing.assert_close(logits(merged), logits(unmerged), rtol=0, atol=1e-4)
    assert not torch.allclose(logits(merged), logits(AutoModelForCausalLM.from_pretrained(model_dir)))
    assert all(v > 1 for v in report["ppl"].values())


@pytest.fixture
def two_four():
    plugins.load_plugins()
    plugins.pm.register(MaskPlugin(), name="MaskPlugin")
    try:
        yield
    finally:
        plugins.pm.unregister(name="MaskPlugin")


def test_mask_plan_in_nf4_keeps_the_zeros_and_recovers_by_identity(bnb, two_four, inputs, tmp_path):
    import bitsandbytes.functional as F

    from loram_core.plan.serialize import load_plan
    from loram_plugin_bnb import quantize_model
    from loram_plugin_bnb.config import NF4Config

    model_dir, _ = inputs
    out = tmp_path / "run"
    report = run(inputs, out, "--pruner", "two-four", "--quantizer", "nf4")
    assert report["pruner"]["pattern"] == "2:4" and report["quantizer"]["name"] == "nf4"
    small, large = (load_file(out / d / "adapter_model.safetensors") for d in ("adapter-pruned", "adapter"))
    assert small.keys() == large.keys() and all(torch.equal(small[k], large[k]) for k in small)
    # NF4 has an exact zero code: the masked weights stay exactly zero in the 4-bit model
    from loram_core.plan.apply import apply_plan

    plan = load_plan(out / "plan")
    pruned = quantize_model(apply_plan(AutoModelForCausalLM.from_pretrained(model_dir), plan), NF4Config())
    for module, entry in plan.entries.items():
        weight = pruned.get_submodule(module).weight
        dense = F.dequantize_4bit(weight.data, weight.quant_state)
        assert torch.equal(dense[~entry.mask], torch.zeros(int((~entry.mask).sum())))
    merged = AutoModelForCausalLM.from_pretrained(out / "merged")
    unmerged = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(model_dir), out / "adapter")
    torch.testing.assert_close(logits(merged), logits(unmerged), rtol=0, atol=1e-4)


def test_qlora_on_the_full_model_counts_a_quarter(bnb, inputs, tmp_path):
    report = run(inputs, tmp_path / "qlora", "--pruner", "none", "--quantizer", "nf4", "--no-merge")
    assert report["pruner"]["ratio"] == 0.0 and report["params"]["pruned"] == report["params"]["original"]
    assert report["params"]["reduction_ratio"] == 4.0


def test_unknown_quantizer_names_the_installed_ones(bnb, inputs, tmp_path, capsys):
    model, data = inputs
    assert main(["run", "--model", str(model), "--data", str(data), "--quantizer", "nf5", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "unknown quantizer 'nf5'; did you mean 'nf4'? (installed: fp4, int8, nf4)" in err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("name", ["fp4", "int8"])
def test_fp4_and_int8_run_the_lifecycle(bnb, inputs, tmp_path, name):
    report = run(inputs, tmp_path / name, "--pruner", "magnitude", "--quantizer", name, "--no-merge")
    assert report["quantizer"]["quant_type"] == name
    assert report["quantizer"]["bits"] == (8 if name == "int8" else 4)
    assert all(v > 1 for v in report["ppl"].values())
