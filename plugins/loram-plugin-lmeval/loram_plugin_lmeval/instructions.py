"""``suite-instructions``: general instruction data built only from what is never evaluated (docs/data.md,
"suite-instructions").

No human-written general instruction corpus ships in a package that can be had here (BIG-bench's
natural_instructions went with ``bigbench==1.0.0``). This mix is honest about what it is: the suite tasks' train
splits put as chat questions, and exercises from reasoning-gym's generators with their answers. No record comes
from a test split: the suite's splits are disjoint (``material.py``), and the generators below make nothing that
the suite evaluates. Written with the suite (``build.py``), its composition recorded in ``instructions.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

from loram_core.data.splits import SPLITS, assign_splits

COMPOSITION = "instructions.json"
# Per task train split: at most this many records (the first in the split's fixed order); passages of BoolQ
# longer than MAX_CHARS are left out so a record fits a CPU's sequence length.
TASK_CAP = {"boolq": 2000, "gsm8k": 2050, "arithmetic": 1000, "asdiv": 1000, "piqa": 1000, "siqa": 1000,
            "openbookqa": 250}
MAX_CHARS = 1200
# reasoning-gym generators (Apache-2.0) of short exercises with one right answer, none of them a suite task.
GENERATORS = ("spell_backward", "word_sorting", "letter_counting", "number_sorting", "family_relationships",
              "sentence_reordering", "word_sequence_reversal", "calendar_arithmetic")
PER_GENERATOR = 250
SEED = 2026


def chat(question: str, answer: str, source: str) -> dict:
    return {"prompt": [{"role": "user", "content": question.strip()}],
            "completion": [{"role": "assistant", "content": answer.strip()}], "source": source}


def question_of(doc: dict) -> str:
    """A task document as a user would ask it: the prompt without its "Answer:" cue, the choices listed."""
    lines = doc["prompt"].strip().split("\n")
    if len(lines) > 1 and lines[-1].strip() in ("Answer:", "A:"):
        lines = lines[:-1]
    text = "\n".join(lines).removeprefix("Question: ")
    if "choices" in doc:
        text += "\n\nChoose one:\n" + "\n".join(f"- {choice}" for choice in doc["choices"])
    return text


def task_records(folder: Path) -> list[dict]:
    records = []
    for task, cap in TASK_CAP.items():
        kept = 0
        with open(folder / f"{task}.train.jsonl") as f:
            for line in f:
                doc = json.loads(line)
                if kept == cap:
                    break
                if len(doc["prompt"]) > MAX_CHARS:
                    continue
                records.append(chat(question_of(doc), doc["answer"], f"{task} (train split)"))
                kept += 1
    return records


def generated_records() -> list[dict]:
    import reasoning_gym

    records = []
    for name in GENERATORS:
        dataset = reasoning_gym.create_dataset(name, size=PER_GENERATOR, seed=SEED)
        records += [chat(entry["question"], str(entry["answer"]), f"reasoning-gym {name}") for entry in dataset]
    return records


def build(folder: Path) -> dict:
    """Write ``instructions.{train,validation,test}.jsonl`` (90/5/5 by a hash of each record's source and
    position) into the suite folder; returns the composition."""
    records = task_records(folder) + generated_records()
    keys = [f"{r['source']}:{i}" for i, r in enumerate(records)]
    files = {s: open(folder / f"instructions.{s}.jsonl", "w") for s in SPLITS}
    composition: dict[str, dict[str, int]] = {}
    try:
        for record, split in zip(records, assign_splits(keys, (0.9, 0.05, 0.05), salt="suite-instructions")):
            files[SPLITS[split]].write(json.dumps(record, ensure_ascii=False) + "\n")
            counts = composition.setdefault(record["source"], {s: 0 for s in SPLITS})
            counts[SPLITS[split]] += 1
    finally:
        for f in files.values():
            f.close()
    (folder / COMPOSITION).write_text(json.dumps(composition, indent=2) + "\n")
    return composition
