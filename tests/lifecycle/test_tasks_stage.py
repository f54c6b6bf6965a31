"""The tasks stage with a task evaluator registered inside the test: which models it is handed (the original
shared with the recovered adapter, never loaded twice), what the report and its Table 1 hold, and scores that
accumulate instead of being recomputed (docs/tasks.md)."""

import json

import attrs
import pytest
import torch

from loram_core import hookimpl
from loram_core.bench.tasks_table import tasks_markdown
from loram_core.cli.main import main
from loram_core.task_eval import MULTIPLE_CHOICE, TaskInfo, TaskScore
from loram_core.testing.tiny import FAST_FLAGS


@attrs.define
class LogitEvaluator:
    """Scores a model by its last logits on a fixed input, so each variant gets its own exact number."""

    name: str = "logits"
    calls: list = attrs.Factory(list)

    def tasks(self, include_path):
        return [TaskInfo("probe_a", "user", MULTIPLE_CHOICE, "acc", 3, 4), TaskInfo("probe_b", "user", MULTIPLE_CHOICE,
                                                                                   "acc", None, 4)]

    def evaluate(self, model, tokenizer, tasks, options):
        ids = torch.tensor([tokenizer("the king said")["input_ids"]])
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0, -1].double()
        self.calls.append((model, tuple(tasks), options.limit))
        return {t: TaskScore(metric="acc", value=float(logits[i]), stderr=0.01, n=options.limit or 4,
                             metrics={"acc,none": [float(logits[i]), 0.01]}) for i, t in enumerate(tasks)}


class Plugin:
    def __init__(self):
        self.evaluator = LogitEvaluator()

    @hookimpl
    def register_task_evaluators(self, register):
        register(self.evaluator)


@pytest.fixture
def evaluator(loram_register):
    plugin = loram_register(Plugin(), name="logits-plugin")
    return plugin.evaluator


def test_every_variant_is_scored_and_the_original_is_shared_with_its_adapter(evaluator, inputs, tmp_path, capsys):
    model, data = inputs
    out = tmp_path / "run"
    assert main(["run", "--model", str(model), "--data", str(data), "--pruner", "random", "--out", str(out),
                 "--tasks", "probe_a", "--json", *FAST_FLAGS]) == 0
    report = json.loads(capsys.readouterr().out)
    scores = report["tasks"]["scores"]
    assert list(scores) == ["pruned", "pruned_lora", "original", "loram", "merged"]
    models = [m for m, _, _ in evaluator.calls]
    assert len(models) == 5
    from peft import PeftModel

    assert isinstance(models[3], PeftModel) and models[3].get_base_model() is models[2]  # adapter added, no reload
    assert isinstance(models[1], PeftModel) and models[1].get_base_model() is models[0]
    value = lambda v: scores[v]["probe_a"]["value"]  # noqa: E731
    assert abs(value("loram") - value("merged")) < 1e-4  # the merged folder is the original + adapter
    assert value("pruned") != value("original")
    assert scores["original"]["probe_a"] == {"metric": "acc", "value": value("original"), "stderr": 0.01, "n": 4,
                                             "metrics": {"acc,none": [value("original"), 0.01]},
                                             "options": {"num_fewshot": 0, "limit": None}}
    assert report["tasks"]["info"]["probe_a"] == {"name": "probe_a", "family": "user", "kind": "multiple choice",
                                                  "metric": "acc", "train": 3, "test": 4, "description": "",
                                                  "source": "", "licence": ""}
    assert report["tasks"]["evaluators"] == {"logits": "unknown"} or list(report["tasks"]["evaluators"]) == ["logits"]


