"""HumanEval through the evaluator: right completions score pass@k 1, wrong and hostile ones 0, and a model's
own completions are generated, truncated, run in the sandbox and written out for inspection."""

import json

import pytest

from loram_plugin_lmeval.humaneval.evaluator import HumanEvalEvaluator, score
from loram_plugin_lmeval.humaneval.passk import pass_at_k
from loram_plugin_lmeval.humaneval.problems import load_problems


def test_canonical_solutions_pass_and_hostile_completions_fail_without_stopping_the_rest():
    problems = load_problems(4)
    completions = [[p.canonical_solution, "    pass\n", "    while True:\n        pass\n",
                    "    import socket\n    socket.create_connection(('127.0.0.1', 9))\n"] for p in problems]
    result, passed = score(problems, completions, (1, 2))
    assert passed == {p.task_id: [True, False, False, False] for p in problems}
    assert result.metric == "pass@2" and result.n == 4
    assert result.metrics["pass@1"][0] == pytest.approx(pass_at_k(4, 1, 1)) == 0.25
    assert result.value == pytest.approx(pass_at_k(4, 1, 2))  # 1 - C(3,2)/C(4,2) = 0.5
    assert result.metrics["pass@1"][1] == 0.0  # every problem the same: no spread


def test_a_model_is_scored_on_its_own_greedy_completions(tmp_path):
    from loram_core.task_eval import TaskOptions
    from loram_core.testing.tiny import tiny_llama, tiny_tokenizer

    seen = []
    options = TaskOptions(limit=2, log=tmp_path / "humaneval.log", advance=lambda *a: seen.append(a))
    result = HumanEvalEvaluator().evaluate(tiny_llama(), tiny_tokenizer(), ["humaneval"], options)["humaneval"]
    assert (result.metric, result.n, result.value) == ("pass@1", 2, 0.0)  # a random model writes no solution
    assert seen == [("humaneval", 1, 2), ("humaneval", 2, 2)]
    samples = [json.loads(line) for line in (tmp_path / "humaneval.samples.jsonl").read_text().splitlines()]
    assert [s["task_id"] for s in samples] == ["HumanEval/0", "HumanEval/1"]
    assert all(len(s["completions"]) == 1 and s["passed"] == [False] for s in samples)
