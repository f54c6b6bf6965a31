"""The lifecycle as data: the stage table drives ``run_lifecycle``, the CLI's stage commands and the checks
of what a stage command may change; a new stage is one module and one row."""

import json

import pytest

import loram_core
from loram_core.cli.main import build_parser, main
from loram_core.errors import LoramError
from loram_core.lifecycle import stages as table
from loram_core.lifecycle.settings import FIELDS
from loram_core.testing.tiny import FAST_FLAGS

QUICK = dict(steps=2, batch_size=2, seq_len=32, eval_seq_len=64, eval_tokens=512, layers="1:7", merge=False)


def stage_commands():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return sub.choices


def test_the_table_is_the_lifecycle_order_and_every_setting_is_read_by_a_stage():
    assert [s.name for s in table.STAGES] == ["prune", "align", "train", "recover", "merge", "eval", "tasks"]
    assert {r for s in table.STAGES for r in s.reads} == FIELDS  # so no setting escapes the provenance check
    assert [s.name for s in table.STAGES if s.collective] == ["align", "train"]
    assert all(callable(s.load()) for s in table.STAGES)
    commands = stage_commands()
    helps = {a.dest: a.help for a in next(a for a in build_parser()._actions if a.dest == "command")._choices_actions}
    for stage in table.STAGES:  # a row's command (its name, or `eval` for tasks) says what the row does
        assert stage.cli in commands and stage.help in helps[stage.cli].split("; ")
    assert helps["eval"] == "perplexity rows and report; downstream task scores (docs/tasks.md)"


def test_the_python_api_runs_the_lifecycle(inputs, tmp_path):
    model, data = inputs
    report = loram_core.run(tmp_path / "run", model=str(model), data=str(data), **QUICK)
    assert report == json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["ppl"]["loram"] > 1 and report["train"]["steps"] == 2
    with pytest.raises(LoramError, match="lr must be a number in"):
        loram_core.run(tmp_path / "bad", model=str(model), data=str(data), lr=-1)
    assert not (tmp_path / "bad").exists()  # validated before anything was written


def test_a_new_stage_is_one_function_and_one_row(inputs, tmp_path, monkeypatch):
    import sys
    import types

    calls = []
    module = types.ModuleType("loram_test_extra_stage")

    def run_extra(run, res):
        calls.append(run.root)
        done = run.done("extra", "k1", run.root / "extra.txt")
        if done:
            return done
        (run.root / "extra.txt").write_text(res.settings.model)
        return run.finish("extra", "k1", {"wrote": "extra.txt"})

    module.run_extra = run_extra
    monkeypatch.setitem(sys.modules, module.__name__, module)
    row = table.Stage("extra", f"{module.__name__}:run_extra", "an extra stage", needs_data=False, reads=("model",))
    monkeypatch.setattr(table, "STAGES", (*table.STAGES, row))

    model, data = inputs
    out = tmp_path / "run"
    assert main(["run", "--model", str(model), "--data", str(data), "--out", str(out), "--layers", "1:7", "--no-merge",
                 "--json", *FAST_FLAGS]) == 0
    assert calls == [out] and (out / "extra.txt").read_text() == str(model)
    assert json.loads((out / "stages" / "extra.json").read_text())["wrote"] == "extra.txt"
    assert "extra" in stage_commands()  # `loram extra RUN_DIR`, with the row's help
    assert main(["extra", str(out), "--no-progress", "--json"]) == 0 and calls == [out, out]


def test_a_pruner_that_read_no_calibration_data_does_not_pin_seq_len(inputs, tmp_path, capsys):
    prune = next(s for s in table.STAGES if s.name == "prune")
    assert "seq_len" in prune.settings_read({"calibrated": True}) and "seq_len" in prune.settings_read({})
    assert not {"seq_len", "data", "calibration_samples"} & set(prune.settings_read({"calibrated": False}))
    model, data = inputs
    out = tmp_path / "run"
    assert main(["prune", str(out), "--model", str(model), "--data", str(data), "--no-progress", "--json"]) == 0
    assert json.loads((out / "stages" / "prune.json").read_text())["calibrated"] is False  # magnitude: weights only
    capsys.readouterr()
    # the train stage may take another seq_len: the finished prune stage never read it
    assert main(["train", str(out), "--seq-len", "16", "--steps", "1", "--batch-size", "2", "--no-progress", "--json"]) == 0
