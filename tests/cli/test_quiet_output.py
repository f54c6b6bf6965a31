"""Output when it is not a terminal: the report (tables or JSON) and nothing else; one-line messages are never
wrapped at a console width."""

import json

from loram_core.cli.main import main
from loram_core.testing.tiny import FAST_FLAGS


def test_a_run_into_a_pipe_prints_the_report_and_nothing_else(inputs, tmp_path, capsys):
    model, data = inputs
    flags = [f for f in FAST_FLAGS if f != "--no-progress"]  # no flag needed: stderr is not a terminal here
    assert main(["run", "--model", str(model), "--data", str(data), "--out", str(tmp_path / "run"), "--layers", "1:7",
                 "--json", *flags]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""  # no progress bars, stage lines, transformers bars or bitsandbytes notices
    assert json.loads(captured.out)["ppl"]["loram"] > 1


def test_one_line_messages_are_not_wrapped(inputs, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "40")
    model, data = inputs
    out = tmp_path / "a-folder-with-a-rather-long-name-to-go-past-forty-columns" / "run"
    assert main(["run", "--model", str(model), "--data", str(data), "--out", str(out), "--layers", "1:7", "--no-merge",
                 "--json", *FAST_FLAGS]) == 0
    capsys.readouterr()
    assert main(["adapters", "add", str(out), "--name", "wrapped", "--rename"]) == 0
    printed = capsys.readouterr().out
    assert printed.count("\n") == 1 and "wrapped" in printed
