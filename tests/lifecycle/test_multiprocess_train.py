"""``accelerate launch`` with 2 CPU processes (gloo): sharded data, synchronized gradients, main-only writes,
the same adapter as one process with the same global batch, and resume across process counts.

accelerate 1.x starts N CPU processes only through its torchrun launcher (a MULTI_GPU config or ``--multi_gpu``,
which falls back to gloo when no GPU is visible); ``--cpu --num_processes N`` starts a single one without an
MPI hostfile.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from loram_core.cli.main import main
from loram_test_helpers import REPO

# dropout 0: dropout masks are drawn per process, so only without dropout are the runs equal number for number
TRAIN = ["--steps", "4", "--seq-len", "32", "--lr", "0.01", "--warmup-steps", "0", "--dropout", "0",
         "--checkpoint-every", "2", "--no-progress", "--json"]
WEIGHTS = "adapter-pruned/adapter_model.safetensors"
DDP_CONFIG = REPO / "examples" / "accelerate" / "ddp.yaml"


@pytest.fixture(scope="module")
def pruned_run(inputs, tmp_path_factory):
    model, data = inputs
    out = tmp_path_factory.mktemp("mp") / "pruned"
    assert main(["prune", str(out), "--model", str(model), "--data", str(data), "--no-progress"]) == 0
    return out


def _copy(run: Path, dest: Path) -> Path:
    shutil.copytree(run, dest)
    return dest


def _launch(run_dir: Path, debug: Path, *flags: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", "LORAM_DEBUG_BATCHES": str(debug)}
    # The documented DDP config, with 2 processes: no GPU is visible, so they are gloo processes on the CPU.
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(DDP_CONFIG), "--num_processes", "2",
           "--main_process_port", "0",  # a free port: parallel CI jobs never collide
           "-m", "loram_core.cli", "train", str(run_dir), *flags]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _batches(debug: Path, rank: int) -> dict[tuple[int, int], list[int]]:
    lines = Path(f"{debug}.rank{rank}").read_text().splitlines()
    return {(r["step"], r["micro"]): r["starts"] for r in map(json.loads, lines)}


def _train_in_process(run_dir: Path, debug: Path, monkeypatch, *flags: str) -> dict:
    monkeypatch.setenv("LORAM_DEBUG_BATCHES", str(debug))
    assert main(["train", str(run_dir), *flags]) == 0
    monkeypatch.delenv("LORAM_DEBUG_BATCHES")
    return json.loads((run_dir / "stages" / "train.json").read_text())


def _assert_same_adapter(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert a[key].numel() > 0 and a[key].shape == b[key].shape, key
        # Another reduction order (DDP averages two half-batch means) changes the last bits of the gradients,
        # and Adam's normalization lets that show in near-zero coordinates: per tensor, the relative error
        # measured here is ~5e-6; a wrong batch split or unsynchronized gradients give errors of order 1.
        error = ((a[key] - b[key]).norm() / b[key].norm()).item()
        assert error < 5e-5, (key, error)


def _forget_after_step_2(run_dir: Path) -> None:
    """An interrupted run: the step-2 checkpoint is there, nothing after it."""
    shutil.rmtree(run_dir / "checkpoints" / "step-4")
    shutil.rmtree(run_dir / "adapter-pruned")
    (run_dir / "stages" / "train.json").unlink()


@pytest.mark.slow
def test_two_processes_equal_one_with_the_same_global_batch(pruned_run, tmp_path, monkeypatch):
    two, one = _copy(pruned_run, tmp_path / "two"), _copy(pruned_run, tmp_path / "one")
    done = _launch(two, tmp_path / "dbg2", "--batch-size", "2", *TRAIN)
    ref = _train_in_process(one, tmp_path / "dbg1", monkeypatch, "--batch-size", "4", *TRAIN)

    # Each process trained on its own half of every global batch; together, exactly one process's batches.
    rank0, rank1 = _batches(tmp_path / "dbg2", 0), _batches(tmp_path / "dbg2", 1)
    single = _batches(tmp_path / "dbg1", 0)
    assert rank0.keys() == rank1.keys() == single.keys() == {(s, 0) for s in range(4)}
    for step in rank0:
        assert len(rank0[step]) == len(rank1[step]) == 2 and rank0[step] != rank1[step]
        assert rank0[step] + rank1[step] == single[step]

    # Only the main process wrote: one report on stdout, one record saying 2 processes took part.
    assert done.stdout.count('"schema"') == 1
    record = json.loads((two / "stages" / "train.json").read_text())
    assert record["processes"] == 2 and record["global_batch"] == 4 and ref["processes"] == 1
    assert record["tokens"] == ref["tokens"] == 4 * 4 * 32  # global tokens
    torch.testing.assert_close(torch.tensor(record["losses"]), torch.tensor(ref["losses"]), rtol=1e-5, atol=0)
    state = json.loads((two / "checkpoints" / "step-4" / "state.json").read_text())
    assert state["processes"] == 2 and state["global_batch"] == 4

    # The adapter is complete (every tensor, none empty), trained, and equals the single-process one.
    got, want = load_file(two / WEIGHTS), load_file(one / WEIGHTS)
    _assert_same_adapter(got, want)
    assert all(got[k].abs().max() > 0 for k in got if "lora_B" in k)  # lora_B starts at zero: it moved

    # Resume with another process count: the 2-process checkpoint at step 2, finished by 1 process.
    _forget_after_step_2(two)
    resumed = _train_in_process(two, tmp_path / "dbg3", monkeypatch, "--batch-size", "4", *TRAIN)
    assert resumed["resumed_from"] == 2 and resumed["processes"] == 1
    _assert_same_adapter(load_file(two / WEIGHTS), want)


@pytest.mark.slow
def test_two_processes_resume_a_single_process_checkpoint(pruned_run, tmp_path, monkeypatch):
    one = _copy(pruned_run, tmp_path / "one")
    _train_in_process(one, tmp_path / "dbg1", monkeypatch, "--batch-size", "4", *TRAIN)
    want = load_file(one / WEIGHTS)
    _forget_after_step_2(one)
    _launch(one, tmp_path / "dbg2", "--batch-size", "2", *TRAIN)
    record = json.loads((one / "stages" / "train.json").read_text())
    assert record["resumed_from"] == 2 and record["processes"] == 2
    assert sorted(_batches(tmp_path / "dbg2", 0)) == [(2, 0), (3, 0)]  # steps 0-1 came from the checkpoint
    _assert_same_adapter(load_file(one / WEIGHTS), want)


@pytest.mark.slow
def test_two_processes_equal_one_on_examples_of_unequal_lengths(inputs, tmp_path, monkeypatch):
    """Instruction examples: rows of different lengths and trained-token counts per process; the step's loss is
    the mean over the global batch's trained tokens, so the split into processes changes nothing."""
    model, _ = inputs
    chats = [{"messages": [{"role": "user", "content": f"what is {i} plus {i % 5}?" + " please" * (i % 4)},
                           {"role": "assistant", "content": f"{i + i % 5}" + " indeed" * (i % 3)}]} for i in range(40)]
    (tmp_path / "chat.jsonl").write_text("".join(json.dumps(c) + "\n" for c in chats))
    base = tmp_path / "pruned"
    assert main(["prune", str(base), "--model", str(model), "--data", str(tmp_path / "chat.jsonl"), "--chat-template",
                 "chatml", "--seq-len", "96", "--no-progress"]) == 0
    two, one = _copy(base, tmp_path / "two"), _copy(base, tmp_path / "one")
    flags = [f if f != "32" else "96" for f in TRAIN]  # --seq-len 96: a chat fits a row
    _launch(two, tmp_path / "dbg2", "--batch-size", "2", *flags)
    ref = _train_in_process(one, tmp_path / "dbg1", monkeypatch, "--batch-size", "4", *flags)
    record = json.loads((two / "stages" / "train.json").read_text())
    assert record["processes"] == 2 and record["tokens"] == ref["tokens"]
    torch.testing.assert_close(torch.tensor(record["losses"]), torch.tensor(ref["losses"]), rtol=1e-5, atol=0)
    _assert_same_adapter(load_file(two / WEIGHTS), load_file(one / WEIGHTS))
