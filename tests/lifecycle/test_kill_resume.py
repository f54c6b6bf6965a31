"""kill -9 during each stage, then the same command again: it continues from what was finished and ends with
the same adapter, bit for bit, as a run that was never interrupted."""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from loram_core.testing.tiny import write_tiny_inputs

STAGES = ("prune", "train", "recover", "merge", "eval")
FLAGS = ["--steps", "12", "--batch-size", "2", "--seq-len", "32", "--eval-seq-len", "64", "--eval-tokens", "512",
         "--checkpoint-every", "3", "--no-progress", "--json"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("kill")
    write_tiny_inputs(root)  # model/ and data.txt
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "LORAM_LOAD_PLUGINS": ""}
    reference = root / "reference"
    _run(root, reference, env).check_returncode()
    return root, env, _adapters(reference)


def _argv(root: Path, out: Path, extra: tuple[str, ...] = ()) -> list[str]:
    return [sys.executable, "-m", "loram_core.cli.main", "run", "--model", str(root / "model"), "--data",
            str(root / "data.txt"), "--pruner", "magnitude", "--out", str(out), *FLAGS, *extra]


def _align_flags(root: Path) -> tuple[str, ...]:
    opts = (f"data={root / 'data.txt'}", "steps=9", "checkpoint_every=3", "seq_len=32", "batch_size=2", "lr=0.001",
            "eval_tokens=256", "eval_seq_len=32")
    return ("--aligner", "continual-pretrain", *(f"--aligner-opt={o}" for o in opts))


def _run(root, out, env, extra: tuple[str, ...] = ()):
    return subprocess.run(_argv(root, out, extra), env=env, capture_output=True, text=True)


def _adapters(run: Path) -> dict[str, torch.Tensor]:
    out = {}
    for folder in ("adapter-pruned", "adapter"):
        for key, value in load_file(run / folder / "adapter_model.safetensors").items():
            out[f"{folder}/{key}"] = value
    return out


# What a stage's start leaves on disk: the record of the stage before it (a piped run prints no stage lines).
STARTED_WHEN = {"prune": "run.json", "align": "stages/prune.json", "train": "stages/prune.json",
                "recover": "stages/train.json", "merge": "stages/recover.json", "eval": "stages/merge.json"}


def _kill_during(stage: str, root: Path, out: Path, env, delay: float, extra: tuple[str, ...] = ()) -> bool:
    """Start the run, wait until ``stage`` begins, let it work ``delay`` seconds, then SIGKILL it."""
    proc = subprocess.Popen(_argv(root, out, extra), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    marker = out / STARTED_WHEN[stage]
    while proc.poll() is None and not marker.exists():
        time.sleep(0.01)
    time.sleep(delay)
    killed = proc.poll() is None
    if killed:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return killed


@pytest.mark.parametrize("stage", STAGES)
def test_kill_9_during_a_stage_then_rerun_gives_the_same_adapter(setup, stage):
    root, env, reference = setup
    out = root / f"killed-{stage}"
    delay = random.Random(stage).uniform(0.0, 1.5 if stage == "train" else 0.3)  # a random point, reproducible
    assert _kill_during(stage, root, out, env, delay)
    # Nothing half-written is left where a later stage reads it: every finished artifact loads.
    for folder in ("plan", "pruned", "adapter-pruned", "adapter"):
        if (out / folder).exists():
            assert any((out / folder).iterdir())
    again = _run(root, out, env)
    assert again.returncode == 0, again.stderr[-2000:]
    result = _adapters(out)
    assert result.keys() == reference.keys()
    assert all(torch.equal(result[k], reference[k]) for k in reference), f"adapter differs after a kill in {stage}"
    assert (out / "report.json").is_file() and not list(out.glob(".*.tmp"))


def test_kill_9_during_alignment_then_rerun_gives_the_same_aligned_weights_and_adapter(setup):
    from loram_core.lifecycle.pruned_folder import load_pruned_weights

    root, env, _ = setup
    extra = _align_flags(root)
    reference = root / "aligned-reference"
    _run(root, reference, env, extra).check_returncode()
    out = root / "killed-align"
    assert _kill_during("align", root, out, env, random.Random("align").uniform(0.5, 2.5), extra)
    again = _run(root, out, env, extra)
    assert again.returncode == 0, again.stderr[-2000:]
    want, got = load_pruned_weights(reference / "pruned"), load_pruned_weights(out / "pruned")
    assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want), "aligned weights differ"
    result, expected = _adapters(out), _adapters(reference)
    assert all(torch.equal(result[k], expected[k]) for k in expected), "adapter differs after a kill in align"
