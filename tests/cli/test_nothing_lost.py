"""Nothing lost: a command never deletes or replaces a file loram did not write, never rewrites a run's records,
and never shares a run directory with another process (issue cases 1-6).

Each case asserts the exit code and the one line (``one_line``: a row of docs/reliability.md), and that every file
that existed before is byte-identical afterwards (the whole tree hashed before and after)."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from loram_core.cli.main import main
from loram_core.testing.tiny import FAST_FLAGS
from loram_test_helpers import tree_hashes as tree


@pytest.fixture(scope="module")
def run(inputs, tmp_path_factory):
    """A finished run registered as 'base', in a registry of this module's own (names are this module's)."""
    model, data = inputs
    home = pytest.MonkeyPatch()
    home.setenv("LORAM_HOME", str(tmp_path_factory.mktemp("home")))
    out = tmp_path_factory.mktemp("runs") / "base"
    assert main(["run", "--model", str(model), "--data", str(data), "--ratio", "0.5", "--layers", "1:7", "--out", str(out),
                 "--no-merge", "--json", *FAST_FLAGS]) == 0
    assert main(["adapters", "add", str(out), "--name", "base"]) == 0
    yield out
    home.undo()


def test_export_force_never_replaces_a_folder_it_did_not_write(run, tmp_path, one_line):
    important = tmp_path / "sb" / "important"
    important.mkdir(parents=True)
    (important / "notes.txt").write_text("x")
    before = tree(tmp_path)
    message = one_line(["adapters", "export", "base", important, "--force"], "`adapters export --force` onto a user's folder")
    assert "not a folder 'loram adapters export' wrote" in message
    assert tree(tmp_path) == before
    # --force does replace an earlier export
    exported = tmp_path / "export"
    assert main(["adapters", "export", "base", str(exported)]) == 0
    (exported / "adapter_config.json").write_text("{}")
    assert main(["adapters", "export", "base", str(exported), "--force"]) == 0
    assert json.loads((exported / "adapter_config.json").read_text())["peft_type"] == "LORA"


def test_run_refuses_an_existing_folder_that_is_not_a_run_directory(inputs, tmp_path, one_line, monkeypatch):
    model, data = inputs
    user = tmp_path / "sb" / "u"
    (user / "merged").mkdir(parents=True)
    (user / "merged" / "thesis.txt").write_text("t")
    flags = ["--model", model, "--data", data, *FAST_FLAGS]
    file_out = tmp_path / "sb" / "file"
    file_out.write_text("mine")
    before = tree(tmp_path)
    message = one_line(["run", *flags, "--out", user], "`--out` an existing folder that is not a run directory")
    assert "is not a loram run directory" in message
    message = one_line(["run", *flags, "--out", file_out], "`--out` a file")
    assert "is a file" in message
    monkeypatch.chdir(tmp_path)
    assert "not the current folder" in one_line(["run", *flags, "--out", ""], '`--out ""`')
    assert tree(tmp_path) == before


def test_rm_delete_files_deletes_only_what_loram_wrote(run, inputs, tmp_path, capsys):
    import shutil

    model, _ = inputs
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    (copy / "adapter" / "my-notes.txt").write_text("keep me")
    (copy / "beside.txt").write_text("keep me too")
    assert main(["adapters", "add", str(copy), "--name", "copy"]) == 0
    capsys.readouterr()
    assert main(["adapters", "rm", "copy", "--delete-files"]) == 0
    said = capsys.readouterr().out
    assert "deleted adapter_model.safetensors, adapter_config.json, loram.json, README.md" in said and "other files" in said
    assert sorted(p.name for p in (copy / "adapter").iterdir()) == ["my-notes.txt"]
    assert (copy / "beside.txt").read_text() == "keep me too" and (copy / "plan" / "plan.json").is_file()

    # an adapter trained elsewhere: loram wrote none of its files, so none is deleted
    external = tmp_path / "external"
    shutil.copytree(run / "adapter", external)
    (external / "loram.json").unlink()
    before = tree(external)
    assert main(["adapters", "add", str(external), "--name", "ext", "--model", str(model)]) == 0
    assert main(["adapters", "rm", "ext", "--delete-files"]) == 0
    assert "trained elsewhere" in capsys.readouterr().out
    assert tree(external) == before


def test_a_stage_flag_that_contradicts_a_finished_upstream_stage_is_refused(run, tmp_path, one_line):
    other = tmp_path / "other"
    from loram_core.testing.tiny import save_tiny_model

    save_tiny_model(other, seed=5)  # the same config, other weights
    before = tree(run)
    message = one_line(["eval", run, "--model", other, "--no-progress"], "a stage command naming other model weights")
    assert "would change what the finished prune stage read" in message
    message = one_line(["train", run, "--ratio", "0.25", "--no-progress"], "a stage command changing an upstream setting")
    assert "ratio 0.5 -> 0.25" in message
    assert tree(run) == before  # run.json, records and artifacts untouched


def test_a_stage_that_runs_again_makes_the_later_records_stale(run, tmp_path, one_line, capsys):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    assert (copy / "stages" / "eval.json").is_file()
    before = tree(copy)
    message = one_line(["train", copy, "--steps", "4", "--no-progress", "--json"],
                       "a stage command changing that stage's own setting, without `--overwrite`")
    assert "finished train stage made with other settings (steps 6 -> 4); pass --overwrite" in message
    assert tree(copy) == before
    assert main(["train", str(copy), "--steps", "4", "--overwrite", "--no-progress", "--json"]) == 0
    capsys.readouterr()
    assert json.loads((copy / "run.json").read_text())["settings"]["steps"] == 4
    assert not (copy / "stages" / "eval.json").exists() and not (copy / "stages" / "recover.json").exists()
    report = json.loads((copy / "report.json").read_text())
    assert report["train"]["steps"] == 4 and report["ppl"]["loram"] is None  # nothing claims the old numbers
    assert main(["recover", str(copy), "--no-progress", "--json"]) == 0
    assert main(["eval", str(copy), "--no-progress", "--json"]) == 0
    report = json.loads((copy / "report.json").read_text())
    assert report["train"]["steps"] == 4 and report["ppl"]["loram"] > 1


def test_two_runs_on_one_run_directory_one_wins_and_a_killed_winner_is_taken_over(inputs, tmp_path, one_line):
    model, data = inputs
    out = tmp_path / "busy"
    flags = ["run", "--model", str(model), "--data", str(data), "--out", str(out), "--layers", "1:7", "--no-merge",
             *FAST_FLAGS, "--steps", "400", "--checkpoint-every", "20"]
    winner = subprocess.Popen([sys.executable, "-m", "loram_core.cli", *flags], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (out / "checkpoints" / "step-20").is_dir():  # the winner holds the lock and is training
            assert winner.poll() is None and time.monotonic() < deadline, winner.stderr and winner.stderr.read()
            time.sleep(0.05)
        t0 = time.monotonic()
        message = one_line(flags, "a second process on a busy run directory")
        assert f"is in use by loram pid {winner.pid} on " in message and time.monotonic() - t0 < 10
        os.kill(winner.pid, signal.SIGKILL)  # the kernel releases the lock with its process: nothing stale to clear
        winner.wait(timeout=30)
        assert winner.poll() is not None and not (out / "stages" / "train.json").exists()
        assert main([*flags, "--json"]) == 0  # a third run takes over and resumes the winner's training
        report = json.loads((out / "report.json").read_text())
        assert report["train"]["steps"] == 400 and report["ppl"]["loram"] > 1
    finally:
        winner.kill()


def test_the_registry_renames_or_replaces_only_when_asked(run, one_line, capsys):
    from loram_core.adapters import AdapterStore

    message = one_line(["adapters", "add", run / "adapter", "--name", "ext1"],
                       "registering a registered adapter under a new name")
    assert "already registered as 'base'; pass --rename" in message
    assert [r.name for r in AdapterStore().list() if r.adapter_path == str(run / "adapter")] == ["base"]
    assert main(["adapters", "add", str(run), "--name", "ext1", "--rename"]) == 0
    assert "updated ext1, renamed from 'base': replaced the record of" in capsys.readouterr().out
    assert main(["adapters", "add", str(run), "--name", "base", "--rename"]) == 0
