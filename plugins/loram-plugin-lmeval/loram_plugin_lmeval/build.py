"""The suite's tasks as local lm-eval task YAMLs: BIG-bench's ``task.json`` files, read once from the archive
(``loram_core.data.bigbench``), written into ``$LORAM_CACHE/tasks/<SUITE_VERSION>/`` as a train and a test JSONL
per task plus its YAML (``dataset_path: json`` with ``data_files``), so lm-eval needs no hub (docs/tasks.md)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from loram_core.atomic import atomic_dir
from loram_core.task_eval import GENERATIVE
from loram_plugin_lmeval.suite import SUITE, TEST_SIZE, SuiteTask

# Bumped when a task's prompt, choices or splits change: the cache is then built again beside the old one.
SUITE_VERSION = "bigbench-1.0.0-v1"
MANIFEST = "suite.json"


def suite_dir() -> Path:
    from loram_core.models.smollm2 import cache_root

    return cache_root() / "tasks" / SUITE_VERSION


def ensure_suite() -> tuple[Path, dict]:
    """The suite's folder and manifest (``{task: {"train": n, "test": n}}``), built on first use (one pass over
    the archive: 6 s on a 2-core machine)."""
    folder = suite_dir()
    if not (folder / MANIFEST).is_file():
        with atomic_dir(folder) as tmp:
            build(Path(tmp), final=folder)
    return folder, json.loads((folder / MANIFEST).read_text())


def doc(task: SuiteTask, example: dict) -> dict | None:
    """One lm-eval document: the question as prompted, and the answer as choices + label or as target text."""
    scores = example.get("target_scores") or {}
    question = task.prompt.format(input=example["input"].strip())
    if task.kind == GENERATIVE:
        target = example.get("target")
        target = target[0] if isinstance(target, list) else target
        return {"input": example["input"], "prompt": question, "target": str(target), "answer": str(target)}
    if not scores:
        return None
    choices = list(scores)
    label = max(range(len(choices)), key=lambda i: scores[choices[i]])
    return {"input": example["input"], "prompt": question, "choices": choices, "label": label,
            "answer": choices[label]}


def split(docs: list[dict]) -> tuple[list[dict], list[dict]]:
    """``(train, test)``: docs that share a question (logical_deduction asks several things of one paragraph)
    stay together, and exact repeats are kept once; whole questions in sha256 order go to the test split until
    it holds min(TEST_SIZE, n // 2) docs, so no test question is in the train split."""
    groups: dict[str, dict[str, dict]] = {}
    for d in docs:
        groups.setdefault(d["prompt"], {})[json.dumps(d, sort_keys=True)] = d
    ordered = sorted(groups, key=lambda prompt: hashlib.sha256(prompt.encode()).hexdigest())
    target = min(TEST_SIZE, sum(len(g) for g in groups.values()) // 2)
    train: list[dict] = []
    test: list[dict] = []
    for prompt in ordered:
        (test if len(test) < target else train).extend(groups[prompt].values())
    return train, test


def yaml_text(task: SuiteTask, train: Path, test: Path) -> str:
    """The task as lm-eval 0.4 YAML (JSON is valid YAML: paths and prompts need no escaping rules of their own)."""
    config = {
        "task": task.name,
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"train": str(train), "test": str(test)}},
        "training_split": "train",
        "fewshot_split": "train",
        "test_split": "test",
        "doc_to_text": "{{prompt}}",
        "target_delimiter": " ",
        "fewshot_delimiter": "\n\n",
        "metadata": {"version": 1, "family": task.family, "source": SUITE_VERSION},
    }
    if task.kind == GENERATIVE:
        config.update({
            "output_type": "generate_until",
            "doc_to_target": "{{target}}",
            "generation_kwargs": {"until": ["\n"], "max_gen_toks": 24, "do_sample": False},
            "filter_list": [{"name": "last_number", "filter": [
                {"function": "regex", "regex_pattern": r"(-?\d+)", "group_select": -1},
                {"function": "take_first"}]}],
            "metric_list": [{"metric": "exact_match", "aggregation": "mean", "higher_is_better": True}],
        })
    else:
        config.update({
            "output_type": "multiple_choice",
            "doc_to_choice": "{{choices}}",
            "doc_to_target": "label",
            "metric_list": [{"metric": m, "aggregation": "mean", "higher_is_better": True} for m in ("acc", "acc_norm")],
        })
    return json.dumps(config, indent=2) + "\n"


def build(out: Path, final: Path) -> dict:
    """Write every suite task into ``out`` (moved to ``final`` afterwards: the YAMLs name ``final``'s files)."""
    from loram_core.data.bigbench import task_files

    wanted = {folder: task for task in SUITE for folder in task.folders}
    docs: dict[str, list[dict]] = {task.name: [] for task in SUITE}
    for path, content in task_files(*{folder.split("/")[0] for folder in wanted}):
        task = wanted.get(path)
        if task is not None:
            docs[task.name] += [d for d in (doc(task, e) for e in content.get("examples", [])) if d is not None]
    manifest = {}
    for task in SUITE:
        train, test = split(docs[task.name])
        for name, rows in (("train", train), ("test", test)):
            with open(out / f"{task.name}.{name}.jsonl", "w") as f:
                f.writelines(json.dumps(row) + "\n" for row in rows)
        (out / f"{task.name}.yaml").write_text(
            yaml_text(task, final / f"{task.name}.train.jsonl", final / f"{task.name}.test.jsonl"))
        manifest[task.name] = {"train": len(train), "test": len(test)}
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest
