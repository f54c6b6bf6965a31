"""``loram run`` / ``loram prune`` with the plugin's pruners, end to end on a tiny model through the CLI."""

import json

import pytest
import torch
from safetensors.torch import load_file

from loram_core.checkpoint import load_weights
from loram_core.cli.main import main
from loram_core.plan.serialize import load_plan, plan_hash
from loram_core.testing.tiny import write_tiny_inputs

FAST = ["--steps", "4", "--batch-size", "2", "--seq-len", "32", "--eval-seq-len", "64", "--eval-tokens", "1024",
        "--checkpoint-every", "2", "--calibration-samples", "8", "--no-progress"]
LINEARS_PER_LAYER, LAYERS = 7, 8


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    # the tiny GQA model: hidden 64, intermediate 96, both divisible by 4 and 8
    return write_tiny_inputs(tmp_path_factory.mktemp("inputs"))


def _linear_weights(state):
    return {k: v for k, v in state.items() if k.endswith("_proj.weight")}


@pytest.mark.usefixtures("sparsegpt_registered")
def test_run_two_four_masks_identity_recovery_and_updated_weights(inputs, tmp_path):
    model, data = inputs
    out = tmp_path / "run"
    assert main(["run", "--model", str(model), "--data", str(data), "--pruner", "sparsegpt", "--pruner-opt",
                 "pattern=2:4", "--out", str(out), "--json", *FAST]) == 0
    plan = load_plan(out / "plan")
    assert plan.pattern == "2:4" and plan.pruner.name == "sparsegpt"
    assert len(plan.entries) == LINEARS_PER_LAYER * LAYERS  # every projection of every layer by default
    assert plan.pruner.params["layers"] == [0, LAYERS] and plan.pruner.params["samples"] == 8
    assert sorted(plan.pruner.params["layer_errors"], key=int) == [str(i) for i in range(LAYERS)]
    original, pruned = load_file(model / "model.safetensors"), load_weights(out / "pruned")
    updated = 0
    for module, entry in plan.entries.items():
        assert entry.kind == "mask" and bool(((~entry.mask).view(entry.shape[0], -1, 4).sum(-1) == 2).all())
        w, p = original[f"{module}.weight"], pruned[f"{module}.weight"]
        assert bool((p[~entry.mask] == 0).all())  # zero where masked
        updated += not torch.equal(p, w * entry.mask)  # kept weights carry the OBS update
    assert updated == len(plan.entries)
    # Everything the plan does not name is the original, bit for bit.
    assert all(torch.equal(pruned[k], v) for k, v in original.items() if k not in _linear_weights(original))
    report = json.loads((out / "report.json").read_text())
    assert report["pruner"] == {**report["pruner"], "name": "sparsegpt", "pattern": "2:4", "ratio": 0.5}
    linear_params = sum(v.numel() for v in _linear_weights(original).values())
    assert report["params"]["pruned"] == report["params"]["original"] - linear_params // 2  # the ▲ count
    small, large = (load_file(out / d / "adapter_model.safetensors") for d in ("adapter-pruned", "adapter"))
    assert small.keys() == large.keys() and all(torch.equal(small[k], large[k]) for k in small)  # identity


def _prune(inputs, out, *extra):
    model, data = inputs
    return main(["prune", str(out), "--model", str(model), "--data", str(data), *extra, *FAST])


@pytest.mark.usefixtures("sparsegpt_registered")
def test_same_seed_gives_the_same_plan_and_weights(inputs, tmp_path):
    flags = ["--pruner", "sparsegpt", "--ratio", "0.6", "--layers", "2:6", "--pruner-opt", "blocksize=32"]
    assert _prune(inputs, tmp_path / "a", *flags) == 0 and _prune(inputs, tmp_path / "b", *flags) == 0
    a, b = load_plan(tmp_path / "a" / "plan"), load_plan(tmp_path / "b" / "plan")
    assert a.equals(b) and plan_hash(a) == plan_hash(b)
    assert sorted({int(m.split(".")[2]) for m in a.entries}) == [2, 3, 4, 5]
    assert a.pattern == "unstructured" and all(e.pattern == "unstructured" for e in a.entries.values())
    wa, wb = load_weights(tmp_path / "a" / "pruned"), load_weights(tmp_path / "b" / "pruned")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    total = sum(e.mask.numel() for e in a.entries.values())
    kept = sum(e.kept for e in a.entries.values())
    record = json.loads((tmp_path / "a" / "stages" / "prune.json").read_text())
    assert record["params_original"] - record["params_pruned"] == total - kept
    assert record["streamed"] is True


@pytest.mark.usefixtures("sparsegpt_registered")
def test_magnitude_baseline_prunes_by_magnitude_and_keeps_the_weights(inputs, tmp_path):
    assert _prune(inputs, tmp_path / "m", "--pruner", "magnitude-unstructured", "--pruner-opt", "pattern=4:8") == 0
    plan = load_plan(tmp_path / "m" / "plan")
    original, pruned = load_file(inputs[0] / "model.safetensors"), load_weights(tmp_path / "m" / "pruned")
    assert plan.pattern == "4:8" and len(plan.entries) == LINEARS_PER_LAYER * LAYERS
    for module, entry in plan.entries.items():
        w = original[f"{module}.weight"]
        assert torch.equal(pruned[f"{module}.weight"], w * entry.mask)  # no update: W ⊙ M
        groups = w.abs().view(w.shape[0], -1, 8)
        kept = entry.mask.view(groups.shape)
        # in every group of 8 the 4 kept weights are the largest |w|
        assert bool((groups.masked_fill(~kept, float("inf")).amin(-1) >= groups.masked_fill(kept, -1).amax(-1)).all())


@pytest.mark.usefixtures("sparsegpt_registered")
def test_ratio_that_contradicts_the_pattern_is_a_clear_error(inputs, tmp_path, capsys):
    assert _prune(inputs, tmp_path / "x", "--pruner", "sparsegpt", "--ratio", "0.3", "--pruner-opt", "pattern=2:4") == 2
    assert "pattern 2:4 removes 0.5 of the weights but ratio is 0.3; pass --ratio 0.5" in capsys.readouterr().err
