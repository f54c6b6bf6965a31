"""The plugin as loram sees it: the conformance suite, and `loram prune` / `loram run` by name."""

import json

import torch
from safetensors.torch import load_file

from loram_core.checkpoint import load_weights
from loram_core.cli.main import main
from loram_core.plan.serialize import load_plan
from loram_core.testing.conformance import FAMILIES, PRUNER_CHECKS, check_pruner, pruner_cases
from loram_plugin_wanda import WandaPruner


def test_wanda_keeps_every_pruner_contract(tmp_path):
    passed = check_pruner(WandaPruner(), workdir=tmp_path)
    # unstructured at 0.5, the same with --layers 2:6, then 2:4 and 4:8; on every tiny family but GPT-2, which
    # wanda declares unsupported (Conv1D stores weights transposed): one refusal line per case there
    assert len(pruner_cases(WandaPruner())) == 4
    refused = [line for line in passed if "refused" in line]
    assert len(refused) == 4 and all(line.startswith("gpt2-mha") for line in refused)
    assert len(passed) - len(refused) == (len(FAMILIES) - 1) * 4 * len(PRUNER_CHECKS)


def tiny_inputs(tmp_path):
    from loram_core.testing.tiny import save_tiny_model

    model = save_tiny_model(tmp_path / "model")
    data = tmp_path / "data.txt"
    data.write_text("\n\n".join(f"scene {i}: " + "the king spoke to the queen of the sea " * 20 for i in range(30)))
    return str(model), str(data)


def test_loram_run_with_wanda_2_4(wanda_registered, tmp_path):
    model, data = tiny_inputs(tmp_path)
    out = tmp_path / "run"
    fast = ["--steps", "3", "--batch-size", "2", "--seq-len", "32", "--eval-seq-len", "64", "--eval-tokens", "512", "--no-progress"]
    assert main(["run", "--model", model, "--data", data, "--pruner", "wanda", "--pruner-opt", "pattern=2:4",
                 "--out", str(out), "--json", *fast]) == 0
    plan = load_plan(out / "plan")
    assert plan.pattern == "2:4" and plan.pruner.params["layers"] == [0, 8] and len(plan.entries) == 8 * 7
    pruned = load_weights(out / "pruned")["model.layers.3.mlp.down_proj.weight"]
    mask = plan.entries["model.layers.3.mlp.down_proj"].mask
    assert bool((pruned[~mask] == 0).all()) and int((~mask).sum()) == pruned.numel() // 2
    report = json.loads((out / "report.json").read_text())
    assert report["pruner"]["pattern"] == "2:4"
    # masks keep shapes, so recovery is the identity: the adapter for the original is the trained one
    small, large = (load_file(out / d / "adapter_model.safetensors") for d in ("adapter-pruned", "adapter"))
    assert small.keys() == large.keys() and all(torch.equal(small[k], large[k]) for k in small)