def test_a_later_task_is_scored_alone_and_kept_scores_are_not_recomputed(evaluator, inputs, tmp_path, capsys):
    model, data = inputs
    out = tmp_path / "run"
    assert main(["run", "--model", str(model), "--data", str(data), "--pruner", "random", "--out", str(out),
                 "--no-merge", "--tasks", "probe_a", *FAST_FLAGS]) == 0
    first = json.loads((out / "report.json").read_text())["tasks"]["scores"]
    evaluator.calls.clear()
    # no --overwrite needed: scores are added, nothing is replaced
    assert main(["eval", str(out), "--tasks", "probe_a,probe_b", "--no-progress"]) == 0
    assert [tasks for _, tasks, _ in evaluator.calls] == [("probe_b",)] * 4
    report = json.loads((out / "report.json").read_text())["tasks"]
    assert report["tasks"] == ["probe_a", "probe_b"]
    assert all(report["scores"][v]["probe_a"] == first[v]["probe_a"] for v in first)
    evaluator.calls.clear()
    assert main(["eval", str(out), "--tasks", "probe_a,probe_b", "--no-progress"]) == 0
    assert evaluator.calls == []  # finished: nothing runs
    # another --limit: probe_b is scored again with it; probe_a, not asked for, keeps its score and its options
    assert main(["eval", str(out), "--tasks", "probe_b", "--limit", "2", "--no-progress"]) == 0
    assert [(tasks, limit) for _, tasks, limit in evaluator.calls] == [(("probe_b",), 2)] * 4
    report = json.loads((out / "report.json").read_text())["tasks"]
    assert report["tasks"] == ["probe_a", "probe_b"]
    assert report["scores"]["loram"]["probe_b"]["options"] == {"num_fewshot": 0, "limit": 2}
    assert report["scores"]["loram"]["probe_a"]["options"] == {"num_fewshot": 0, "limit": None}
    capsys.readouterr()
    assert main(["eval", "--list-tasks", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(r["name"], r["evaluator"], r["test"]) for r in listed if r["evaluator"] == "logits"] == [
        ("probe_a", "logits", 4), ("probe_b", "logits", 4)]


def test_an_unknown_task_stops_before_any_stage_with_the_known_ones(evaluator, inputs, tmp_path, capsys):
    model, data = inputs
    out = tmp_path / "run"
    assert main(["run", "--model", str(model), "--data", str(data), "--out", str(out), "--tasks", "probe_c",
                 *FAST_FLAGS]) == 2
    err = capsys.readouterr().err
    assert "unknown task(s) probe_c; known: " in err and "probe_a, probe_b" in err
    assert not (out / "stages" / "prune.json").exists()


def score(value, stderr=0.02):
    return {"metric": "acc", "value": value, "stderr": stderr, "n": 300}


def test_table_one_rows_and_the_captured_share_of_full_loras_gain():
    rows = [
        {"label": "llmpruner 0.5", "status": "done", "pruner": "llmpruner",
         "tasks": {"tasks": ["math", "qa"], "scores": {
             "original": {"math": score(0.2), "qa": score(0.5)}, "pruned_lora": {"math": score(0.25), "qa": score(0.4)},
             "loram": {"math": score(0.35), "qa": score(0.45)}}}},
        {"label": "LoRA full model", "status": "done", "pruner": "none",
         "tasks": {"tasks": ["math", "qa"], "scores": {"original": {"math": score(0.2), "qa": score(0.5)},
                                                       "loram": {"math": score(0.4), "qa": score(0.48)}}}},
    ]
    assert tasks_markdown(rows) == (
        "| method | math | qa |\n|---|---|---|\n"
        "| original, no fine-tuning | 0.200 ± 0.020 | 0.500 ± 0.020 |\n"
        "| llmpruner 0.5: train small, infer small | 0.250 ± 0.020 | 0.400 ± 0.020 |\n"
        "| llmpruner 0.5: LoRAM (original + recovered) | 0.350 ± 0.020 | 0.450 ± 0.020 |\n"
        "| LoRA full model | 0.400 ± 0.020 | 0.480 ± 0.020 |\n"
        "\nShare of full LoRA's gain captured by llmpruner 0.5: math 75%, qa —.\n")  # LoRA lost on qa: no gain
