"""``loram run --pruner llmpruner`` end to end on a tiny model, and the package's entry point."""

import importlib.metadata
import json

import pytest

from loram_core.cli.main import main
from loram_core.plan.serialize import load_plan
from loram_core.testing.tiny import write_tiny_inputs

# As the core's FAST_FLAGS (loram_core.testing.tiny): a few steps, short windows, no progress bars.
FAST = ["--steps", "4", "--batch-size", "2", "--seq-len", "32", "--eval-seq-len", "64", "--eval-tokens", "1024",
        "--checkpoint-every", "2", "--calibration-samples", "4", "--no-progress"]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return write_tiny_inputs(tmp_path_factory.mktemp("inputs"))


def test_loram_run_with_llmpruner_end_to_end(llmpruner_registered, inputs, tmp_path, capsys):
    model, data = inputs
    out = tmp_path / "run"
    args = ["run", "--model", str(model), "--data", str(data), "--pruner", "llmpruner", "--ratio", "0.5",
            "--layers", "1:7", "--pruner-opt", "criterion=param_mix", "--pruner-opt", "seq_len=24",
            "--out", str(out), "--json", *FAST]
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report == json.loads((out / "report.json").read_text())
    assert report["pruner"]["name"] == "llmpruner" and report["pruner"]["pattern"] == "structured"
    assert report["params"]["pruned"] < report["params"]["original"]
    assert set(report["ppl"]) == {"original", "pruned", "pruned_lora", "loram"} and all(v > 1 for v in report["ppl"].values())
    plan = load_plan(out / "plan")
    params = plan.pruner.params
    assert (params["criterion"], params["samples"], params["seq_len"], params["layers"]) == ("param_mix", 4, 24, [1, 7])
    assert [row["kv_groups"] for row in params["per_layer"]] == [[2, 4]] * 6
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    run_json = json.loads((out / "run.json").read_text())
    assert run_json["plugins"]["pruner"]["plugin"] == "llmpruner"


def test_bad_option_is_a_clear_error_with_exit_2(llmpruner_registered, inputs, tmp_path, capsys):
    model, data = inputs
    code = main(["prune", str(tmp_path / "r"), "--model", str(model), "--data", str(data), "--pruner", "llmpruner",
                 "--pruner-opt", "criterion=taylor", *FAST])
    assert code == 2
    err = capsys.readouterr().err
    assert "criterion must be one of param_first, param_second, param_mix, l1, l2, got 'taylor'" in err
    assert "Traceback" not in err


def test_plugins_command_lists_it_when_registered(llmpruner_registered, capsys):
    assert main(["plugins", "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["llmpruner"]["provides"] == ["pruner:llmpruner"]
    assert rows["llmpruner"]["hooks"] == ["register_pruners"]


def test_unregistered_llmpruner_is_unknown_and_the_installed_names_are_listed(inputs, tmp_path, capsys):
    import loram_plugin_llmpruner
    from loram_core import plugins

    if plugins.load_plugins().is_registered(loram_plugin_llmpruner):
        pytest.skip("llmpruner is registered for the whole session (pytest --loram-plugin llmpruner)")
    model, data = inputs
    assert main(["prune", str(tmp_path / "r"), "--model", str(model), "--data", str(data), "--pruner", "llmpruner", *FAST]) == 2
    err = capsys.readouterr().err
    assert "unknown pruner 'llmpruner'" in err and "magnitude" in err and "random" in err


def test_entry_point_names_the_plugin_module():
    try:
        dist = importlib.metadata.distribution("loram-plugin-llmpruner")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("loram-plugin-llmpruner is not installed (pip install ./plugins/loram-plugin-llmpruner)")
    points = [ep for ep in importlib.metadata.entry_points(group="loram") if ep.name == "llmpruner"]
    assert [ep.value for ep in points] == ["loram_plugin_llmpruner"]
    assert dist.entry_points.select(group="loram")["llmpruner"].load().register_pruners is not None
