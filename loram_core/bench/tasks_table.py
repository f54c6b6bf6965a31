"""Downstream task scores of several runs laid out as the paper's Table 1: a row per method (the untuned
original once, then each run's train-small-infer-small and LoRAM rows; a run on the full model is the LoRA
row), a column per task, each cell metric ± standard error (docs/tasks.md, "Reading the table")."""

from __future__ import annotations

from rich.table import Table


def _cell(score: dict | None) -> str:
    if not score:
        return "—"
    stderr = score.get("stderr")
    return f"{score['value']:.3f}" + (f" ± {stderr:.3f}" if stderr is not None else "")


def method_rows(rows: list[dict]) -> tuple[list[str], list[tuple[str, dict]]]:
    """``(tasks, [(method, {task: score})])`` from the runs that scored tasks."""
    scored = [r for r in rows if r.get("status") == "done" and (r.get("tasks") or {}).get("scores")]
    tasks = list(dict.fromkeys(t for r in scored for t in r["tasks"]["tasks"]))
    if not scored:
        return [], []
    methods: list[tuple[str, dict]] = [("original, no fine-tuning", scored[0]["tasks"]["scores"].get("original", {}))]
    for r in scored:
        scores = r["tasks"]["scores"]
        if r.get("pruner") == "none":  # the adapter trained on the full model: LoRA (QLoRA)
            methods.append((r["label"], scores.get("loram", {})))
            continue
        if "pruned_lora" in scores:
            methods.append((f"{r['label']}: train small, infer small", scores["pruned_lora"]))
        if "loram" in scores:
            methods.append((f"{r['label']}: LoRAM (original + recovered)", scores["loram"]))
    return tasks, methods


def gain_shares(rows: list[dict]) -> list[tuple[str, dict[str, float | None]]]:
    """Per LoRAM run and task, (LoRAM - original) / (LoRA - original) against the first full-model run, where
    LoRA's gain is positive (None elsewhere)."""
    full = next((r for r in rows if r.get("pruner") == "none" and (r.get("tasks") or {}).get("scores")), None)
    if full is None:
        return []
    out = []
    for r in rows:
        scores = (r.get("tasks") or {}).get("scores") or {}
        if r is full or r.get("pruner") == "none" or "loram" not in scores:
            continue
        shares = {}
        for task in r["tasks"]["tasks"]:
            try:
                base = scores["original"][task]["value"]
                lora = full["tasks"]["scores"]["loram"][task]["value"]
                # a share of a gain only: where full LoRA did not improve on the original there is none to share
                shares[task] = None if lora <= base else (scores["loram"][task]["value"] - base) / (lora - base)
            except KeyError:
                shares[task] = None
        out.append((r["label"], shares))
    return out


def tasks_markdown(rows: list[dict]) -> str:
    tasks, methods = method_rows(rows)
    if not tasks:
        return ""
    lines = ["| method | " + " | ".join(tasks) + " |", "|---|" + "---|" * len(tasks)]
    lines += [f"| {name} | " + " | ".join(_cell(scores.get(t)) for t in tasks) + " |" for name, scores in methods]
    for label, shares in gain_shares(rows):
        text = ", ".join(f"{t} {'—' if v is None else format(v, '.0%')}" for t, v in shares.items())
        lines.append(f"\nShare of full LoRA's gain captured by {label}: {text}.")
    return "\n".join(lines) + "\n"


def tasks_rich(rows: list[dict]) -> Table | None:
    tasks, methods = method_rows(rows)
    if not tasks:
        return None
    table = Table(title="downstream tasks (metric ± standard error)")
    table.add_column("method")
    for task in tasks:
        table.add_column(task, justify="right")
    for name, scores in methods:
        table.add_row(name, *(_cell(scores.get(t)) for t in tasks))
    return table
