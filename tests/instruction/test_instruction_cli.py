"""Instruction data end to end on the tiny model: data files through ``datasets`` in every kind and format, the
loss on the responses only, the report's rows over held-out responses, ``loram data inspect``, and bad data as
one line naming the file, the record and the field (rows of docs/reliability.md)."""

import json

import pytest

from loram_core.cli.main import main
from loram_core.data.encode import IGNORE
from loram_core.testing.tiny import write_tiny_inputs
from loram_test_helpers import tree_hashes

RUN = ["--layers", "1:7", "--steps", "4", "--batch-size", "4", "--seq-len", "96", "--eval-tokens", "400",
       "--no-merge", "--no-progress", "--checkpoint-every", "0"]


def chat(i: int) -> dict:
    a, b = i % 7, i % 5
    return {"messages": [{"role": "user", "content": f"{a} plus {b}?"}, {"role": "assistant", "content": str(a + b)}]}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("sft")
    model, _ = write_tiny_inputs(root)
    records = [chat(i) for i in range(60)]
    (root / "chat.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return root, model, records


def report_of(capsys, argv) -> dict:
    """``loram ARGV`` exits 0 and prints JSON, and nothing on stderr (no datasets bars or log lines in a pipe)."""
    capsys.readouterr()
    assert main([str(a) for a in argv]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    return json.loads(captured.out)


def test_a_chat_run_trains_and_scores_the_responses(world, tmp_path, capsys):
    root, model, _ = world
    report = report_of(capsys, ["run", "--model", model, "--data", root / "chat.jsonl", "--chat-template", "chatml",
                                "--out", tmp_path / "run", *RUN, "--json"])
    assert report["eval"]["scored"] == "responses" and report["eval"]["examples"] > 0
    data = report["data"]
    assert data["format"] == "messages" and data["packing"] == "none"
    assert sum(c["records"] for c in data["counts"].values()) == 60 and data["counts"]["train"]["truncated"] == 0
    assert set(report["loss"]) == {"original", "pruned", "pruned_lora", "loram"}
    assert all(report["ppl"][k] > 1 for k in report["ppl"])
    run = json.loads((tmp_path / "run" / "run.json").read_text())["settings"]
    assert run["chat_template"] == "chatml" and run["packing"] == "auto"


@pytest.mark.parametrize("packing", ["bfd", "wrapped"])
def test_packed_and_wrapped_examples_train(world, tmp_path, capsys, packing):
    root, model, _ = world
    report = report_of(capsys, ["run", "--model", model, "--data", root / "chat.jsonl", "--chat-template", "chatml",
                                "--packing", packing, "--out", tmp_path / "run", *RUN, "--json"])
    assert report["train"]["steps"] == 4 and report["train"]["tokens"] > 0


@pytest.mark.parametrize("kind", ["parquet", "csv", "json", "folder", "saved"])
def test_every_kind_of_data_file_is_read_through_datasets(world, tmp_path, capsys, kind):
    import datasets

    root, model, _ = world
    rows = [{"prompt": f"{i} plus 1 =", "completion": f" {i + 1} apples"} for i in range(40)]
    table = datasets.Dataset.from_list(rows)
    target = {"parquet": tmp_path / "d.parquet", "csv": tmp_path / "d.csv", "json": tmp_path / "d.json",
              "folder": tmp_path / "d", "saved": tmp_path / "saved"}[kind]
    if kind == "parquet":
        table.to_parquet(str(target))
    elif kind == "csv":
        table.to_csv(str(target), index=False)
    elif kind == "json":
        target.write_text(json.dumps(rows))
    elif kind == "saved":  # save_to_disk, with its own splits
        datasets.DatasetDict({"train": table.select(range(30)), "test": table.select(range(30, 40))}).save_to_disk(
            str(target))
    else:  # the source's own splits, named by file
        target.mkdir()
        table.select(range(30)).to_json(str(target / "train.jsonl"))
        table.select(range(30, 40)).to_json(str(target / "test.jsonl"))
    summary = report_of(capsys, ["data", "inspect", "--model", model, "--data", target, "-n", "1", "--json"])
    assert summary["format"] == "prompt_completion"
    counts = summary["counts"]
    assert sum(c["records"] for c in counts.values()) == 40
    if kind in ("folder", "saved"):
        assert counts["train"]["records"] == 30 and counts["test"]["records"] == 10 and counts["validation"]["records"] == 0
    example = summary["examples"][0]
    assert example["labels"][-1] != IGNORE and example["labels"][0] == IGNORE  # completion and eos trained


def test_inspect_counts_truncated_and_dropped_examples(world, tmp_path, capsys):
    root, model, _ = world
    rows = [{"prompt": "x" * n, "completion": "yy"} for n in (5, 10, 40, 60, 3, 4)]
    (tmp_path / "long.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = report_of(capsys, ["data", "inspect", "--model", model, "--data", tmp_path / "long.jsonl",
                                 "--max-length", "20", "--json"])
    totals = {k: sum(c[k] for c in summary["counts"].values()) for k in ("records", "truncated", "dropped")}
    assert totals == {"records": 6, "truncated": 2, "dropped": 2}  # prompts of 40 and 60 leave nothing to train


def test_train_on_inputs_trains_every_token(world, capsys):
    root, model, _ = world
    summary = report_of(capsys, ["data", "inspect", "--model", model, "--data", root / "chat.jsonl", "--chat-template",
                                 "chatml", "--train-on-inputs", "--json", "-n", "2"])
    assert all(e["labels"] == e["input_ids"] for e in summary["examples"])


PC = {"prompt": "hi", "completion": "there"}


@pytest.mark.parametrize("lines, flags, case, expected", [
    ([PC] * 4 + [{"prompt": "hi"}], ["--data-format", "prompt_completion"], "a record without the expected field",
     "bad.jsonl, record 5: no 'completion' field (format prompt_completion)"),
    ([chat(i) for i in range(4)] + [{"messages": [{"role": "user", "content": "hi"}]}], [],
     "a conversation with no assistant turn", "bad.jsonl, record 5: 'messages' has no assistant turn to train on"),
    ([PC] * 4 + [{"prompt": "hi", "completion": ""}], [], "an empty completion",
     "bad.jsonl, record 5: field 'completion' is empty"),
    ([chat(i) for i in range(4)] + [{"messages": [{"role": "robot", "content": "hi"}]}], [], "an unknown role",
     "bad.jsonl, record 5: messages[0].role is 'robot', not one of system, user, assistant"),
    ([{"question": "q", "answer": "a"}] * 5, [], "a format `--data-format auto` cannot decide",
     "fits none of the formats"),
    ([chat(i) for i in range(5)], [], "chat data on a tokenizer without a chat template",
     "is chat data, and the tokenizer of"),
], ids=["missing field", "no assistant turn", "empty completion", "unknown role", "undecidable", "no template"])
def test_bad_data_is_one_line_naming_the_record_and_nothing_is_written(world, tmp_path, one_line, lines, flags,
                                                                        case, expected):
    root, model, _ = world
    data = tmp_path / "bad.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in lines))
    before = tree_hashes(tmp_path)
    message = one_line(["run", "--model", model, "--data", data, "--out", tmp_path / "run", *flags, *RUN],
                       f"instruction data: {case}")
    assert expected in message and str(data.name) in message
    assert tree_hashes(tmp_path) == before and not (tmp_path / "run").exists()


def test_several_sources_each_with_its_own_split_format_and_fields(world, tmp_path, capsys):
    import datasets

    root, model, records = world
    alpaca = [{"task": f"Add {i} and 2.", "extra": "", "answer": str(i + 2)} for i in range(30)]
    datasets.Dataset.from_list(alpaca).to_parquet(str(tmp_path / "alpaca.parquet"))
    (tmp_path / "recipe.toml").write_text(f"""
[[data_sources]]
path = "{root / 'chat.jsonl'}"

[[data_sources]]
path = "{tmp_path / 'alpaca.parquet'}"
split = "train"
data_format = "alpaca"
field_instruction = "task"
field_input = "extra"
field_output = "answer"
""")
    flags = ["--data-source", str(root / "chat.jsonl"),
             "--data-source", f"{tmp_path / 'alpaca.parquet'}@split=train,data_format=alpaca,field_instruction=task,"
                              f"field_input=extra,field_output=answer"]
    summary = report_of(capsys, ["data", "inspect", "--model", model, "--chat-template", "chatml", *flags, "--json"])
    assert summary["format"] == "mixed"
    from loram_core.data.examples import read_records

    alpaca_train = len(read_records(str(tmp_path / "alpaca.parquet"), tmp_path / "cache").split("train"))
    assert 0 < alpaca_train < 30
    assert sum(c["records"] for c in summary["counts"].values()) == len(records) + alpaca_train  # its train split only
    report = report_of(capsys, ["run", "--model", model, "--recipe", tmp_path / "recipe.toml", "--chat-template",
                                "chatml", "--out", tmp_path / "run", *RUN, "--json"])
    assert report["eval"]["dataset"] == "chat.jsonl + alpaca.parquet[train]" and report["eval"]["scored"] == "responses"
    saved = json.loads((tmp_path / "run" / "run.json").read_text())["settings"]["data_sources"]
    assert saved[1] == {"path": str(tmp_path / "alpaca.parquet"), "split": "train", "data_format": "alpaca",
                        "field_instruction": "task", "field_input": "extra", "field_output": "answer"}


def test_a_dataset_in_the_local_datasets_cache_is_read_by_name_offline(world, tmp_path, monkeypatch, capsys):
    """A hub dataset loaded once before sits in the datasets cache as OWNER___NAME/CONFIG/VERSION/HASH; here that
    layout is made from a local file (no hub is reachable), and `--data someorg/arith` reads it with no network."""
    import shutil

    import datasets

    root, model, _ = world
    cache = tmp_path / "hf-datasets"
    monkeypatch.setenv("HF_DATASETS_CACHE", str(cache))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache)
    rows = [{"prompt": f"{i} plus 1 =", "completion": f" {i + 1} apples"} for i in range(20)]
    (tmp_path / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    datasets.load_dataset("json", data_files={"train": str(tmp_path / "a.jsonl")}, cache_dir=str(tmp_path / "build"))
    built = next((tmp_path / "build").glob("json/*/*/*/dataset_info.json")).parent
    cached = cache / "someorg___arith" / "default" / "0.0.0" / "0123abcd"
    cached.mkdir(parents=True)
    for f in built.iterdir():
        shutil.copy(f, cached / f.name.replace("json-", "arith-"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    summary = report_of(capsys, ["data", "inspect", "--model", model, "--data", "someorg/arith", "--json"])
    assert summary["format"] == "prompt_completion"
    assert sum(c["records"] for c in summary["counts"].values()) == 20
