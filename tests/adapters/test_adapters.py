"""The adapter registry: runs register with full provenance; list/show/add/rm/export; concurrency; corruption."""

import json
import multiprocessing
import os
import shutil
import sqlite3
import traceback

import pytest
import torch
from peft import PeftModel
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM

from loram_core import registry
from loram_core.adapters import AdapterRecord, AdapterStore, RegistryCorruptError
from loram_core.adapters.schema import LATEST, migrate
from loram_core.cli.main import main
from loram_core.errors import LoramError
from loram_core.lifecycle.rundir import file_hash
from loram_core.models.loading import load_config
from loram_core.plan.fingerprint import ModelFingerprint
from loram_core.plan.serialize import load_plan, plan_hash
from loram_core.testing.tiny import FAST_FLAGS, save_tiny_model
from loram_test_helpers import cli_json, error_line, external_adapter


@pytest.fixture(scope="module")
def run(inputs, tmp_path_factory):
    """One tiny `loram run`, registering into its own registry."""
    model, data = inputs
    home = tmp_path_factory.mktemp("home")
    out = tmp_path_factory.mktemp("runs") / "tiny-run"
    mp = pytest.MonkeyPatch()
    mp.setenv("LORAM_HOME", str(home))
    assert main(["run", "--model", str(model), "--data", str(data), "--pruner", "magnitude", "--ratio", "0.5",
                 "--no-merge", "--out", str(out), "--json", *FAST_FLAGS]) == 0
    mp.undo()
    return out, home


@pytest.fixture
def home(tmp_path, monkeypatch):
    path = tmp_path / "home"
    monkeypatch.setenv("LORAM_HOME", str(path))
    return path


def test_a_run_registers_its_adapter_with_full_provenance(run, inputs, monkeypatch):
    out, home = run
    model, data = inputs
    monkeypatch.setenv("LORAM_HOME", str(home))
    [record] = AdapterStore().list()
    report = json.loads((out / "report.json").read_text())
    sidecar = json.loads((out / "adapter" / "loram.json").read_text())
    assert record.name == "tiny-run" and record.source == "run" and record.run_dir == str(out.resolve())
    assert record.adapter_path == str((out / "adapter").resolve())
    assert record.content_hash == file_hash(out / "adapter" / "adapter_model.safetensors")
    assert record.status() == "ok"
    assert record.base == ModelFingerprint.from_config(load_config(model), name_or_path=str(model))
    assert record.plan_hash == plan_hash(load_plan(out / "plan")) == sidecar["plan_hash"]
    versions = {k: v.version for k, v in registry.collect("pruner").items()}
    assert record.pruner == {"name": "magnitude", "version": versions["magnitude"], "params": report["pruner"]["params"]}
    assert record.recoverer == {"name": "zero", "version": registry.collect("recoverer")["zero"].version}
    assert record.quantizer is None and record.aligner is None
    assert record.data == str(data)
    # The metrics are the report's, attached once report.json was written (after the recover stage).
    assert record.metrics["ppl"] == report["ppl"] and record.metrics["eval"] == report["eval"]
    assert record.metrics["train"] == report["train"] and record.metrics["params"] == report["params"]
    assert all(v is not None for v in record.metrics["ppl"].values())
    assert record.lora["r"] == json.loads((out / "adapter" / "adapter_config.json").read_text())["r"]


def test_quantizer_and_aligner_are_recorded_with_versions_and_options(stage_plugins, inputs, home, tmp_path):
    model, data = inputs
    out = tmp_path / "qa"
    assert main(["run", "--model", str(model), "--data", str(data), "--pruner", "magnitude", "--quantizer", "grid",
                 "--aligner", "scale-norm", "--aligner-opt", "scale=3", "--no-merge", "--out", str(out),
                 *FAST_FLAGS]) == 0
    [record] = AdapterStore().list()
    used = json.loads((out / "run.json").read_text())["plugins"]
    assert record.quantizer == {"name": "grid", "version": used["quantizer"]["version"], "options": {}}
    assert record.aligner == {"name": "scale-norm", "version": used["aligner"]["version"], "options": {"scale": 3}}
    assert record.metrics["align"] == json.loads((out / "report.json").read_text())["align"]


