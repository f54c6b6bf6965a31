"""``loram eval --list-tasks``: the downstream tasks the installed evaluators offer (docs/tasks.md)."""

from __future__ import annotations

import json
import sys

import attrs
from rich.console import Console
from rich.table import Table

from loram_core.errors import warn
from loram_core.task_eval import task_table


def list_tasks(include_path: str | None, *, as_json: bool) -> int:
    rows = [{"evaluator": evaluator, **attrs.asdict(info)} for evaluator, info in task_table(include_path).values()]
    if as_json:
        print(json.dumps(rows, indent=2))
        return 0
    table = Table(title="downstream tasks (loram eval RUN_DIR --tasks NAME,...)")
    for column in ("task", "family", "kind", "metric", "train", "test", "evaluator", "source", "licence"):
        table.add_column(column, justify="right" if column in ("train", "test") else "left", overflow="fold")
    for row in rows:
        sizes = ["—" if row[k] is None else f"{row[k]:,}" for k in ("train", "test")]
        table.add_row(row["name"], row["family"], row["kind"], row["metric"], *sizes, row["evaluator"], row["source"],
                      row["licence"])
    Console(width=None if sys.stdout.isatty() else 200).print(table)  # a pipe gets whole names
    if not rows:
        warn("no task evaluator is installed: pip install ./plugins/loram-plugin-lmeval")
    return 0
