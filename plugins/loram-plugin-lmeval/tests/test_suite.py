"""The offline suite: BIG-bench's task.json files as local lm-eval YAMLs with fixed, disjoint splits."""

import json

from loram_plugin_lmeval.build import build, doc, split
from loram_plugin_lmeval.suite import BY_NAME, SUITE

SIZES = {"elementary_math_qa": (7188, 500), "arithmetic": (3023, 500), "strategyqa": (1789, 500),
         "social_iqa": (1435, 500), "physical_intuition": (41, 40), "winowhy": (2362, 500),
         "logical_deduction": (998, 502), "date_understanding": (185, 184)}


def read(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_each_task_has_fixed_disjoint_splits_of_recorded_size(suite):
    folder, manifest = suite
    assert {t: (m["train"], m["test"]) for t, m in manifest.items()} == SIZES
    for task in SUITE:
        train, test = read(folder / f"{task.name}.train.jsonl"), read(folder / f"{task.name}.test.jsonl")
        assert (len(train), len(test)) == SIZES[task.name]
        assert not {d["prompt"] for d in train} & {d["prompt"] for d in test}, task.name  # no test question trained


def test_a_second_build_writes_the_same_bytes(suite, tmp_path):
    folder, _ = suite
    assert build(tmp_path, final=folder) == json.loads((folder / "suite.json").read_text())
    for task in SUITE:
        for name in (f"{task.name}.train.jsonl", f"{task.name}.test.jsonl", f"{task.name}.yaml"):
            assert (tmp_path / name).read_bytes() == (folder / name).read_bytes(), name


def test_docs_put_the_question_as_lm_eval_sees_it_and_the_label_on_the_right_choice():
    example = {"input": " What is 80 plus 29? ", "target_scores": {"378": 0.0, "109": 1.0, "4": 0.0}, "target": "109"}
    assert doc(BY_NAME["elementary_math_qa"], example) == {
        "input": " What is 80 plus 29? ", "prompt": "Question: What is 80 plus 29?\nAnswer:",
        "choices": ["378", "109", "4"], "label": 1, "answer": "109"}
    assert doc(BY_NAME["arithmetic"], example) == {
        "input": " What is 80 plus 29? ", "prompt": "Question: What is 80 plus 29?\nAnswer:", "target": "109",
        "answer": "109"}
    assert doc(BY_NAME["winowhy"], {"input": "A because B.", "target_scores": {"correct": 0, "incorrect": 1}})[
        "prompt"] == "A because B.\nThe above reasoning is"


def test_questions_asked_of_one_paragraph_stay_in_one_split():
    docs = [{"prompt": f"p{i // 3}", "answer": str(i)} for i in range(30)] + [{"prompt": "p0", "answer": "0"}]
    train, test = split(docs)
    assert len(train) + len(test) == 30  # the exact repeat is kept once
    assert not {d["prompt"] for d in train} & {d["prompt"] for d in test}
    assert len(test) == 15  # whole paragraphs of 3 until half


def test_lm_eval_indexes_every_suite_yaml(suite):
    from lm_eval.tasks import TaskManager

    folder, _ = suite
    manager = TaskManager(include_path=str(folder), include_defaults=False)
    assert sorted(manager.all_subtasks) == sorted(t.name for t in SUITE)


def test_list_tasks_prints_the_suite_with_sizes(lmeval_registered, capsys):
    from loram_core.cli.main import main

    assert main(["eval", "--list-tasks", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    suite_rows = {r["name"]: (r["family"], r["kind"], r["metric"], r["train"], r["test"]) for r in rows
                  if r["evaluator"] == "lm-eval"}
    assert suite_rows == {t.name: (t.family, t.kind, t.metric, *SIZES[t.name]) for t in SUITE}
    assert {r["name"]: r["metric"] for r in rows if r["evaluator"] == "humaneval"} == {
        "humaneval": "pass@1", "humaneval_sampled": "pass@10"}
    assert main(["eval", "--list-tasks"]) == 0
    table = capsys.readouterr().out
    assert "elementary_math_qa" in table and "7,188" in table and "multiple choice" in table


def test_the_math_train_splits_are_prompt_completion_data_in_the_evaluated_format(suite):
    from loram_plugin_lmeval.datasets import DATASETS

    folder, manifest = suite
    data = {d.name: d for d in DATASETS}["bigbench-math"].load()
    assert len(data.train) + len(data.validation) == manifest["elementary_math_qa"]["train"] + manifest["arithmetic"]["train"]
    assert len(data.test) == 1000
    first = read(folder / "elementary_math_qa.train.jsonl")[0]
    assert data.train[0] == (1, {"prompt": first["prompt"], "completion": " " + first["answer"],
                                 "task": "elementary_math_qa"})
    tests = {r["prompt"] for _, r in data.test}
    assert not tests & {r["prompt"] for _, r in data.train + data.validation}
