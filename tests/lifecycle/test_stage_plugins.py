"""The optional stages call quantizer and aligner plugins by name; here plugins registered inside the test (the
``stage_plugins`` fixture in tests/conftest.py; the plugins themselves are in tests/loram_test_helpers.py)."""

import json

import torch
from safetensors.torch import load_file

from loram_core import plugins
from loram_core.checkpoint import load_weights
from loram_core.cli.main import main
from loram_core.testing.mask_pruner import MaskPlugin
from loram_core.testing.tiny import FAST_FLAGS


def test_quantizer_and_aligner_run_by_name_and_land_in_the_report(stage_plugins, inputs, tmp_path):
    model, data = inputs
    out = tmp_path / "run"
    assert main(["prune", str(out), "--model", str(model), "--data", str(data), "--pruner", "magnitude",
                 *FAST_FLAGS]) == 0
    before = load_weights(out / "pruned")["model.norm.weight"]  # streamed prune: HF shards
    assert main(["run", "--model", str(model), "--data", str(data), "--pruner", "magnitude", "--out", str(out),
                 "--quantizer", "grid", "--aligner", "scale-norm", "--aligner-opt", "scale=3", "--json",
                 *FAST_FLAGS]) == 0
    after = load_weights(out / "pruned")["model.norm.weight"]
    assert torch.equal(after, before * 3)
    report = json.loads((out / "report.json").read_text())
    assert report["align"] == {"aligner": "scale-norm", "dataset": "none", "steps": 1, "ppl_before": 2.0, "ppl_after": 1.0}
    assert report["quantizer"] == {"name": "grid", "bits": 4}
    p = report["params"]
    assert p["reduction_ratio"] == p["original"] / (p["pruned"] * 4 / 16)  # 4-bit counts as a quarter
    assert json.loads((out / "run.json").read_text())["plugins"]["quantizer"]["plugin"] == "StagePlugins"


def test_unknown_aligner_names_installed_ones(inputs, tmp_path, capsys):
    model, data = inputs
    assert main(["run", "--model", str(model), "--data", str(data), "--aligner", "cpt", "--out", str(tmp_path / "r")]) == 2
    assert "unknown aligner 'cpt' (installed: continual-pretrain, distill)" in capsys.readouterr().err


def test_mask_plan_runs_end_to_end_with_identity_recovery(inputs, tmp_path):
    model, data = inputs
    out = tmp_path / "run"
    plugins.load_plugins()
    plugins.pm.register(MaskPlugin(), name="MaskPlugin")
    try:
        assert main(["run", "--model", str(model), "--data", str(data), "--pruner", "two-four", "--out", str(out),
                     "--json", *FAST_FLAGS]) == 0
    finally:
        plugins.pm.unregister(name="MaskPlugin")
    report = json.loads((out / "report.json").read_text())
    assert report["pruner"]["pattern"] == "2:4"
    zeros = (64 * 64 + 64 * 96) // 2  # half of q_proj (64x64) and down_proj (64x96)
    assert report["params"]["pruned"] == report["params"]["original"] - zeros
    pruned = load_file(out / "pruned" / "model.safetensors")["model.layers.1.self_attn.q_proj.weight"]
    assert pruned.shape == (64, 64) and int((pruned == 0).sum()) >= 64 * 64 // 2
    small, large = (load_file(out / d / "adapter_model.safetensors") for d in ("adapter-pruned", "adapter"))
    assert small.keys() == large.keys() and all(torch.equal(small[k], large[k]) for k in small)
