"""The memory preflight (training that would not fit stops before anything is written, naming what would fit)
and each stage's measured peak in the report (docs/scaling.md, "Larger than memory")."""

import json

import attrs
import pytest

import loram_core.estimate.preflight as preflight
from loram_core.cli.main import main
from loram_core.errors import LoramError
from loram_core.lifecycle.settings import make_settings
from loram_core.testing.tiny import FAST_FLAGS, tiny_llama_config


def test_the_refusal_names_the_need_and_the_single_changes_that_fit(monkeypatch):
    config = tiny_llama_config()
    settings = make_settings({"pruner": "random", "batch_size": 64, "seq_len": 256})
    need = preflight.train_need(settings, config)
    saved = preflight.train_need(attrs.evolve(settings, gradient_checkpointing=True), config)
    assert saved < need
    monkeypatch.setattr(preflight, "available_bytes", lambda device="cpu": (saved + need) // 2)
    with pytest.raises(LoramError) as err:
        preflight.check_train_fits(settings, config)
    message = str(err.value)
    assert message.startswith(f"training needs about {need / 2**20:.0f} MiB by loram estimate's model")
    assert "each of these would fit: --gradient-checkpointing" in message and "--batch-size 1" in message
    monkeypatch.setattr(preflight, "available_bytes", lambda device="cpu": need)
    preflight.check_train_fits(settings, config)  # exactly enough: no refusal


def test_the_report_holds_each_stages_measured_peak(inputs, tmp_path, capsys, monkeypatch):
    model, data = inputs
    out = tmp_path / "run"
    import loram_core.lifecycle.runner as runner
    from loram_core import memory

    released = []  # memory a stage freed goes back to the kernel before the next one's baseline is taken
    monkeypatch.setattr(runner, "release_freed_memory", lambda: released.append(memory.current_rss_mb()))
    assert main(["run", "--model", str(model), "--data", str(data), "--pruner", "random", "--out", str(out), "--json",
                 *FAST_FLAGS]) == 0
    stages = json.loads(capsys.readouterr().out)["memory"]["stages"]
    assert list(stages) == ["prune", "train", "recover", "merge", "eval"]
    assert len(released) == len(stages)
    for name, measured in stages.items():
        assert measured["peak_rss_mb"] >= 0 and measured["baseline_rss_mb"] > 0 and measured["peak_anon_mb"] >= 0, name
        assert json.loads((out / "stages" / f"{name}.json").read_text())["measured"] == measured
    assert stages["train"]["peak_rss_mb"] > stages["recover"]["peak_rss_mb"]  # training holds activations
    assert all(m["seconds"] > 0 for m in stages.values())
    # beside each peak, what `loram estimate --stages` says of the same settings
    assert main(["estimate", "--model", str(model), "--stages", "--pruner", "random", "--ratio", "0.5",
                 "--batch-size", "2", "--seq-len", "32", "--eval-seq-len", "64", "--eval-tokens", "1024", "--json"]) == 0
    estimated = json.loads(capsys.readouterr().out)["stages"]
    assert {name: m["estimate_mb"] for name, m in stages.items()} == {
        name: round(estimated[name] / 2**20, 1) for name in stages}
