"""The suite's data to train on (docs/tasks.md, "Training on a task"; docs/data.md, "suite-instructions"):
``--data suite-<task>`` is a task's train split as prompt/completion records whose prompt is the question
exactly as lm-eval puts it and whose completion is the right answer (a worked one for GSM8K), tested on the task's
test split; ``suite-math`` is every math task's; ``suite-instructions`` is chat records from the train splits and
reasoning-gym's exercises. Every 20th train record of a task is held out as validation."""

from __future__ import annotations

import json

import attrs

from loram_plugin_lmeval.suite import MATH, SUITE


def _records(folder, task: str, split: str) -> list[dict]:
    with open(folder / f"{task}.{split}.jsonl") as f:
        docs = [json.loads(line) for line in f]
    return [{"prompt": d["prompt"], "completion": " " + d["answer"], "task": task} for d in docs]


def _numbered(rows: list[dict]) -> list[tuple[int, dict]]:
    return [(i + 1, r) for i, r in enumerate(rows)]


def _no_options(name: str, options: dict) -> None:
    from loram_core.errors import LoramError

    if options:
        raise LoramError(f"dataset '{name}' takes no options, got {', '.join(sorted(options))}")


@attrs.frozen
class TaskTrainData:
    name: str
    tasks: tuple[str, ...]
    description: str

    def load(self, **options):
        from loram_core.data.records import RecordSplits
        from loram_plugin_lmeval.build import ensure_suite

        _no_options(self.name, options)
        folder, _ = ensure_suite()
        train: dict[str, dict] = {}  # by prompt: gsm8k and gsm_symbolic share one train split
        test: dict[str, dict] = {}
        for task in self.tasks:
            for record in _records(folder, task, "train"):
                train.setdefault(record["prompt"], record)
            for record in _records(folder, task, "test"):
                test.setdefault(record["prompt"], record)
        rows = list(train.values())
        return RecordSplits(self.name, _numbered([r for i, r in enumerate(rows) if i % 20 != 19]),
                            _numbered([r for i, r in enumerate(rows) if i % 20 == 19]),
                            _numbered(list(test.values())), own_splits=True)


@attrs.frozen
class SuiteInstructions:
    name: str = "suite-instructions"
    description: str = ("chat prompt/completion records from the suite's train splits and reasoning-gym's "
                        "exercises; no record from a test split (docs/data.md)")

    def load(self, **options):
        from loram_core.data.records import RecordSplits
        from loram_plugin_lmeval.build import ensure_suite

        _no_options(self.name, options)
        folder, _ = ensure_suite()
        splits = []
        for split in ("train", "validation", "test"):
            with open(folder / f"instructions.{split}.jsonl") as f:
                splits.append(_numbered([json.loads(line) for line in f]))
        return RecordSplits(self.name, *splits, own_splits=True)


DATASETS = (
    TaskTrainData("suite-math", MATH, "the math tasks' train splits (arithmetic, GSM8K-form, ASDiv) as "
                                      "prompt/completion records; test: their test splits"),
    *(TaskTrainData(f"suite-{t.name}", (t.name,), f"task {t.name}'s train split as prompt/completion records; "
                                                  f"test: its test split") for t in SUITE),
    SuiteInstructions(),
)
