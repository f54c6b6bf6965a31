"""The suite's tasks as local lm-eval task YAMLs: each task's documents (``material.py``, from the pinned data
packages of ``loram_core.data.sources``), written into ``$LORAM_CACHE/tasks/<SUITE_VERSION>/`` as a train and a
test JSONL per task plus its YAML (``dataset_path: json`` with ``data_files``), so lm-eval needs no hub
(docs/tasks.md)."""

from __future__ import annotations

import json
from pathlib import Path

from loram_core.atomic import atomic_dir
from loram_core.task_eval import GENERATIVE
from loram_plugin_lmeval.suite import SUITE, SuiteTask

# Bumped when a task's prompt, choices or splits change: the cache is then built again beside the old one.
SUITE_VERSION = "packages-v2"
MANIFEST = "suite.json"


def suite_dir() -> Path:
    from loram_core.models.smollm2 import cache_root

    return cache_root() / "tasks" / SUITE_VERSION


def ensure_suite() -> tuple[Path, dict]:
    """The suite's folder and manifest (``{task: {"train": n, "test": n}}``), built on first use (8 s on a
    2-core machine)."""
    folder = suite_dir()
    if not (folder / MANIFEST).is_file():
        with atomic_dir(folder) as tmp:
            build(Path(tmp), final=folder)
    return folder, json.loads((folder / MANIFEST).read_text())


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
        "metadata": {"version": 1, "family": task.family, "source": task.source, "suite": SUITE_VERSION},
    }
    if task.kind == GENERATIVE:
        config.update({
            "output_type": "generate_until",
            "doc_to_target": "{{target}}",
            "generation_kwargs": {"until": list(task.until), "max_gen_toks": task.max_gen_toks, "do_sample": False},
            "filter_list": [{"name": "last_number", "filter": [
                {"function": "regex", "regex_pattern": task.number, "group_select": -1},
                {"function": "take_first"}]}],
            "metric_list": [{"metric": "exact_match", "aggregation": "mean", "higher_is_better": True,
                             **({"regexes_to_ignore": list(task.ignore)} if task.ignore else {})}],
        })
    else:
        config.update({
            "output_type": "multiple_choice",
            "doc_to_choice": "{{choices}}",
            "doc_to_target": "label",
            "metric_list": [{"metric": m, "aggregation": "mean", "higher_is_better": True}
                            for m in ("acc", "acc_norm")],
        })
    return json.dumps(config, indent=2) + "\n"


def build(out: Path, final: Path) -> dict:
    """Write every suite task into ``out`` (moved to ``final`` afterwards: the YAMLs name ``final``'s files)."""
    from loram_plugin_lmeval import instructions
    from loram_plugin_lmeval.material import task_docs

    manifest = {}
    for task in SUITE:
        train, test = task_docs(task.name)
        for name, rows in (("train", train), ("test", test)):
            with open(out / f"{task.name}.{name}.jsonl", "w") as f:
                f.writelines(json.dumps(row) + "\n" for row in rows)
        (out / f"{task.name}.yaml").write_text(
            yaml_text(task, final / f"{task.name}.train.jsonl", final / f"{task.name}.test.jsonl"))
        manifest[task.name] = {"train": len(train), "test": len(test)}
    instructions.build(out)
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest
