"""The run report: ``report.json`` from the stage records, printed as rich tables (docs/architecture.md,
"The run report")."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from loram_core.atomic import write_json
from loram_core.lifecycle.rundir import RunDir
from loram_core.lifecycle.stages import STAGES
from loram_core.lifecycle.variants import VARIANTS

REPORT_SCHEMA = 1


def build_report(run: RunDir, settings, model_path: str) -> dict[str, Any]:
    prune = run.record("prune") or {}
    train = run.record("train") or {}
    ev = run.record("eval") or {}
    # A run started from a published folder carries the publisher's alignment, unless it aligned again.
    align = run.record("align") or (prune.get("published") or {}).get("align")
    original = prune.get("params_original")
    pruned = prune.get("params_pruned")
    quant = train.get("quantizer")
    effective = pruned
    if quant and quant.get("bits") and pruned:  # the paper's formula: a 4-bit parameter counts as a quarter
        effective = pruned * quant["bits"] / 16
    train_block = {k: train.get(k) for k in ("steps", "tokens", "tokens_per_s", "loss_first", "loss_last")}
    return {
        "schema": REPORT_SCHEMA,
        "model": {"name": settings.model, "path": model_path, "params": original},
        "pruner": {
            "name": (prune.get("pruner") or {}).get("name", settings.pruner),
            # what the plan recorded wins: the pruner "none" removes nothing whatever --ratio said
            "ratio": ((prune.get("pruner") or {}).get("params") or {}).get("ratio", settings.ratio),
            "pattern": prune.get("pattern"),
            "params": (prune.get("pruner") or {}).get("params"),
        },
        "quantizer": quant,
        "recoverer": settings.recoverer,
        "params": {
            "original": original,
            "pruned": pruned,
            "reduction_ratio": (original / effective) if original and effective else None,
        },
        "memory": {
            "param_bytes_original": prune.get("param_bytes_original"),
            "param_bytes_train": train.get("param_bytes_train"),
            "train_peak_rss_mb": train.get("train_peak_rss_mb"),
            # each stage's peak above the resident set it started with, as the runner measured it
            "stages": {row.name: rec["measured"] for row in STAGES
                       if (rec := run.record(row.name)) and rec.get("measured")},
        },
        "train": train_block,
        "ppl": {k: (ev.get("ppl") or {}).get(k) for k in ("original", "pruned", "pruned_lora", "loram")},
        "loss": {k: (ev.get("loss") or {}).get(k) for k in ("original", "pruned", "pruned_lora", "loram")},
        "eval": ev.get("eval"),
        "align": align and {k: align.get(k) for k in ("aligner", "dataset", "steps", "ppl_before", "ppl_after")},
        "tasks": _tasks_block(run.record("tasks")),
        "losses": train.get("losses"),
        "data": train.get("data"),
    }


def _tasks_block(record: dict | None) -> dict[str, Any] | None:
    """Scores per variant and task, and what each task is (report.json's ``tasks``)."""
    if not record:
        return None
    return {k: record.get(k) for k in ("tasks", "scores", "info", "seconds", "evaluators")}


def write_report(run: RunDir, report: dict[str, Any]) -> None:
    write_json(run.report, report)


def _fmt(value, spec: str = ",") -> str:
    if value is None:
        return "—"
    return format(value, spec)


def print_report(report: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console()
    p, m, t = report["params"], report["memory"], report["train"]
    summary = Table(title=f"loram run: {report['model']['name']} · {report['pruner']['name']} "
                          f"ratio {report['pruner']['ratio']} ({report['pruner']['pattern']})")
    summary.add_column("quantity")
    summary.add_column("value", justify="right")
    summary.add_row("parameters, original", _fmt(p["original"]))
    summary.add_row("parameters, pruned", _fmt(p["pruned"]))
    q = report.get("quantizer") or {}
    formula = f"original / (pruned x {q['bits']}/16)" if q.get("bits") else "original / pruned"
    summary.add_row(f"reduction ({formula})", _fmt(p["reduction_ratio"], ".2f") + "x")
    summary.add_row("parameter bytes in training", _fmt(m["param_bytes_train"]))
    summary.add_row("train peak RSS above the RSS before loading (MB)", _fmt(m["train_peak_rss_mb"], ".0f"))
    stages = m.get("stages") or {}
    if stages:
        summary.add_row("peak RSS above the stage's start, MB (estimate)",
                        ", ".join(f"{name} {_fmt(v.get('peak_rss_mb'), ',.0f')} ({_fmt(v.get('estimate_mb'), ',.0f')})"
                                  for name, v in stages.items()))
    summary.add_row("train steps / tokens", f"{_fmt(t['steps'])} / {_fmt(t['tokens'])}")
    summary.add_row("train tokens/s", _fmt(t["tokens_per_s"], ".0f"))
    counts = ((report.get("data") or {}).get("counts") or {}).get("train")
    if counts:
        summary.add_row("train examples (truncated, dropped)",
                        f"{counts['examples']:,} ({counts['truncated']:,}, {counts['dropped']:,})")
        summary.add_row("train tokens trained / all", f"{counts['trained']:,} / {counts['tokens']:,}")
    summary.add_row("train loss first -> last", f"{_fmt(t['loss_first'], '.3f')} -> {_fmt(t['loss_last'], '.3f')}")
    console.print(summary)
    ev = report.get("eval") or {}
    what = "response tokens" if ev.get("scored") == "responses" else "tokens"
    ppl = Table(title=f"perplexity on {ev.get('dataset')} {ev.get('split')} ({_fmt(ev.get('tokens'))} {what})")
    ppl.add_column("model")
    ppl.add_column("what it is")
    ppl.add_column("loss", justify="right")
    ppl.add_column("ppl", justify="right")
    for key, label in VARIANTS.items():
        if key in report["ppl"]:
            ppl.add_row(key, label, _fmt((report.get("loss") or {}).get(key), ".3f"), _fmt(report["ppl"].get(key), ".2f"))
    console.print(ppl)
    if report.get("tasks"):
        console.print(tasks_table(report["tasks"]))


def tasks_table(tasks: dict[str, Any], title: str | None = None) -> Table:
    """The paper's Table 1 layout: a row per variant, a column per task (its metric, shots and test examples),
    each cell the metric ± its standard error."""
    info, scores = tasks.get("info") or {}, tasks.get("scores") or {}
    table = Table(title=title or "downstream tasks (metric ± standard error)")
    table.add_column("model")
    for task in tasks.get("tasks") or []:
        first = next((row[task] for row in scores.values() if task in row), {})
        shots = (first.get("options") or {}).get("num_fewshot", 0)
        metric = first.get("metric") or (info.get(task) or {}).get("metric", "")
        table.add_column(f"{task}\n{metric}, {shots}-shot, n={first.get('n', '?')}", justify="right")
    for variant in VARIANTS:
        if variant not in scores:
            continue
        cells = []
        for task in tasks.get("tasks") or []:
            score = scores[variant].get(task)
            cells.append("—" if score is None else f"{score['value']:.3f}" + (
                f" ± {score['stderr']:.3f}" if score.get("stderr") is not None else ""))
        table.add_row(variant, *cells)
    return table
