"""Each family of the built-in adapter through the whole lifecycle: the recovered adapter, loaded with stock PEFT on
the original, gives the merged folder's logits."""

from __future__ import annotations

import json

import pytest
import torch

from loram_core.cli.main import main
from loram_core.testing.tiny import FAST_FLAGS, peft_and_merged_logits, save_tiny_model


RUNS = {
    "qwen3": (dict(model_type="qwen3", head_dim=16), ()),
    "gemma3": (dict(model_type="gemma3_text", head_dim=16, sliding_window=8), ()),
    "gemma3-query-heads": (dict(model_type="gemma3_text", head_dim=16, sliding_window=8),
                           ("--pruner-opt", "attention_units=query_heads")),
    "gemma": (dict(model_type="gemma", head_dim=16), ()),
    "gemma2": (dict(model_type="gemma2", head_dim=16, sliding_window=8), ()),
    "phi3": (dict(model_type="phi3"), ()),
    "phi3-query-heads": (dict(model_type="phi3"), ("--pruner-opt", "attention_units=query_heads")),
    "gpt2": (dict(model_type="gpt2", gqa=False), ()),
}


@pytest.mark.parametrize("name", list(RUNS))
def test_a_family_runs_end_to_end_and_peft_loads_its_adapter(name, tmp_path):
    family, extra = RUNS[name]
    model = save_tiny_model(tmp_path / "model", seed=2, **family)
    data = tmp_path / "data.txt"
    data.write_text("\n\n".join(f"the king said to the queen of the sea, {i} times, and the sea said nothing."
                                for i in range(200)))
    run = tmp_path / "run"
    assert main(["run", "--model", str(model), "--data", str(data), "--pruner", "magnitude", "--ratio", "0.5",
                 "--layers", "1:7", "--out", str(run), *extra, *FAST_FLAGS]) == 0
    untuned, a, b = peft_and_merged_logits(model, run)
    assert (a - b).abs().max().item() < 1e-4
    assert (a - untuned).abs().max().item() > 1e-4  # the recovered adapter does change the original
    assert json.loads((run / "merged" / "config.json").read_text())["model_type"] == family["model_type"]
    prune = json.loads((run / "stages" / "prune.json").read_text())
    assert prune["params_pruned"] < prune["params_original"] and prune["modules"] > 0


@pytest.mark.parametrize("model_type", ["gpt2", "phi3", "gemma2"])
def test_estimate_counts_every_family_exactly(model_type, tmp_path, capsys):
    from loram_core.testing.tiny import tiny_llama

    model = tiny_llama(0, model_type=model_type, **({"gqa": False} if model_type == "gpt2" else {}))
    folder = tmp_path / "model"
    model.config.save_pretrained(folder)
    assert main(["estimate", "--model", str(folder), "--pruner", "magnitude", "--ratio", "0.5", "--json"]) == 0
    params = json.loads(capsys.readouterr().out)["params"]
    assert params["original"] == sum(p.numel() for p in model.parameters())
    # the pruned count the estimate gives is what the default layer range really removes
    from loram_core.arch import adapter_for
    from loram_core.plan import ModelFingerprint, PrunerInfo
    from loram_core.plan.apply import apply_plan
    from loram_core.prune_context import PruneContext
    from loram_core.structured import StructuredConfig, structured_plan

    ctx = PruneContext(model_config=model.config, arch=adapter_for(model.config),
                       fingerprint=ModelFingerprint.from_config(model.config))
    plan = structured_plan(model, StructuredConfig(ratio=0.5), ctx, PrunerInfo("t", "0"), lambda g: torch.rand(g.units))
    pruned = apply_plan(model, plan)
    assert params["pruned"] == sum({id(p): p.numel() for p in pruned.parameters()}.values()) < params["original"]