def test_registering_the_same_run_again_updates_its_record(run, inputs, monkeypatch, capsys):
    out, home = run
    model, data = inputs
    monkeypatch.setenv("LORAM_HOME", str(home))
    before = AdapterStore().get("tiny-run")
    assert main(["run", "--model", str(model), "--data", str(data), "--pruner", "magnitude", "--ratio", "0.5",
                 "--no-merge", "--out", str(out), "--json", *FAST_FLAGS]) == 0
    assert main(["adapters", "add", str(out)]) == 0
    assert main(["adapters", "add", str(out / "adapter")]) == 0  # a run's adapter/ folder means the run
    assert AdapterStore().list() == [before]


def test_list_show_rm_export_round_trip(run, inputs, home, tmp_path, capsys):
    out, _ = run
    model, _ = inputs
    assert main(["adapters", "add", str(out), "--name", "shakes"]) == 0
    listed = cli_json(capsys, "adapters", "list", "--json")
    shown = cli_json(capsys, "adapters", "show", "shakes", "--json")
    assert [r["name"] for r in listed] == ["shakes"] and listed[0] == shown and shown["status"] == "ok"
    assert shown["plan_hash"] and shown["metrics"]["ppl"]["loram"] is not None
    assert [r["name"] for r in cli_json(capsys, "adapters", "list", "--model", str(model), "--json")] == ["shakes"]
    other = save_tiny_model(tmp_path / "other", layers=6)
    assert cli_json(capsys, "adapters", "list", "--model", str(other), "--json") == []

    exported = tmp_path / "export"
    assert main(["adapters", "export", "shakes", str(exported)]) == 0
    assert sorted(p.name for p in exported.iterdir()) == ["README.md", "adapter_config.json",
                                                          "adapter_model.safetensors", "loram.json"]
    card = (exported / "README.md").read_text()
    assert "library_name: peft" in card and f"base_model: {model}" in card and shown["plan_hash"] in card
    assert json.loads((exported / "loram.json").read_text())["registry"] == {k: v for k, v in shown.items() if k != "status"}
    ids = torch.randint(0, 128, (2, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        from_export = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(model), exported)(ids).logits
        in_place = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(model), out / "adapter")(ids).logits
    assert torch.equal(from_export, in_place)
    assert main(["adapters", "export", "shakes", str(exported)]) == 2  # never overwrites without --force
    assert "exists and is not empty" in error_line(capsys)

    assert main(["adapters", "rename", "shakes", "bard"]) == 0
    assert main(["adapters", "rm", "bard"]) == 0
    assert cli_json(capsys, "adapters", "list", "--json") == []
    assert (out / "adapter" / "adapter_model.safetensors").is_file()  # rm keeps the files by default
    assert main(["adapters", "show", "bard"]) == 2
    assert "no adapter named 'bard'" in error_line(capsys)


def test_rm_delete_files_and_changed_weights_are_flagged(inputs, home, tmp_path, capsys):
    model, _ = inputs
    folder = external_adapter(tmp_path / "ext", seed=1)
    assert main(["adapters", "add", str(folder), "--model", str(model), "--data", "notes.txt"]) == 0
    record = AdapterStore().get("ext")
    assert record.source == "external" and record.data == "notes.txt" and record.lora["r"] == 4
    assert main(["adapters", "add", str(folder), "--model", str(model), "--name", "again"]) == 2
    assert "already registered as 'ext'" in error_line(capsys)

    weights = folder / "adapter_model.safetensors"
    save_file({k: v * 2 for k, v in load_file(weights).items()}, weights)
    assert cli_json(capsys, "adapters", "show", "ext", "--json")["status"] == "changed"
    assert main(["adapters", "export", "ext", str(tmp_path / "out")]) == 2
    assert "changed since registration" in error_line(capsys)
    assert cli_json(capsys, "adapters", "doctor", "--json")["changed"] == ["ext"]

    assert main(["adapters", "rm", "ext", "--delete-files"]) == 0
    # trained elsewhere: loram wrote none of its files, so none is deleted (tests/cli/test_nothing_lost.py)
    assert folder.exists() and AdapterStore().list() == []


