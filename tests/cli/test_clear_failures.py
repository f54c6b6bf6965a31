"""Failures of the machine or of damaged files, and checks that belong before work starts: one line naming what
is wrong and what to do, exit 2, every earlier file intact (issue cases 7, 9, 10, 11). ``one_line`` checks the
answer and that it is a row of docs/reliability.md."""

import errno
import json
import shutil

import pytest
from safetensors.torch import load_file, save_file

from loram_core.cli.main import environment_error, main
from loram_core.testing.tiny import FAST_FLAGS
from loram_test_helpers import tree_hashes as tree


@pytest.fixture(scope="module")
def run(inputs, tmp_path_factory):
    model, data = inputs
    out = tmp_path_factory.mktemp("runs") / "base"
    assert main(["run", "--model", str(model), "--data", str(data), "--layers", "1:7", "--out", str(out), "--no-merge",
                 "--json", *FAST_FLAGS]) == 0
    return out


def _copy(run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    return copy


def _truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize("code, expected", [
    (errno.ENOSPC, "no space left on the device"), (errno.EACCES, "choose a folder you may write to"),
    (errno.EROFS, "choose a folder you may write to"), (errno.ENOTDIR, "a file stands where a folder is needed"),
])
def test_errors_of_the_machine_are_one_line(code, expected):
    assert expected in environment_error(OSError(code, "it failed", "/some/path"))
    assert environment_error(OSError(errno.EBADF, "bad fd")) is None  # a bug of ours: a traceback, exit 1


def test_an_unwritable_run_directory_is_one_line(inputs, tmp_path, one_line, monkeypatch):
    import loram_core.lifecycle.rundir as rundir

    model, data = inputs

    def refuse(*_a, **_k):
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "ro" / "run.json"))

    monkeypatch.setattr(rundir, "write_json", refuse)
    message = one_line(["run", "--model", model, "--data", data, "--out", tmp_path / "ro", *FAST_FLAGS],
                       "`--out` a folder the user may not write")
    assert "permission denied" in message


def test_a_corrupt_report_is_one_line_naming_the_command_that_writes_it(run, tmp_path, one_line):
    copy = _copy(run, tmp_path)
    (copy / "report.json").write_text('{"schema": 1, "ppl": {')
    before = tree(copy)
    message = one_line(["publish", copy, tmp_path / "pub"], "a corrupt report.json, `publish`")
    assert f"'loram eval {copy}' writes it again" in message
    message = one_line(["report", copy, "--out", tmp_path / "rep"], "a corrupt report.json, `report`")
    assert "report.json is unreadable" in message
    assert tree(copy) == before


def test_a_damaged_checkpoint_is_one_line(run, tmp_path, one_line):
    copy = _copy(run, tmp_path)
    step = sorted((copy / "checkpoints").glob("step-*"))[-1]
    optimizer = step / "optimizer.pt"
    optimizer.write_bytes(optimizer.read_bytes()[:100])  # truncated
    (copy / "stages" / "train.json").unlink()  # train again: it resumes from the newest checkpoint
    message = one_line(["train", copy, "--no-progress", "--json"], "a truncated `optimizer.pt` of a checkpoint")
    assert f"checkpoint {step} is damaged" in message and "delete that folder" in message


@pytest.mark.parametrize("folder, stage, command", [("adapter-pruned", "train", "run"), ("adapter", "recover", "eval")])
def test_a_truncated_adapter_of_a_run_is_one_line_naming_the_stage_that_rebuilds_it(
        run, inputs, tmp_path, one_line, folder, stage, command):
    model, data = inputs
    copy = _copy(run, tmp_path)
    _truncate(copy / folder / "adapter_model.safetensors")
    (copy / "stages" / "eval.json").unlink()
    before = tree(copy)
    argv = (["run", "--model", model, "--data", data, "--layers", "1:7", "--out", copy, "--no-merge", *FAST_FLAGS]
            if command == "run" else ["eval", copy, "--no-progress"])
    message = one_line(argv, f"a truncated `{folder}/` of a run, `loram {command}`")
    assert "is not a readable safetensors file" in message
    assert message.endswith(f"delete {copy / folder} and re-run 'loram {stage} {copy}'")
    assert tree(copy) == before
    shutil.rmtree(copy / folder)  # what the line says to do works
    assert main(["run", "--model", str(model), "--data", str(data), "--layers", "1:7", "--out", str(copy), "--no-merge",
                 "--json", *FAST_FLAGS]) == 0


