"""Stage tasks: downstream task scores of the report's variants from the installed task evaluators
(docs/tasks.md). ``loram eval`` runs it after perplexity when ``--tasks`` names any.

Scores accumulate per variant and task while the models stay the same (the record's ``base`` key): asking for
another task later scores that task only, and the report shows every task scored so far, each with the
``--num-fewshot`` and ``--limit`` it was scored with."""

from __future__ import annotations

import os
import time

import attrs

from loram_core import registry
from loram_core.lifecycle.resources import Resources
from loram_core.lifecycle.rundir import RunDir, stage_key
from loram_core.lifecycle.variants import model_variants
from loram_core.placement import Placement
from loram_core.task_eval import TaskOptions, assign, task_table


def run_tasks(run: RunDir, res: Resources) -> dict:
    s = res.settings
    table = task_table(s.include_path)
    plan = assign(s.tasks, s.include_path, table)
    found = registry.collect("evaluator")
    versions = {name: found[name].version for name in plan}
    upstream = [(run.record(st) or {}).get("key") for st in ("prune", "align", "train", "recover", "merge")]
    placement = Placement.from_settings(s)
    # what every kept score was measured on: the same models, scored the same way
    base = stage_key("tasks", upstream, res.model_path, placement.dtype_name, s.include_path, versions)
    options = {"num_fewshot": s.num_fewshot, "limit": s.limit or None}
    key = stage_key(base, list(s.tasks), options)
    done = run.done("tasks", key)
    if done:
        return done
    previous = run.record("tasks") or {}
    kept = previous if previous.get("base") == base else {}  # scores of other models are dropped
    scores: dict[str, dict] = kept.get("scores", {})
    seconds: dict[str, float] = dict(kept.get("seconds", {}))
    run.root.joinpath("tasks").mkdir(exist_ok=True)
    with _task_bars(res.progress) as bars:
        for variant, model in model_variants(run, res, merged=True, duplicates=False):
            row = scores.setdefault(variant, {})
            started = time.perf_counter()
            for evaluator, tasks in plan.items():
                todo = [t for t in tasks if (row.get(t) or {}).get("options") != options]
                if not todo:
                    continue
                task_options = TaskOptions(num_fewshot=s.num_fewshot, limit=s.limit or None, include_path=s.include_path,
                                           seed=s.seed, progress=res.progress,
                                           log=run.root / "tasks" / f"{evaluator}.log", advance=bars(variant))
                result = found[evaluator].obj.evaluate(model, res.tokenizer, todo, task_options)
                row.update({task: {**result[task].to_json(), "options": options} for task in todo})
            seconds[variant] = round(seconds.get(variant, 0.0) + time.perf_counter() - started, 1)
    # every task scored on these models so far, each with the options it was scored with ("n" its examples)
    tasks = list(dict.fromkeys([*kept.get("tasks", []), *s.tasks]))
    info = {**kept.get("info", {}), **{t: attrs.asdict(table[t][1]) for t in s.tasks}}
    return run.finish("tasks", key, {"base": base, "tasks": tasks, "scores": scores, "seconds": seconds,
                                     "evaluators": versions, "info": info})


class _task_bars:
    """One rich bar per (variant, task) on stderr, advanced by the evaluators through ``TaskOptions.advance``."""

    def __init__(self, enabled: bool):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        # its own handle of the terminal: an evaluator may point descriptors 1 and 2 at a log while it runs
        self.terminal = os.fdopen(os.dup(2), "w") if enabled else None
        self.progress = Progress(TextColumn("[bold]tasks[/] {task.description}"), MofNCompleteColumn(), BarColumn(),
                                 TimeRemainingColumn(), console=Console(file=self.terminal, stderr=True),
                                 disable=not enabled, redirect_stdout=False, redirect_stderr=False)
        self.ids: dict[tuple[str, str], int] = {}

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        try:
            return self.progress.__exit__(*exc)
        finally:
            if self.terminal is not None:
                self.terminal.close()

    def __call__(self, variant: str):
        def advance(task: str, done: int, total: int) -> None:
            bar = self.ids.get((variant, task))
            if bar is None:
                bar = self.ids[(variant, task)] = self.progress.add_task(f"{variant} {task}", total=total)
            self.progress.update(bar, completed=done, total=total)

        return advance
