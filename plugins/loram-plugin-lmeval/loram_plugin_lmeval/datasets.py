"""The suite's train splits as instruction data (``--data bigbench-math``, ``--data bigbench-<task>``):
prompt/completion records whose prompt is the task's question exactly as lm-eval puts it and whose completion
is the right answer, so a model is trained on a task's train split and tested on its test split
(docs/tasks.md, "Training on a task"). Every 20th train question is held out as validation; the test split
is the task's test split."""

from __future__ import annotations

import json

import attrs

from loram_plugin_lmeval.suite import MATH, SUITE


def _records(folder, task: str, split: str) -> list[dict]:
    with open(folder / f"{task}.{split}.jsonl") as f:
        docs = [json.loads(line) for line in f]
    return [{"prompt": d["prompt"], "completion": " " + d["answer"], "task": task} for d in docs]


@attrs.frozen
class TaskTrainData:
    name: str
    tasks: tuple[str, ...]
    description: str

    def load(self, **options):
        from loram_core.data.records import RecordSplits
        from loram_core.errors import LoramError
        from loram_plugin_lmeval.build import ensure_suite

        if options:
            raise LoramError(f"dataset '{self.name}' takes no options, got {', '.join(sorted(options))}")
        folder, _ = ensure_suite()
        train, validation, test = [], [], []
        for task in self.tasks:
            for i, record in enumerate(_records(folder, task, "train")):
                (validation if i % 20 == 19 else train).append(record)
            test += _records(folder, task, "test")
        number = lambda rows: [(i + 1, r) for i, r in enumerate(rows)]  # noqa: E731
        return RecordSplits(self.name, number(train), number(validation), number(test), own_splits=True)


DATASETS = (
    TaskTrainData("bigbench-math", MATH, "the math tasks' train splits (elementary_math_qa, arithmetic) as "
                                         "prompt/completion records; test: their test splits"),
    *(TaskTrainData(f"bigbench-{t.name}", (t.name,), f"task {t.name}'s train split as prompt/completion records; "
                                                     f"test: its test split") for t in SUITE),
)
