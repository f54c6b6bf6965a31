"""A full disk at a random write of each stage: one line and exit 2, and once space is free again the same
command finishes the run with the very adapters an undisturbed run made (``torch.equal``).

"A write" is every file a stage creates in the run directory: through ``open`` (transformers' and PEFT's JSON,
``tokenizer_config.json``), ``torch.save`` (optimizer state), safetensors (weights, shards, adapters) and
loram's atomic writer (records, run.json, the report). The injected ``OSError(ENOSPC)`` comes at the N-th of them, N drawn (seeded) from the number the
undisturbed stage makes; safetensors writes leave half a file behind first, as a disk that fills mid-write does.
``LORAM_DISK_FULL_EVERY_WRITE=1`` tries every write of every stage instead (minutes; not in CI).
"""

from __future__ import annotations

import builtins
import errno
import io
import os
import random
import shutil
import tempfile
from pathlib import Path

import pytest
import safetensors.torch
import torch
from safetensors.torch import load_file

from loram_core.cli.main import main
from loram_core.testing.tiny import FAST_FLAGS

STAGES = ("prune", "train", "recover", "merge", "eval")
SEED = 17


class Disk:
    """Counts the writes under ``root``; the ``fail_at``-th raises ENOSPC (0: none fails)."""

    def __init__(self, monkeypatch, root: Path):
        self.root, self.count, self.fail_at, self.paths = str(root), 0, 0, []
        real_open, real_serialize = builtins.open, safetensors.torch.serialize_file
        real_mkstemp, real_save = tempfile.mkstemp, torch.save

        def full(path):
            if not str(path).startswith(self.root):
                return
            self.count += 1
            self.paths.append(str(path))
            if self.count == self.fail_at:
                raise OSError(errno.ENOSPC, "No space left on device", str(path))

        def counted_open(file, mode="r", *args, **kwargs):
            if isinstance(file, (str, Path)) and set(mode) & set("wax+"):
                full(file)
            return real_open(file, mode, *args, **kwargs)

        def counted_serialize(tensors, filename, *args, **kwargs):
            try:
                full(filename)
            except OSError:
                real_serialize(tensors, filename, *args, **kwargs)
                data = Path(filename).read_bytes()
                Path(filename).write_bytes(data[: len(data) // 2])  # what a disk filling mid-write leaves
                raise
            return real_serialize(tensors, filename, *args, **kwargs)

        def counted_mkstemp(*args, **kwargs):  # loram's atomic writer starts each file so
            fd, name = real_mkstemp(*args, **kwargs)
            try:
                full(name)
            except OSError:
                os.close(fd)
                os.unlink(name)  # as the writer's own cleanup would, had its first write failed
                raise
            return fd, name

        def counted_save(obj, f, *args, **kwargs):
            if isinstance(f, (str, Path)):
                full(f)
            return real_save(obj, f, *args, **kwargs)

        # each patched at the attribute its callers look up on every call (no module holds its own copy)
        monkeypatch.setattr(builtins, "open", counted_open)
        monkeypatch.setattr(io, "open", counted_open)
        monkeypatch.setattr(safetensors.torch, "serialize_file", counted_serialize)
        monkeypatch.setattr(tempfile, "mkstemp", counted_mkstemp)
        monkeypatch.setattr(torch, "save", counted_save)


def stage_argv(stage: str, out: Path, model: Path, data: Path) -> list[str]:
    first = ["--model", str(model), "--data", str(data), "--layers", "1:7", *FAST_FLAGS] if stage == "prune" else \
        ["--no-progress"]
    return [stage, str(out), *first, "--json"]


def adapters(out: Path) -> dict[str, dict[str, torch.Tensor]]:
    return {f: load_file(out / f / "adapter_model.safetensors") for f in ("adapter-pruned", "adapter")}


@pytest.fixture(scope="module")
def undisturbed(inputs, tmp_path_factory):
    """The run made stage by stage, with the number of writes each stage made: (adapters, writes by stage)."""
    model, data = inputs
    out = tmp_path_factory.mktemp("undisturbed") / "run"
    writes = {}
    with pytest.MonkeyPatch.context() as mp:
        disk = Disk(mp, out.parent)
        for stage in STAGES:
            before = disk.count
            assert main(stage_argv(stage, out, model, data)) == 0
            writes[stage] = disk.count - before
    return adapters(out), writes


@pytest.mark.parametrize("stage", STAGES)
def test_a_full_disk_at_a_random_write_of_a_stage_then_a_rerun_makes_the_same_adapters(
        stage, undisturbed, inputs, tmp_path, monkeypatch, one_line, capsys):
    expected, writes = undisturbed
    assert writes[stage] > 0
    every = os.environ.get("LORAM_DISK_FULL_EVERY_WRITE")
    for fail_at in range(1, writes[stage] + 1) if every else [random.Random(f"{SEED}-{stage}").randint(1, writes[stage])]:
        out = tmp_path / f"write-{fail_at}"
        # the drawn write is a row of docs/reliability.md; every write's line names its own file
        answer = one_line if not every else lambda argv, _case: plain_one_line(argv, capsys)
        fill_the_disk_then_finish(stage, fail_at, writes[stage], out, inputs, monkeypatch, answer)
        capsys.readouterr()
        got = adapters(out)
        for folder, tensors in expected.items():
            assert got[folder].keys() == tensors.keys()
            assert all(torch.equal(got[folder][k], v) for k, v in tensors.items()), (folder, fail_at)
        shutil.rmtree(out)


def plain_one_line(argv, capsys) -> str:
    capsys.readouterr()
    assert main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def fill_the_disk_then_finish(stage, fail_at, writes, out, inputs, monkeypatch, one_line) -> None:
    model, data = inputs
    for earlier in STAGES[:STAGES.index(stage)]:
        assert main(stage_argv(earlier, out, model, data)) == 0
    with monkeypatch.context() as mp:
        disk = Disk(mp, out.parent)
        disk.fail_at = fail_at
        message = one_line(stage_argv(stage, out, model, data), f"a full disk during `loram {stage}`")
    assert "no space left on the device" in message, f"write {fail_at} of {writes}"
    assert not [p for p in out.rglob("*.tmp")], "a temporary sibling was left behind"
    # space is free again: the same command finishes the stage, and the run finishes as if nothing happened
    for rest in STAGES[STAGES.index(stage):]:
        assert main(stage_argv(rest, out, model, data)) == 0, f"{rest} after a full disk at write {fail_at} of {writes}"