def test_a_truncated_registered_adapter_is_one_line(run, tmp_path, one_line):
    copy = _copy(run, tmp_path)
    assert main(["adapters", "add", str(copy), "--name", "damaged"]) == 0
    _truncate(copy / "adapter" / "adapter_model.safetensors")
    message = one_line(["generate", "--adapter", "damaged", "--prompt", "hi", "--max-new-tokens", "2"],
                       "a truncated registered adapter, `generate`")
    assert f"adapter 'damaged' cannot be loaded; delete {copy / 'adapter'} and re-run 'loram recover {copy}'" in message


def test_a_changed_registered_adapter_is_warned_about_once(run, tmp_path, one_line):
    copy = _copy(run, tmp_path)
    assert main(["adapters", "add", str(copy), "--name", "edited"]) == 0
    weights = copy / "adapter" / "adapter_model.safetensors"
    state = load_file(weights)
    save_file({k: v * 2 for k, v in state.items()}, weights)  # whole, but not what was registered
    message = one_line(["generate", "--adapter", "edited", "--prompt", "hi", "--max-new-tokens", "2", "--json"],
                       "a registered adapter whose weights changed, `generate` (a warning, once)", code=0)
    assert "changed since it was registered" in message


def test_a_damaged_file_of_the_users_model_is_never_answered_with_delete_it(inputs, tmp_path, one_line):
    model, data = inputs
    broken = tmp_path / "model"
    shutil.copytree(model, broken)
    _truncate(broken / "model.safetensors")
    before = tree(broken)
    message = one_line(["run", "--model", broken, "--data", data, "--out", tmp_path / "run", "--layers", "1:7",
                        *FAST_FLAGS], "a truncated weights file of the user's original model")
    assert "is not a readable safetensors file" in message and "restore it from where the model came from" in message
    assert "delete" not in message
    assert tree(broken) == before


def test_a_config_value_of_the_wrong_type_is_one_line(inputs, tmp_path, one_line):
    model, data = inputs
    broken = tmp_path / "model"
    shutil.copytree(model, broken)
    config = json.loads((broken / "config.json").read_text())
    (broken / "config.json").write_text(json.dumps({**config, "hidden_size": "64"}))
    before = tree(tmp_path)
    message = one_line(["run", "--model", broken, "--data", data, "--out", tmp_path / "run", *FAST_FLAGS],
                       'a `config.json` value of the wrong type (`"hidden_size": "64"`)')
    assert "hidden_size" in message and "fix its config.json" in message and "delete" not in message
    assert tree(tmp_path) == before


def test_estimate_refuses_a_models_own_code_unless_trusted(tmp_path, one_line):
    folder = tmp_path / "custom"
    folder.mkdir()
    ran = tmp_path / "the-code-ran"
    (folder / "config.json").write_text(json.dumps({"model_type": "custom_xyz", "hidden_size": 64,
                                                    "auto_map": {"AutoConfig": "configuration_xyz.XyzConfig"}}))
    (folder / "configuration_xyz.py").write_text(f"open({str(ran)!r}, 'w').write('ran')\n")
    message = one_line(["estimate", "--model", folder], "`estimate` on a folder with its own model code")
    assert "loram runs a model's code only when you pass --trust-remote-code" in message
    assert not ran.exists()


@pytest.mark.parametrize("flag", ["--rank", "--batch-size", "--seq-len"])
def test_estimate_refuses_a_zero_like_a_run_does(flag, one_line):
    message = one_line(["estimate", "--model", "smollm2-135m", "--pruner", "magnitude", "--ratio", "0.5", flag, "0"],
                       f"`estimate {flag} 0`")
    assert flag.lstrip("-").replace("-", "_") in message


def test_a_rank_above_the_layer_width_is_refused_before_work_starts(inputs, tmp_path, one_line):
    model, data = inputs
    out = tmp_path / "run"
    # the tiny model's k_proj is 32 x 64: rank 33 cannot be low-rank there
    message = one_line(["run", "--model", model, "--data", data, "--out", out, "--rank", "33", *FAST_FLAGS],
                       "a LoRA rank above a layer's width")
    assert "--rank 33 is above the width of model.layers.0.self_attn.k_proj (32)" in message
    assert not out.exists()


