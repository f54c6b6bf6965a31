"""Rows for tables and plots from run directories' ``report.json`` (and a bench's cell records)."""

from __future__ import annotations

from pathlib import Path

from loram_core.atomic import read_json
from loram_core.bench.grid import Cell, labels
from loram_core.errors import LoramError


def label_of(report: dict, cell: dict | None = None) -> str:
    if cell and cell.get("label"):
        return cell["label"]
    pruner = report.get("pruner") or {}
    name = pruner.get("name") or "?"
    if name == "none":
        return "QLoRA full model" if report.get("quantizer") else "LoRA full model"
    pattern = pruner.get("pattern")
    text = name + (f" {pattern}" if pattern and pattern not in ("structured", "unstructured") else "")
    if pruner.get("ratio") is not None and not (pattern and ":" in pattern):
        text += f" {pruner['ratio']:g}"
    quant = report.get("quantizer")
    if quant:
        text += f" + {quant.get('name')}"
    if report.get("align"):
        text += f" + {report['align'].get('aligner')}"
    return text


def row_of(report: dict, source: Path, cell: dict | None = None) -> dict:
    from loram_core.train.metrics import read_metrics

    metrics = read_metrics(Path(source) / "metrics.jsonl")  # the steps that made the adapter, when logged
    return {
        "label": label_of(report, cell),
        "source": str(source),
        "status": "done",
        "pruner": (report.get("pruner") or {}).get("name"),
        "pattern": (report.get("pruner") or {}).get("pattern"),
        "ratio": (report.get("pruner") or {}).get("ratio"),
        "quantizer": (report.get("quantizer") or {}).get("name") if report.get("quantizer") else None,
        "aligner": (report.get("align") or {}).get("aligner") if report.get("align") else None,
        "params": report.get("params") or {},
        "memory": report.get("memory") or {},
        "train": report.get("train") or {},
        "ppl": report.get("ppl") or {},
        "eval": report.get("eval") or {},
        "tasks": report.get("tasks"),
        "losses": [m["loss"] for m in metrics] if metrics else report.get("losses") or [],
        "val_losses": [(m["step"], m["val_loss"]) for m in metrics if "val_loss" in m],
    }


def collect(paths: list[Path]) -> list[dict]:
    """A RUN_DIR gives one row; a bench folder (with ``bench.json``) one row per cell, not-run cells included."""
    rows = []
    for path in paths:
        path = Path(path)
        if (path / "bench.json").is_file():
            cells = read_json(path / "bench.json", "the bench's cell list")["cells"]
            try:  # labels from the cells' settings, so a bench written by an older loram reads the same
                names = labels([Cell.from_dict(c) for c in cells])
                cells = [{**c, "label": name} for c, name in zip(cells, names)]
            except (KeyError, TypeError, AttributeError):
                pass  # keep the labels the bench stored
            for cell in cells:
                report = Path(cell["dir"]) / "report.json"
                if cell["status"] == "done" and report.is_file():
                    rows.append(row_of(read_json(report, "a bench cell's run report"), Path(cell["dir"]), cell))
                else:  # shown as such in the table, never filled in
                    rows.append({"label": cell["label"], "source": cell["dir"], "status": cell["status"],
                                 "error": cell.get("error"), "params": {}, "memory": {}, "train": {}, "ppl": {},
                                 "losses": []})
        elif (path / "report.json").is_file():
            rows.append(row_of(read_json(path / "report.json", "the run report"), path))
        else:
            raise LoramError(f"{path} has neither report.json (a run) nor bench.json (a bench)")
    return rows
