"""The ``natural-instructions`` alias: BIG-bench's subtasks read from the archive's layout (a small archive of the
same shape here; the real one in docs/results.md), converted once into chat prompt/completion records with fixed,
disjoint splits per subtask."""

import io
import json
import tarfile

import pytest

from loram_core.data.bigbench import TASKS
from loram_core.data.splits import SPLITS


def write_archive(path, tasks: dict[str, int]):
    with tarfile.open(path, "w:gz") as archive:
        def add(name, doc):
            data = json.dumps(doc).encode()
            info = tarfile.TarInfo(TASKS + name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))

        add("natural_instructions/task.json", {"name": "natural_instructions", "examples": []})  # the summary
        for task, n in tasks.items():
            add(f"natural_instructions/{task}/task.json", {
                "name": task, "task_prefix": f"Definition: answer {task}.",
                "examples": [{"input": f"question {i} of {task}", "target": [f"answer {i}"]} for i in range(n)]
                + [{"input": "no target", "target": []}]})
        add("arithmetic/task.json", {"examples": [{"input": "1+1", "target": "2"}]})  # another task: not read


@pytest.fixture
def archive(tmp_path, monkeypatch):
    path = tmp_path / "bigbench-1.0.0.tar.gz"
    write_archive(path, {"subtask001_a": 420, "subtask002_b": 40})
    monkeypatch.setenv("LORAM_BIGBENCH_ARCHIVE", str(path))
    monkeypatch.setenv("LORAM_CACHE", str(tmp_path / "cache"))
    return path


def test_subtasks_become_chat_prompt_completion_records_split_disjointly(archive):
    from loram_core import registry

    records = registry.get("dataset", "natural-instructions-full").load()
    assert records.own_splits
    every = [r for s in SPLITS for r in records.split(s)]
    assert len(every) == 460  # the example without a target is skipped, the summary and arithmetic not read
    first = next(r for r in records.split("train") if r["task"] == "subtask001_a")
    assert first["prompt"][0]["role"] == "user" and first["prompt"][0]["content"].startswith("Definition: answer")
    assert first["completion"] == [{"role": "assistant", "content": first["completion"][0]["content"]}]
    keys = {s: {(r["task"], r["prompt"][0]["content"]) for r in records.split(s)} for s in SPLITS}
    assert not (keys["train"] & keys["test"]) and not (keys["train"] & keys["validation"])
    assert all(len({t for t, _ in keys[s]}) == 2 for s in SPLITS)  # every subtask in every split
    again = registry.get("dataset", "natural-instructions-full").load()  # from the cache, the same records
    assert again.split("train") == records.split("train")


def test_the_capped_alias_keeps_at_most_256_32_32_per_subtask(archive):
    from loram_core import registry

    capped = registry.get("dataset", "natural-instructions").load()
    full = registry.get("dataset", "natural-instructions-full").load()
    for task in ("subtask001_a", "subtask002_b"):
        for split, cap in (("train", 256), ("validation", 32), ("test", 32)):
            everything = [r for r in full.split(split) if r["task"] == task]
            kept = [r for r in capped.split(split) if r["task"] == task]
            assert kept == everything[:cap]  # the first ones
            assert len(kept) == (cap if task == "subtask001_a" else len(everything))  # 420: every cap is reached


def test_a_missing_archive_names_how_to_fetch_it(tmp_path, monkeypatch):
    from loram_core import registry
    from loram_core.errors import LoramError

    monkeypatch.setenv("LORAM_BIGBENCH_ARCHIVE", str(tmp_path / "none.tar.gz"))
    monkeypatch.setenv("LORAM_CACHE", str(tmp_path / "cache"))
    with pytest.raises(LoramError, match="python -m loram_core.data.bigbench"):
        registry.get("dataset", "natural-instructions").load()
