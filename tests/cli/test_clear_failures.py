"""Failures of the machine or of damaged files: one line naming what is wrong and what to do, exit 2, and every
earlier file intact (issue cases of "one line and exit 2 ... today a traceback")."""

import errno
import hashlib
import json
import shutil

import pytest

from loram_core.cli.main import environment_error, main
from loram_core.testing.tiny import FAST_FLAGS


def tree(root):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture(scope="module")
def run(inputs, tmp_path_factory):
    model, data = inputs
    out = tmp_path_factory.mktemp("runs") / "base"
    assert main(["run", "--model", str(model), "--data", str(data), "--layers", "1:7", "--out", str(out), "--no-merge",
                 "--json", *FAST_FLAGS]) == 0
    return out


@pytest.mark.parametrize("code, expected", [
    (errno.ENOSPC, "no space left on the device"), (errno.EACCES, "choose a folder you may write to"),
    (errno.EROFS, "choose a folder you may write to"), (errno.ENOTDIR, "a file stands where a folder is needed"),
])
def test_errors_of_the_machine_are_one_line(code, expected):
    assert expected in environment_error(OSError(code, "it failed", "/some/path"))
    assert environment_error(OSError(errno.EBADF, "bad fd")) is None  # a bug of ours: a traceback, exit 1


def test_an_unwritable_run_directory_is_one_line(inputs, tmp_path, capsys, monkeypatch):
    import loram_core.lifecycle.rundir as rundir

    model, data = inputs

    def refuse(*_a, **_k):
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "ro" / "run.json"))

    monkeypatch.setattr(rundir, "write_json", refuse)
    assert main(["run", "--model", str(model), "--data", str(data), "--out", str(tmp_path / "ro"), *FAST_FLAGS]) == 2
    assert "permission denied" in one_error_line(capsys)


def test_a_corrupt_report_is_one_line_naming_the_command_that_writes_it(run, tmp_path, capsys):
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    (copy / "report.json").write_text('{"schema": 1, "ppl": {')
    before = tree(copy)
    assert main(["publish", str(copy), str(tmp_path / "pub")]) == 2
    assert f"'loram eval {copy}' writes it again" in one_error_line(capsys)
    assert main(["report", str(copy), "--out", str(tmp_path / "rep")]) == 2
    assert "report.json is unreadable" in one_error_line(capsys)
    assert tree(copy) == before


def test_a_damaged_checkpoint_is_one_line(run, tmp_path, capsys):
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    step = sorted((copy / "checkpoints").glob("step-*"))[-1]
    optimizer = step / "optimizer.pt"
    optimizer.write_bytes(optimizer.read_bytes()[:100])  # truncated
    (copy / "stages" / "train.json").unlink()  # train again: it resumes from the newest checkpoint
    assert main(["train", str(copy), "--no-progress", "--json"]) == 2
    message = one_error_line(capsys)
    assert f"checkpoint {step} is damaged" in message and "delete that folder" in message


def test_a_config_value_of_the_wrong_type_is_one_line(inputs, tmp_path, capsys):
    model, data = inputs
    broken = tmp_path / "model"
    shutil.copytree(model, broken)
    config = json.loads((broken / "config.json").read_text())
    (broken / "config.json").write_text(json.dumps({**config, "hidden_size": "64"}))
    before = tree(tmp_path)
    assert main(["run", "--model", str(broken), "--data", str(data), "--out", str(tmp_path / "run"), *FAST_FLAGS]) == 2
    message = one_error_line(capsys)
    assert "hidden_size" in message and "fix its config.json" in message and "delete" not in message
    assert tree(tmp_path) == before


@pytest.mark.parametrize("flag", ["--rank", "--batch-size", "--seq-len"])
def test_estimate_refuses_a_zero_like_a_run_does(flag, capsys):
    assert main(["estimate", "--model", "smollm2-135m", "--pruner", "magnitude", "--ratio", "0.5", flag, "0"]) == 2
    assert flag.lstrip("-").replace("-", "_") in one_error_line(capsys)


def test_a_rank_above_the_layer_width_is_refused_before_work_starts(inputs, tmp_path, capsys):
    model, data = inputs
    out = tmp_path / "run"
    # the tiny model's k_proj is 32 x 64: rank 33 cannot be low-rank there
    assert main(["run", "--model", str(model), "--data", str(data), "--out", str(out), "--rank", "33", *FAST_FLAGS]) == 2
    assert "--rank 33 is above the width of model.layers.0.self_attn.k_proj (32)" in one_error_line(capsys)
    assert not out.exists()


def test_a_layer_range_that_prunes_nothing_says_so(tmp_path, capsys):
    from loram_core.testing.tiny import save_tiny_model

    model = save_tiny_model(tmp_path / "six", layers=6)  # the default keeps the first 4 and last 2 dense: nothing left
    (tmp_path / "data.txt").write_text("\n\n".join(f"the king said {i} words to the sea " * 20 for i in range(40)))
    assert main(["prune", str(tmp_path / "run"), "--model", str(model), "--data", str(tmp_path / "data.txt"),
                 "--ratio", "0.5", "--no-progress", "--json"]) == 0
    err = capsys.readouterr().err
    assert "pruner 'magnitude' at ratio 0.5 pruned nothing (layers 4:4 of 6); pass --layers START:END" in err


@pytest.mark.parametrize("argv, expected", [
    (["run", "--bogus"], "unrecognized arguments: --bogus (see 'loram --help')"),
    (["run", "--schedule", "nope"], "loram run: argument --schedule: invalid choice: 'nope'"),
    (["adapters", "rm"], "loram adapters rm: the following arguments are required: name"),
])
def test_a_bad_flag_is_one_line_not_the_usage(argv, expected, capsys):
    assert main(argv) == 2
    assert expected in one_error_line(capsys)


def test_chat_with_stdin_closed_is_one_line(inputs, monkeypatch, capsys):
    import sys

    model, _ = inputs
    monkeypatch.setattr(sys, "stdin", None)  # what Python gives a process started with stdin closed
    assert main(["chat", "--model", str(model)]) == 2
    assert "stdin is closed; use 'loram generate --prompt TEXT'" in one_error_line(capsys)


def test_an_evaluation_window_longer_than_the_test_text_is_refused_before_training(inputs, tmp_path, capsys):
    model, data = inputs
    out = tmp_path / "run"
    flags = [f for f in FAST_FLAGS if f not in ("--eval-tokens", "1024")]
    assert main(["run", "--model", str(model), "--data", str(data), "--out", str(out), *flags, "--eval-tokens", "100",
                 "--eval-seq-len", "200"]) == 2
    assert "fewer than one --eval-seq-len window of 200" in one_error_line(capsys)
    assert not out.exists()


@pytest.mark.parametrize("command", ["publish", "report", "bench"])
def test_an_out_that_is_a_file_is_one_line(command, run, inputs, tmp_path, capsys):
    model, data = inputs
    target = tmp_path / "taken"
    target.write_text("mine")
    argv = {"publish": ["publish", str(run), str(target)],
            "report": ["report", str(run), "--out", str(target), "--no-plots"],
            "bench": ["bench", "--model", str(model), "--data", str(data), "--pruners", "random", "--out", str(target),
                      "--no-baselines", "--no-plots", "--", *FAST_FLAGS]}[command]
    assert main(argv) == 2
    one_error_line(capsys)
    assert target.read_text() == "mine"