def test_add_checks_an_external_adapters_shapes_against_the_model(inputs, home, tmp_path, capsys):
    model, _ = inputs
    wide = external_adapter(tmp_path / "wide", seed=2, intermediate_size=80)  # down_proj takes 80 inputs, not 96
    assert main(["adapters", "add", str(wide), "--model", str(model)]) == 2
    line = error_line(capsys)
    assert "mlp.down_proj.lora_A' has shape (4, 80)" in line and "needs (4, 96)" in line
    deep = external_adapter(tmp_path / "deep", seed=2, layers=9)
    assert main(["adapters", "add", str(deep), "--model", str(model)]) == 2
    line = error_line(capsys)
    assert "targets 'model.layers.8." in line and "which is not a Linear of the model" in line
    not_lora = tmp_path / "not-lora"
    not_lora.mkdir()
    (not_lora / "adapter_config.json").write_text(json.dumps({"peft_type": "PREFIX_TUNING"}))
    save_file({"x": torch.zeros(2)}, not_lora / "adapter_model.safetensors")
    assert main(["adapters", "add", str(not_lora), "--model", str(model)]) == 2
    assert "only LoRA adapters" in error_line(capsys)
    assert AdapterStore().list() == []


def _register_many(path, worker, count, barrier, results):
    try:
        store = AdapterStore(path)
        base = ModelFingerprint("LlamaForCausalLM", "llama", "c0ffee", 1, "tiny")
        barrier.wait()  # both processes start writing at the same moment, on a database neither has created
        for i in range(count):
            store.add(AdapterRecord(name="same", source="external", adapter_path=f"/adapters/{worker}/{i}",
                                    content_hash=f"{worker}-{i}", base=base))
        results.put("ok")
    except BaseException:
        results.put(traceback.format_exc())


def test_concurrent_registrations_from_two_processes_all_land(tmp_path):
    path = tmp_path / "adapters.db"
    ctx = multiprocessing.get_context("fork")  # the children only touch sqlite; fork spares re-importing torch
    barrier, results = ctx.Barrier(2), ctx.Queue()
    workers = [ctx.Process(target=_register_many, args=(path, w, 30, barrier, results)) for w in ("a", "b")]
    for p in workers:
        p.start()
    outcomes = [results.get(timeout=300) for _ in workers]
    for p in workers:
        p.join(timeout=60)
    assert outcomes == ["ok", "ok"], outcomes
    records = AdapterStore(path).list()
    assert len(records) == 60
    assert {r.content_hash for r in records} == {f"{w}-{i}" for w in "ab" for i in range(30)}
    assert {r.name for r in records} == {"same", *(f"same-{i}" for i in range(2, 61))}


def _open_new_registry(path, barrier, results):
    try:
        store = AdapterStore(path)
        base = ModelFingerprint("LlamaForCausalLM", "llama", "c0ffee", 1, "tiny")
        barrier.wait()
        for i in range(3):  # one process writing while another opens the file for the first time
            store.add(AdapterRecord(name="x", source="external", adapter_path=f"/a/{os.getpid()}/{i}",
                                    content_hash=str(i), base=base))
        results.put(len(store.list()) >= 3)
    except BaseException:
        results.put(traceback.format_exc())


