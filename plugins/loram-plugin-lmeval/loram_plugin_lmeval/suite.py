"""The built-in task suite: BIG-bench tasks that mirror the paper's families (math: MathQA; commonsense and
reasoning), each as a local lm-eval task (docs/tasks.md, "The suite").

A task is data: which BIG-bench folders it reads, how a question is put, and how it is scored. Splits depend on
nothing but the data: whole questions in sha256 order go to the test split until it holds
``min(TEST_SIZE, examples // 2)``, the rest is the train split, so no test question is in the train split
(``build.split``).
"""

from __future__ import annotations

import attrs

from loram_core.task_eval import GENERATIVE, MULTIPLE_CHOICE

TEST_SIZE = 500


@attrs.frozen
class SuiteTask:
    name: str
    family: str
    kind: str
    folders: tuple[str, ...]  # BIG-bench subtask paths under benchmark_tasks/
    description: str
    prompt: str = "Question: {input}\nAnswer:"  # the question as the model sees it; the answer follows a space
    metric: str = "acc"

    @property
    def filter(self) -> str:
        """lm-eval's filter name the metric is reported under."""
        return "last_number" if self.kind == GENERATIVE else "none"


ARITHMETIC_OPS = ("addition", "subtraction", "multiplication", "division")

SUITE = (
    SuiteTask("elementary_math_qa", "math", MULTIPLE_CHOICE, ("elementary_math_qa/question_only",),
              "MathQA's word problems, five answer choices (BIG-bench elementary_math_qa)"),
    # Generative: the model writes the number. A small model repeats the operands first, so the LAST number it
    # writes is its answer (lm-eval's regex filter with group_select -1).
    SuiteTask("arithmetic", "math", GENERATIVE,
              tuple(f"arithmetic/{d}_digit_{op}" for d in (1, 2) for op in ARITHMETIC_OPS),
              "one- and two-digit + - x / questions, the answer written out (BIG-bench arithmetic)",
              metric="exact_match"),
    SuiteTask("strategyqa", "commonsense", MULTIPLE_CHOICE, ("strategyqa",),
              "yes/no questions that need implicit multi-step reasoning"),
    SuiteTask("social_iqa", "commonsense", MULTIPLE_CHOICE, ("social_iqa",),
              "people's motives and reactions in everyday situations, three choices"),
    SuiteTask("physical_intuition", "commonsense", MULTIPLE_CHOICE, ("physical_intuition",),
              "qualitative physics questions"),
    SuiteTask("winowhy", "commonsense", MULTIPLE_CHOICE, ("winowhy",),
              "is the reason given for a Winograd pronoun resolution correct?",
              prompt="{input}\nThe above reasoning is"),
    SuiteTask("logical_deduction", "reasoning", MULTIPLE_CHOICE,
              tuple(f"logical_deduction/{n}_objects" for n in ("three", "five", "seven")),
              "the order of three, five or seven objects from clues"),
    SuiteTask("date_understanding", "reasoning", MULTIPLE_CHOICE, ("date_understanding",),
              "date arithmetic in MM/DD/YYYY, six choices"),
)

BY_NAME = {task.name: task for task in SUITE}
MATH = tuple(task.name for task in SUITE if task.family == "math")
