"""The lm-eval evaluator adds no scoring of its own: its numbers are lm-eval's for the same YAML and model, and
the lifecycle puts them in the report for every variant, offline, with nothing printed but the report."""

import json
import os

import pytest

from loram_core.task_eval import TaskOptions
from loram_core.testing.tiny import FAST_FLAGS
from loram_plugin_lmeval.suite import BY_NAME, SUITE

# gsm_symbolic's YAML is gsm8k's with other documents (build.yaml_text): gsm8k stands for both here.
TASKS = [t.name for t in SUITE if t.name != "gsm_symbolic"]
# One of each way a task is put and scored: integer and worked answers, two choices, a passage.
PLUMBING = ["arithmetic", "gsm8k", "piqa", "boolq"]


def stock_lm_eval(model, tokenizer, tasks, include_path, limit):
    """lm-eval's own run: HFLM on the model object, its TaskManager on the same YAMLs."""
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=include_path, include_defaults=False)
    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=8)
    return lm_eval.simple_evaluate(model=lm, tasks=tasks, task_manager=manager, limit=limit, log_samples=False,
                                   num_fewshot=0)["results"]


@pytest.mark.slow
def test_smollm2_scores_equal_lm_evals_own_run_offline(lmeval_registered, suite, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from loram_core import registry
    from loram_core.models.smollm2 import ensure_smollm2

    assert os.environ["HF_HUB_OFFLINE"] == "1" and os.environ["HF_DATASETS_OFFLINE"] == "1"
    path = ensure_smollm2()
    model, tokenizer = AutoModelForCausalLM.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)
    ours = registry.get("evaluator", "lm-eval").evaluate(model, tokenizer, TASKS,
                                                         TaskOptions(limit=4, log=tmp_path / "lm-eval.log"))
    theirs = stock_lm_eval(model, tokenizer, TASKS, str(suite[0]), 4)
    for task in TASKS:
        key = f"{BY_NAME[task].metric},{BY_NAME[task].filter}"
        metric, _, filt = key.partition(",")
        assert ours[task].value == theirs[task][key]
        assert ours[task].stderr == theirs[task][f"{metric}_stderr,{filt}"]
        assert ours[task].n == 4
    assert ours["piqa"].metrics["acc_norm,none"][0] == theirs["piqa"]["acc_norm,none"]
    assert (tmp_path / "lm-eval.log").stat().st_size > 0  # lm-eval's own output went there


def test_a_run_scores_suite_tasks_on_every_variant_and_prints_only_the_report(lmeval_registered, tiny_inputs,
                                                                              tmp_path, capfd):
    from loram_core.cli.main import main

    model, data = tiny_inputs
    out = tmp_path / "run"
    assert main(["run", "--model", str(model), "--data", str(data), "--pruner", "random", "--out", str(out),
                 "--tasks", ",".join(PLUMBING), "--limit", "3", "--no-merge", "--json", *FAST_FLAGS]) == 0
    captured = capfd.readouterr()  # file descriptors too: lm-eval's tqdm bars and git's errors
    report = json.loads(captured.out)
    assert captured.err == ""
    scores = report["tasks"]["scores"]
    assert list(scores) == ["pruned", "pruned_lora", "original", "loram"]
    for variant in scores.values():
        assert {task: s["metric"] for task, s in variant.items()} == {t: BY_NAME[t].metric for t in PLUMBING}
        assert all(s["n"] == 3 and 0 <= s["value"] <= 1 for s in variant.values())
    assert (out / "tasks" / "lm-eval.log").is_file()


def test_your_own_yaml_through_include_path_scores_as_lm_eval_does(lmeval_registered, tiny_inputs, tmp_path, capsys):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from loram_core.cli.main import main

    model, data = tiny_inputs
    mine = tmp_path / "mine"
    mine.mkdir()
    docs = [{"q": f"{a} plus {b} is", "choices": [str(a + b), str(a + b + 1)], "label": 0} for a, b in
            [(1, 2), (3, 4), (2, 2), (5, 1), (6, 3)]]
    (mine / "sums.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    (mine / "sums.yaml").write_text(f"""task: my_sums
dataset_path: json
dataset_kwargs:
  data_files:
    test: {mine / 'sums.jsonl'}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{q}}}}"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: label
metric_list:
  - metric: acc
""")
    assert main(["eval", "--list-tasks", "--include-path", str(mine), "--json"]) == 0
    listed = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert (listed["my_sums"]["family"], listed["my_sums"]["kind"], listed["my_sums"]["metric"]) == (
        "user", "multiple choice", "acc")
    out = tmp_path / "run"
    assert main(["run", "--model", str(model), "--data", str(data), "--pruner", "random", "--out", str(out),
                 "--tasks", "my_sums", "--include-path", str(mine), "--no-merge", *FAST_FLAGS]) == 0
    report = json.loads((out / "report.json").read_text())["tasks"]["scores"]
    tiny = AutoModelForCausalLM.from_pretrained(model).eval()
    theirs = stock_lm_eval(tiny, AutoTokenizer.from_pretrained(model), ["my_sums"], str(mine), None)["my_sums"]
    assert report["original"]["my_sums"]["value"] == theirs["acc,none"]
    assert report["original"]["my_sums"]["stderr"] == theirs["acc_stderr,none"]
    assert report["original"]["my_sums"]["n"] == 5
