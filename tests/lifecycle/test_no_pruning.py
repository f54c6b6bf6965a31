"""Pruner ``none``: the LoRA-on-the-full-model baseline through the same lifecycle (empty plan, identity recovery)."""

import json

import attrs

import torch
from safetensors.torch import load_file

from loram_core import registry
from loram_core.cli.main import main
from loram_core.plan.serialize import load_plan
from loram_core.testing.tiny import FAST_FLAGS


def test_none_is_a_builtin_pruner_with_no_options():
    pruner = registry.get("pruner", "none")
    assert registry.collect("pruner")["none"].plugin == "loram_core.builtin.no_pruning"
    config = pruner.config_cls()
    assert attrs.fields(pruner.config_cls) == () and attrs.asdict(config) == {}  # no option to set


def test_empty_plan_runs_every_stage_with_identity_recovery(inputs, tmp_path):
    model, data = inputs
    out = tmp_path / "run"
    assert main(["run", "--model", str(model), "--data", str(data), "--pruner", "none", "--ratio", "0.5",
                 "--out", str(out), "--json", *FAST_FLAGS]) == 0
    report = json.loads((out / "report.json").read_text())
    assert load_plan(out / "plan").entries == {}
    assert report["pruner"]["name"] == "none" and report["pruner"]["ratio"] == 0.0  # not the --ratio given
    assert report["params"]["pruned"] == report["params"]["original"] and report["params"]["reduction_ratio"] == 1.0
    small, large = (load_file(out / d / "adapter_model.safetensors") for d in ("adapter-pruned", "adapter"))
    assert small.keys() == large.keys() and all(torch.equal(small[k], large[k]) for k in small)
    ppl = report["ppl"]
    # the "pruned" model is the original, bit for bit: the same perplexity, with and without the adapter
    assert ppl["pruned"] == ppl["original"]
    assert abs(ppl["pruned_lora"] - ppl["loram"]) < 1e-6 * ppl["loram"]
    assert report["memory"]["param_bytes_train"] > report["memory"]["param_bytes_original"]  # + the adapter


def test_layers_flag_is_ignored_with_a_warning_by_a_pruner_without_layers(capsys):
    from loram_core import registry
    from loram_core.lifecycle.prune import pruner_config
    from loram_core.lifecycle.settings import RunSettings

    config = pruner_config(registry.get("pruner", "none"), RunSettings(pruner="none", layers="4:28"))
    assert config == registry.get("pruner", "none").config_cls()
    assert "pruner 'none' takes no layer range; --layers ignored" in capsys.readouterr().err
