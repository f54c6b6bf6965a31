"""General instruction data with no hub: BIG-bench's ``natural_instructions`` (61 subtasks from MCTACO, CosmosQA,
WinoGrande, QASC, MultiRC, DROP, Quoref, ROPES; 193,250 instruction / input / target examples), converted once into
the cache as conversational prompt/completion records (docs/data.md, "Dataset aliases").

Each subtask's examples are split train / validation / test (80 / 10 / 10) by a hash of (subtask, position), so the
splits are disjoint and fixed. ``natural-instructions`` keeps, per subtask and split, the first examples of at most
``MAX_CHARS`` characters, up to 256 / 32 / 32 (about 15,000 / 1,900 / 1,900 records): the size a CPU trains on;
``natural-instructions-full`` keeps every example.
"""

from __future__ import annotations

import json
from pathlib import Path

from loram_core.atomic import atomic_dir, write_json
from loram_core.data.splits import SPLITS, assign_splits

FOLDER = "natural_instructions"
CAPPED = {"train": 256, "validation": 32, "test": 32}
MAX_CHARS = 2000  # instruction + input + target: about 500 SmolLM2 tokens
VERSION = 2  # of the conversion: a new one converts again


def record(task: str, prefix: str, example: dict) -> dict | None:
    target = example.get("target")
    target = target[0] if isinstance(target, list) and target else target
    if not isinstance(target, str) or not target.strip() or not isinstance(example.get("input"), str):
        return None
    prompt = f"{prefix.strip()}\n\n{example['input'].strip()}"
    return {"task": task, "prompt": [{"role": "user", "content": prompt}],
            "completion": [{"role": "assistant", "content": target.strip()}]}


def convert(out: Path, capped: bool) -> dict:
    """Write ``train.jsonl``, ``validation.jsonl``, ``test.jsonl`` into ``out``; returns the counts."""
    from loram_core.data.bigbench import task_files

    files = {s: open(out / f"{s}.jsonl", "w", encoding="utf-8") for s in SPLITS}
    counts = {s: 0 for s in SPLITS}
    tasks = 0
    try:
        for path, task in task_files(FOLDER):
            name = path.rsplit("/", 1)[-1]
            examples = task.get("examples") or []
            kept = {s: 0 for s in SPLITS}
            for example, split in zip(examples, assign_splits([f"{name}:{i}" for i in range(len(examples))])):
                which = SPLITS[split]
                made = record(name, task.get("task_prefix") or task.get("description") or "", example)
                if made is None:
                    continue
                if capped and (kept[which] >= CAPPED[which] or
                               len(made["prompt"][0]["content"]) + len(made["completion"][0]["content"]) > MAX_CHARS):
                    continue
                files[which].write(json.dumps(made, ensure_ascii=False) + "\n")
                kept[which] += 1
                counts[which] += 1
            tasks += 1
    finally:
        for f in files.values():
            f.close()
    return {"tasks": tasks, **counts}


def ensure(name: str, capped: bool) -> Path:
    """The converted folder of alias ``name`` in the cache, converting on first use (atomically)."""
    from loram_core.data.bigbench import SHA256, find_archive
    from loram_core.models.smollm2 import cache_root

    folder = cache_root() / "datasets" / name
    stamp = {"source": SHA256, "archive_size": find_archive().stat().st_size, "capped": capped, "version": VERSION}
    marker = folder / ".loram_conversion.json"  # hidden: not one of the folder's data files
    try:
        if {k: v for k, v in json.loads(marker.read_text()).items() if k in stamp} == stamp:
            return folder
    except (OSError, ValueError):
        pass
    with atomic_dir(folder) as tmp:
        counts = convert(tmp, capped)
        write_json(tmp / marker.name, {**stamp, "counts": counts})
    return folder


def load(name: str, capped: bool):
    from loram_core.data.records import load_files
    from loram_core.models.smollm2 import cache_root

    records = load_files(ensure(name, capped), cache_root() / "datasets" / "arrow")
    return type(records)(name, records.train, records.validation, records.test, own_splits=True)
