"""The contract of a task evaluator (docs/tasks.md, "Writing an evaluator"), checked on a tiny random model: it
lists its tasks as ``TaskInfo``, and scores one task of each kind it offers with ``--limit 2`` as a
``TaskScore`` per task, the same twice, reporting its progress."""

from __future__ import annotations

import math
from pathlib import Path

from loram_core.protocols import TaskEvaluator
from loram_core.task_eval import GENERATIVE, MULTIPLE_CHOICE, TaskInfo, TaskOptions, TaskScore
from loram_core.testing.conformance.failure import fail, fail_unless_satisfies


def check_evaluator(evaluator, workdir: Path) -> None:
    from loram_core.testing.tiny import tiny_llama, tiny_tokenizer

    fail_unless_satisfies(evaluator, TaskEvaluator, "evaluator")
    where = f"evaluator '{evaluator.name}'"
    infos = evaluator.tasks(None)
    if not infos or not all(isinstance(i, TaskInfo) for i in infos):
        fail(where, "tasks(None) must return a non-empty list of loram_core.task_eval.TaskInfo")
    names = [i.name for i in infos]
    if len(set(names)) != len(names):
        fail(where, f"tasks(None) lists a task twice: {names}")
    odd = [i.name for i in infos if i.kind not in (MULTIPLE_CHOICE, GENERATIVE)]
    if odd:
        fail(where, f"task(s) {odd}: kind must be {MULTIPLE_CHOICE!r} or {GENERATIVE!r}")
    model, tokenizer = tiny_llama(), tiny_tokenizer()
    for info in {i.kind: i for i in reversed(infos)}.values():  # the first task of each kind
        seen: list[tuple[str, int, int]] = []
        scores = [evaluator.evaluate(model, tokenizer, [info.name], TaskOptions(
            limit=2, progress=False, log=workdir / f"{info.name}.log", advance=lambda *a: seen.append(a)))
            for _ in range(2)]
        score = scores[0].get(info.name) if isinstance(scores[0], dict) else None
        if not isinstance(score, TaskScore):
            fail(where, f"evaluate(..., ['{info.name}'], ...) must return {{'{info.name}': TaskScore}}")
        if not math.isfinite(score.value) or not 1 <= score.n <= 2:
            fail(where, f"task '{info.name}' with limit 2: value must be finite and n 1 or 2, got {score}")
        if score.stderr is not None and not (math.isfinite(score.stderr) and score.stderr >= 0):
            fail(where, f"task '{info.name}': stderr must be None or a finite number >= 0, got {score.stderr}")
        if scores[1][info.name] != score:
            fail(where, f"task '{info.name}': two runs on the same model gave {score} and {scores[1][info.name]}")
        if not seen or seen[-1][0] != info.name or seen[-1][1] != seen[-1][2]:
            fail(where, f"task '{info.name}': options.advance(task, done, total) must be called, ending at done == total")
