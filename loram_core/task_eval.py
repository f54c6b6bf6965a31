"""Downstream tasks, whoever scores them: the values a ``TaskEvaluator`` plugin takes and returns, and which
evaluator runs which task (docs/tasks.md). The core scores perplexity only; accuracy comes from plugins
(``loram-plugin-lmeval`` runs lm-evaluation-harness and HumanEval)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import attrs

from loram_core import registry
from loram_core.errors import LoramError

MULTIPLE_CHOICE = "multiple choice"
GENERATIVE = "generative"


@attrs.frozen
class TaskInfo:
    """One line of ``loram eval --list-tasks``: sizes are the examples of the task's fixed splits (None: the
    task has no such split, or its evaluator cannot tell without loading it)."""

    name: str
    family: str  # math, commonsense, reasoning, code, or "user" for --include-path tasks
    kind: str  # MULTIPLE_CHOICE or GENERATIVE
    metric: str  # what the report's table shows
    train: int | None = None
    test: int | None = None
    description: str = ""
    source: str = ""  # where the examples come from (a package and version), for the built-in suite
    licence: str = ""  # the examples' own licence, as their authors publish it


@attrs.frozen
class TaskOptions:
    """How to score: as lm-eval's ``simple_evaluate`` flags (``--num-fewshot``, ``--limit``, ``--include-path``)."""

    num_fewshot: int = 0
    limit: int | None = None  # test examples per task (None: all)
    include_path: str | None = None
    seed: int = 0
    progress: bool = True
    log: Path | None = None  # where an evaluator may write its library's own logs (kept off the terminal)
    # (task, done, total): a progress callback, so the core's bar shows every evaluator's work the same way
    advance: Callable[[str, int, int], None] | None = attrs.field(default=None, eq=False)


@attrs.frozen
class TaskScore:
    """A task's score on one model: the headline ``metric`` with its standard error over ``n`` examples, and
    every metric the evaluator computed (``{name: [value, stderr]}``)."""

    metric: str
    value: float
    stderr: float | None
    n: int
    metrics: dict[str, list] = attrs.field(factory=dict)

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


def evaluators() -> dict[str, Any]:
    return {name: item.obj for name, item in registry.collect("evaluator").items()}


def task_table(include_path: str | None = None) -> dict[str, tuple[str, TaskInfo]]:
    """``{task: (evaluator name, TaskInfo)}`` of every installed evaluator; a name two evaluators give is an error."""
    table: dict[str, tuple[str, TaskInfo]] = {}
    for name, evaluator in evaluators().items():
        for info in evaluator.tasks(include_path):
            if info.name in table and table[info.name][0] != name:
                raise LoramError(f"task '{info.name}' is offered by evaluators '{table[info.name][0]}' and '{name}'")
            table[info.name] = (name, info)
    return table


def assign(tasks: tuple[str, ...], include_path: str | None, table: dict | None = None) -> dict[str, list[str]]:
    """``{evaluator name: its tasks}`` in the order asked (``table``: ``task_table(include_path)`` when the caller
    has it); an unknown task names the known ones."""
    if include_path is not None and not Path(include_path).is_dir():
        raise LoramError(f"--include-path {include_path} is not a folder of lm-eval task YAMLs")
    table = task_table(include_path) if table is None else table
    unknown = [t for t in tasks if t not in table]
    if unknown:
        if not table:
            raise LoramError(f"no task evaluator is installed for task(s) {', '.join(unknown)}: install "
                             f"loram-plugin-lmeval (pip install ./plugins/loram-plugin-lmeval)")
        raise LoramError(f"unknown task(s) {', '.join(unknown)}; known: {', '.join(sorted(table))} "
                         f"('loram eval --list-tasks' describes them; --include-path adds lm-eval YAMLs)")
    plan: dict[str, list[str]] = {}
    for task in dict.fromkeys(tasks):
        plan.setdefault(table[task][0], []).append(task)
    return plan
