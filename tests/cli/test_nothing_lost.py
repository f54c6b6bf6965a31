"""Nothing lost: a command never deletes or replaces a file loram did not write (issue cases 1-3).

Each case asserts the exit code, the one-line message, and that every file that existed before is
byte-identical afterwards (the whole tree hashed before and after)."""

import hashlib
import json

import pytest

from loram_core.cli.main import main
from loram_core.testing.tiny import FAST_FLAGS


def tree(root):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def one_error_line(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


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


def test_export_force_never_replaces_a_folder_it_did_not_write(run, tmp_path, capsys):
    important = tmp_path / "sb" / "important"
    important.mkdir(parents=True)
    (important / "notes.txt").write_text("x")
    before = tree(tmp_path)
    assert main(["adapters", "export", "base", str(important), "--force"]) == 2
    assert "not a folder 'loram adapters export' wrote" in one_error_line(capsys)
    assert tree(tmp_path) == before
    # --force does replace an earlier export
    exported = tmp_path / "export"
    assert main(["adapters", "export", "base", str(exported)]) == 0
    (exported / "adapter_config.json").write_text("{}")
    assert main(["adapters", "export", "base", str(exported), "--force"]) == 0
    assert json.loads((exported / "adapter_config.json").read_text())["peft_type"] == "LORA"


def test_run_refuses_an_existing_folder_that_is_not_a_run_directory(inputs, tmp_path, capsys, monkeypatch):
    model, data = inputs
    user = tmp_path / "sb" / "u"
    (user / "merged").mkdir(parents=True)
    (user / "merged" / "thesis.txt").write_text("t")
    before = tree(tmp_path)
    flags = ["--model", str(model), "--data", str(data), *FAST_FLAGS]
    assert main(["run", *flags, "--out", str(user)]) == 2
    assert "is not a loram run directory" in one_error_line(capsys)
    monkeypatch.chdir(tmp_path)
    assert main(["run", *flags, "--out", ""]) == 2
    assert "not the current folder" in one_error_line(capsys)
    file_out = tmp_path / "sb" / "file"
    file_out.write_text("mine")
    before = tree(tmp_path)
    assert main(["run", *flags, "--out", str(file_out)]) == 2
    assert "is a file" in one_error_line(capsys)
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


def test_a_stage_flag_that_contradicts_a_finished_upstream_stage_is_refused(run, tmp_path, capsys):
    other = tmp_path / "other"
    from loram_core.testing.tiny import save_tiny_model

    save_tiny_model(other, seed=5)  # the same config, other weights
    before = tree(run)
    assert main(["eval", str(run), "--model", str(other), "--no-progress"]) == 2
    assert "would change what the finished prune stage read" in one_error_line(capsys)
    assert main(["train", str(run), "--ratio", "0.25", "--no-progress"]) == 2
    assert "ratio 0.5 -> 0.25" in one_error_line(capsys)
    assert tree(run) == before  # run.json, records and artifacts untouched


def test_a_stage_that_runs_again_makes_the_later_records_stale(run, tmp_path, capsys):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    assert (copy / "stages" / "eval.json").is_file()
    before = tree(copy)
    assert main(["train", str(copy), "--steps", "4", "--no-progress", "--json"]) == 2
    assert "finished train stage made with other settings (steps 6 -> 4); pass --overwrite" in one_error_line(capsys)
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


def test_a_second_process_on_a_busy_run_directory_stops_at_once(inputs, tmp_path, capsys):
    import os
    import signal
    import subprocess
    import sys
    import time

    model, data = inputs
    out = tmp_path / "busy"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\n"
        "from loram_core.lifecycle.rundir import RunDir\n"
        f"with RunDir({str(out)!r}).lock():\n"
        "    print('held', flush=True)\n"
        "    time.sleep(120)\n")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        flags = ["run", "--model", str(model), "--data", str(data), "--out", str(out), "--layers", "1:7", "--no-merge",
                 *FAST_FLAGS]
        t0 = time.monotonic()
        assert main(flags) == 2
        message = one_error_line(capsys)
        assert f"is in use by loram pid {holder.pid} on " in message and time.monotonic() - t0 < 10
        os.kill(holder.pid, signal.SIGKILL)  # the kernel releases the lock with its process
        holder.wait(timeout=30)
        assert main([*flags, "--json"]) == 0
        assert json.loads((out / "report.json").read_text())["ppl"]["loram"] > 1
    finally:
        holder.kill()


def test_the_registry_renames_or_replaces_only_when_asked(run, capsys):
    from loram_core.adapters import AdapterStore

    assert main(["adapters", "add", str(run / "adapter"), "--name", "ext1"]) == 2
    assert "already registered as 'base'; pass --rename" in one_error_line(capsys)
    assert [r.name for r in AdapterStore().list() if r.adapter_path == str(run / "adapter")] == ["base"]
    assert main(["adapters", "add", str(run), "--name", "ext1", "--rename"]) == 0
    assert "updated ext1, renamed from 'base': replaced the record of" in capsys.readouterr().out
    assert main(["adapters", "add", str(run), "--name", "base", "--rename"]) == 0
