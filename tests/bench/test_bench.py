"""``loram bench`` runs a grid one process per cell and resumes; ``loram report`` renders tables and plots."""

import json

import pytest

from loram_core.bench.grid import Cell, Strategy, build_grid, labels
from loram_core.cli.main import main
from loram_core.errors import LoramError
from loram_core.testing.tiny import FAST_FLAGS


def test_grid_crosses_strategies_ratios_and_quantizers_and_adds_baselines():
    cells = build_grid(["random", "sparsegpt:pattern=2:4"], [0.5, 0.7], ["none", "nf4"], ["none"])
    assert len(cells) == 2 * 2 * 2 + 2
    assert Strategy.parse("sparsegpt:pattern=2:4,blocksize=64").options == (("pattern", "2:4"), ("blocksize", "64"))
    names = {c.name for c in cells}
    assert "sparsegpt-2of4-r0.5-nf4-noalign" in names and "none-fp-noalign" in names
    names = {c.label for c in cells}
    assert {"LoRA full model", "QLoRA full model", "random 0.7 + nf4", "sparsegpt 2:4 + nf4"} <= names  # 2:4 fixes the ratio
    assert all(Cell.from_dict(c.to_dict()) == c for c in cells)  # reports re-label cells from their settings
    twins = build_grid(["sparsegpt:pattern=2:4,samples=32", "sparsegpt:pattern=2:4,samples=128",
                        "sparsegpt:pattern=unstructured,samples=32"], [0.5], ["none"], ["none"], baselines=False)
    assert labels(twins) == ["sparsegpt 2:4 samples=32", "sparsegpt 2:4 samples=128", "sparsegpt unstructured 0.5"]
    with pytest.raises(LoramError, match="KEY=VALUE"):
        Strategy.parse("sparsegpt:2:4")


def test_bench_runs_each_cell_once_marks_missing_plugins_and_reports(inputs, tmp_path, monkeypatch, capsys):
    model, data = inputs
    monkeypatch.setenv("LORAM_LOAD_PLUGINS", "")  # the cells' processes see the built-ins only, like this one
    out = tmp_path / "bench"
    argv = ["bench", "--model", str(model), "--data", str(data), "--pruners", "random,not-a-pruner", "--ratios", "0.5",
            "--out", str(out), "--no-progress", "--json", "--", *FAST_FLAGS]
    assert main(argv) == 0
    rows = {r["label"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(rows) == {"random 0.5", "not-a-pruner 0.5", "LoRA full model"}
    assert rows["not-a-pruner 0.5"]["status"] == "not installed" and rows["not-a-pruner 0.5"]["ppl"] == {}
    done = rows["random 0.5"]
    assert done["status"] == "done" and done["ppl"]["loram"] > 1 and done["params"]["reduction_ratio"] > 1
    assert rows["LoRA full model"]["params"]["reduction_ratio"] == 1.0
    report = out / "cells" / "random-r0.5-fp-noalign" / "report.json"
    stamp = report.stat().st_mtime_ns
    # Resumable: a second bench with the same arguments runs nothing again.
    assert main(argv) == 0
    assert report.stat().st_mtime_ns == stamp
    bench = json.loads((out / "bench.json").read_text())
    cells = bench["cells"]
    assert [c.get("skipped") for c in cells if c["status"] == "done"] == [True, True]
    assert all(c["wall_s"] > 0 for c in cells if c["status"] == "done")  # measured in the first bench, kept
    assert bench["wall_s_total"] == round(sum(c["wall_s"] for c in cells if c["status"] == "done"), 1)
    assert {p.name for p in out.iterdir()} >= {"results.md", "results.json", "ppl_by_variant.png", "ppl_vs_reduction.png",
                                               "loss_curves.png", "peak_memory.png"}
    table = (out / "results.md").read_text()
    assert "| not-a-pruner 0.5 | not installed: missing pruner:not-a-pruner |" in table


def test_report_from_run_dirs_writes_markdown_and_plots(inputs, tmp_path, capsys):
    model, data = inputs
    run = tmp_path / "run"
    assert main(["run", "--model", str(model), "--data", str(data), "--pruner", "magnitude", "--out", str(run),
                 "--no-merge", "--json", *FAST_FLAGS]) == 0
    assert main(["report", str(run), "--out", str(tmp_path / "rep"), "--title", "tiny"]) == 0
    md = (tmp_path / "rep" / "results.md").read_text()
    report = json.loads((run / "report.json").read_text())
    assert f"**{report['ppl']['loram']:.2f}**" in md and md.startswith("| variant |")
    assert f"| original, no fine-tuning | done | — | 1.00x | {report['ppl']['original']:.2f} |" in md
    for name in ("ppl_by_variant.png", "ppl_vs_reduction.png", "loss_curves.png", "peak_memory.png"):
        assert (tmp_path / "rep" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["report", str(tmp_path / "nothing-here")]) == 2


def test_cells_that_differ_only_in_the_quantizer_share_the_prune_stage(tmp_path):
    from loram_core.atomic import write_json
    from loram_core.bench.runner import share_prune

    cells = build_grid(["sparsegpt:pattern=2:4", "random"], [0.5], ["none", "nf4"], ["none"], baselines=False)
    fp, q4, rnd = (next(c for c in cells if c.strategy.pruner == p and c.quantizer == q)
                   for p, q in (("sparsegpt", None), ("sparsegpt", "nf4"), ("random", "nf4")))
    out, common = tmp_path / "bench", ["--model", "m"]
    done = out / "cells" / fp.name
    for part in ("plan/plan.json", "pruned/model.safetensors", "stages/prune.json", "report.json"):
        (done / part).parent.mkdir(parents=True, exist_ok=True)
        (done / part).write_text(part)
    write_json(done / "cell.json", {**fp.to_dict(), "argv": fp.run_args() + common, "status": "done"})
    assert share_prune(q4, out / "cells" / q4.name, cells, out, common) == fp.name
    target = out / "cells" / q4.name
    assert (target / "pruned" / "model.safetensors").stat().st_ino == (done / "pruned" / "model.safetensors").stat().st_ino
    assert (target / "stages" / "prune.json").read_text() == "stages/prune.json"
    assert not (target / "stages" / "train.json").exists() and not (target / "report.json").exists()
    assert share_prune(rnd, out / "cells" / rnd.name, cells, out, common) is None  # another pruner: nothing shared
    assert share_prune(q4, tmp_path / "fresh", cells, out, ["--model", "other"]) is None  # other run flags


def test_a_grid_whose_every_cell_failed_exits_2_with_the_reason(inputs, tmp_path, monkeypatch, capsys):
    model, data = inputs
    monkeypatch.setenv("LORAM_LOAD_PLUGINS", "")
    argv = ["bench", "--model", str(model), "--data", str(data), "--pruners", "random", "--ratios", "0.5",
            "--no-baselines", "--no-plots", "--out", str(tmp_path / "bench"), "--no-progress", "--json", "--",
            "--steps", "0"]
    assert main(argv) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("loram: error:")]
    assert len(err) == 1 and "every cell of the grid failed" in err[0] and "steps must be a positive integer" in err[0]
