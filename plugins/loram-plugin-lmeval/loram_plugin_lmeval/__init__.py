"""loram-plugin-lmeval: downstream task accuracy for loram (docs/tasks.md). The ``lm-eval`` evaluator runs
lm-evaluation-harness on local task YAMLs (a suite of math and commonsense tasks built offline from pinned data
packages, and the user's own); the ``humaneval`` evaluator generates HumanEval completions and runs each in a
sandboxed child process. The suite's train splits are datasets too, to train on a task and test on it."""

from loram_core import hookimpl
from loram_plugin_lmeval.version import __version__

__all__ = ["__version__", "register_datasets", "register_task_evaluators"]


@hookimpl
def register_task_evaluators(register):
    from loram_plugin_lmeval.evaluator import LmEvalEvaluator
    from loram_plugin_lmeval.humaneval.evaluator import HumanEvalEvaluator

    register(LmEvalEvaluator())
    register(HumanEvalEvaluator())


@hookimpl
def register_datasets(register):
    from loram_plugin_lmeval.datasets import DATASETS

    for dataset in DATASETS:
        register(dataset)