def test_a_layer_range_that_prunes_nothing_says_so(tmp_path, one_line):
    from loram_core.testing.tiny import save_tiny_model

    model = save_tiny_model(tmp_path / "six", layers=6)  # the default keeps the first 4 and last 2 dense: nothing left
    (tmp_path / "data.txt").write_text("\n\n".join(f"the king said {i} words to the sea " * 20 for i in range(40)))
    message = one_line(["prune", tmp_path / "run", "--model", model, "--data", tmp_path / "data.txt", "--ratio", "0.5",
                        "--no-progress", "--json"], "a layer range that prunes nothing (a warning)", code=0)
    assert "pruner 'magnitude' at ratio 0.5 pruned nothing (layers 4:4 of 6); pass --layers START:END" in message


def test_training_that_diverges_stops_with_one_line(inputs, tmp_path, one_line, monkeypatch):
    import loram_core.train.loop as loop

    model, data = inputs
    real = loop.token_nll
    monkeypatch.setattr(loop, "token_nll", lambda *a, **k: real(*a, **k) * float("nan"))
    out = tmp_path / "run"
    message = one_line(["run", "--model", model, "--data", data, "--out", out, "--layers", "1:7", *FAST_FLAGS],
                       "training whose loss is not finite")
    assert "training diverged: the loss at step 1 is nan; lower --lr" in message
    assert not (out / "adapter-pruned").exists() and not (out / "stages" / "train.json").exists()


def test_an_adapter_whose_perplexity_is_not_finite_is_registered_as_diverged(inputs, tmp_path, one_line, monkeypatch):
    import loram_core.evaluate as evaluate
    from loram_core.adapters import AdapterStore

    model, data = inputs
    real = evaluate.perplexity

    def overflowing(model, *args, **kwargs):
        result = real(model, *args, **kwargs)
        return result if not hasattr(model, "peft_config") else type(result)(ppl=float("inf"), nll=result.nll,
                                                                              tokens=result.tokens)

    monkeypatch.setattr(evaluate, "perplexity", overflowing)
    out = tmp_path / "inf"
    message = one_line(["run", "--model", model, "--data", data, "--out", out, "--layers", "1:7", "--no-merge", "--json",
                        *FAST_FLAGS], "a perplexity that is not finite (a warning)", code=0)
    assert "perplexity not finite (pruned_lora inf, loram inf)" in message
    record = next(r for r in AdapterStore().list() if r.run_dir == str(out.resolve()))
    assert record.status() == "diverged"


@pytest.mark.parametrize("argv, expected", [
    (["run", "--bogus"], "unrecognized arguments: --bogus (see 'loram --help')"),
    (["run", "--schedule", "nope"], "loram run: argument --schedule: invalid choice: 'nope'"),
    (["adapters", "rm"], "loram adapters rm: the following arguments are required: name"),
], ids=["unknown flag", "bad choice", "missing argument"])
def test_a_bad_flag_is_one_line_not_the_usage(argv, expected, one_line):
    assert expected in one_line(argv, f"a bad flag: `loram {' '.join(argv)}`")


def test_chat_with_stdin_closed_is_one_line(inputs, monkeypatch, one_line):
    import sys

    model, _ = inputs
    monkeypatch.setattr(sys, "stdin", None)  # what Python gives a process started with stdin closed
    message = one_line(["chat", "--model", model], "`chat` with stdin closed")
    assert "stdin is closed; use 'loram generate --prompt TEXT'" in message


def test_an_evaluation_window_longer_than_the_test_text_is_refused_before_training(inputs, tmp_path, one_line):
    model, data = inputs
    out = tmp_path / "run"
    flags = [f for f in FAST_FLAGS if f not in ("--eval-tokens", "1024")]
    message = one_line(["run", "--model", model, "--data", data, "--out", out, *flags, "--eval-tokens", "100",
                        "--eval-seq-len", "200"], "an `--eval-seq-len` longer than the test text")
    assert "fewer than one --eval-seq-len window of 200" in message
    assert not out.exists()


@pytest.mark.parametrize("command", ["publish", "report", "bench"])
def test_an_out_that_is_a_file_is_one_line(command, run, inputs, tmp_path, one_line):
    model, data = inputs
    target = tmp_path / "taken"
    target.write_text("mine")
    argv = {"publish": ["publish", run, target],
            "report": ["report", run, "--out", target, "--no-plots"],
            "bench": ["bench", "--model", model, "--data", data, "--pruners", "random", "--out", target,
                      "--no-baselines", "--no-plots", "--", *FAST_FLAGS]}[command]
    one_line(argv, f"`{command}` with OUT a file")
    assert target.read_text() == "mine"