def test_a_new_registry_opened_by_four_processes_at_once_opens_in_all(tmp_path):
    # Switching a new file to WAL takes an exclusive lock without calling SQLite's busy handler; before the
    # retry, about one start in three of two processes failed with "database is locked" within 0.2 s.
    ctx = multiprocessing.get_context("fork")
    for trial in range(8):
        barrier, results = ctx.Barrier(4), ctx.Queue()
        path = tmp_path / f"trial-{trial}" / "adapters.db"
        workers = [ctx.Process(target=_open_new_registry, args=(path, barrier, results)) for _ in range(4)]
        for p in workers:
            p.start()
        outcomes = [results.get(timeout=120) for _ in workers]
        for p in workers:
            p.join(timeout=60)
        assert outcomes == [True] * 4, (trial, outcomes)
        assert len(AdapterStore(path).list()) == 12


@pytest.mark.parametrize("damage", ["garbage", "torn page"])
def test_a_corrupt_database_names_the_file_and_doctor_repairs_it(home, tmp_path, capsys, damage):
    store = AdapterStore()
    base = ModelFingerprint("LlamaForCausalLM", "llama", "c0ffee", 1, "tiny")
    for i in range(200):  # enough rows for several pages, so damage inside the file hits table data
        store.add(AdapterRecord(name=f"a{i}", source="external", adapter_path=f"/x/{i}", content_hash="h" * 16,
                                base=base, metrics={"note": "x" * 200}))
    raw = bytearray(store.path.read_bytes())
    if damage == "garbage":
        raw = bytearray(b"this is not a database" * 100)
    else:
        raw[4096 * 2: 4096 * 4] = b"\xff" * (4096 * 2)
    store.path.write_bytes(bytes(raw))

    assert main(["adapters", "list"]) == 2
    line = error_line(capsys)
    assert str(store.path) in line and "loram adapters doctor --repair" in line
    with pytest.raises(RegistryCorruptError):
        store.list()
    assert main(["adapters", "doctor"]) == 2
    assert "is broken" in error_line(capsys)
    assert main(["adapters", "doctor", "--repair"]) == 0
    assert "nothing was re-registered" in capsys.readouterr().out.replace("\n", " ")
    [moved] = list(home.glob("adapters.db.broken-*"))
    assert moved.read_bytes() == bytes(raw)
    assert AdapterStore().list() == [] and cli_json(capsys, "adapters", "doctor", "--json")["integrity"] == "ok"


def test_an_old_schema_is_migrated_and_a_newer_one_refused(tmp_path, capsys):
    path = tmp_path / "adapters.db"
    conn = sqlite3.connect(path, isolation_level=None)
    assert migrate(conn, path, target=1) == 1
    conn.close()
    store = AdapterStore(path)
    assert store.schema_version() == LATEST == 2
    with sqlite3.connect(path) as conn:
        indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert {"adapters_by_base", "adapters_by_path"} <= indexes
        conn.execute("INSERT INTO schema_migrations VALUES (99, 'later')")
    conn.close()
    with pytest.raises(LoramError, match="schema version 99; this loram knows up to 2: upgrade loram"):
        store.list()


def test_registry_location_follows_loram_home_then_xdg(monkeypatch, tmp_path):
    from loram_core.adapters import db_path

    monkeypatch.setenv("LORAM_HOME", str(tmp_path / "h"))
    assert db_path() == tmp_path / "h" / "adapters.db"
    monkeypatch.delenv("LORAM_HOME")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert db_path() == tmp_path / "xdg" / "loram" / "adapters.db"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    assert db_path() == tmp_path / "user" / ".local" / "share" / "loram" / "adapters.db"


def test_a_broken_registry_does_not_fail_the_run(inputs, home, tmp_path, capsys):
    model, data = inputs
    home.mkdir()
    (home / "adapters.db").write_bytes(b"garbage" * 1000)
    out = tmp_path / "run"
    assert main(["run", "--model", str(model), "--data", str(data), "--pruner", "random", "--ratio", "0.25",
                 "--no-merge", "--out", str(out), *FAST_FLAGS]) == 0
    err = capsys.readouterr().err.replace("\n", " ")
    assert "the adapter was not registered" in err and "doctor --repair" in err
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    shutil.rmtree(out)
