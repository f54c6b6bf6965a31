"""Every stage of QLoRAM under a memory limit below the model's own fp32 size, each in a child process, ends with
the same adapter and the same merged weights as the same run without a limit (docs/scaling.md, "Larger than
memory").

The limit is on the address space (``RLIMIT_AS``), set after the child's imports to what they use plus a margin
smaller than the model: loading the model whole in that child fails, so a stage that finishes streamed it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from loram_core.checkpoint import load_weights
from loram_core.testing.sharded import sharded_llama_config, write_sharded_llama

MB = 2**20
STAGES = ("prune", "train", "recover", "merge", "eval")

CHILD = r"""
import json, resource, sys
import torch, transformers, safetensors.torch, rich, accelerate, peft, bitsandbytes  # what the stages import
from transformers.models.llama import modeling_llama  # noqa: F401
import loram_plugin_bnb
from loram_core import plugins, registry
from loram_core.cli.main import main
from loram_core.models.loading import load_model

def vm(key):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key + ":"))

plugins.load_plugins()
if "nf4" not in registry.collect("quantizer"):  # an environment without the plugin's entry point
    plugins.pm.register(loram_plugin_bnb, name="bnb")
out, margin, model, stage, argv = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], json.loads(sys.argv[5])
result = {"limit": vm("VmSize") + margin if margin >= 0 else None}  # margin -1: the reference, no limit
if result["limit"] is not None:
    resource.setrlimit(resource.RLIMIT_AS, (result["limit"], result["limit"]))
result["code"] = main([stage, *argv])
result["peak"] = vm("VmPeak")
if stage == "eval" and result["limit"] is not None:  # the proof the limit binds: the model itself does not load under it
    try:
        load_model(model)
        result["load"] = "loaded"
    except (MemoryError, RuntimeError) as exc:
        result["load"] = type(exc).__name__
json.dump(result, open(out, "w"))
"""


def _flags(model, data):
    return ["--model", str(model), "--data", str(data), "--pruner", "random", "--ratio", "0.65", "--layers", "1:29",
            "--quantizer", "nf4", "--gradient-checkpointing", "--steps", "4", "--batch-size", "2", "--seq-len", "32",
            "--eval-seq-len", "32", "--eval-tokens", "256", "--stream-eval", "on", "--no-progress", "--seed", "0"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS and /proc/self/status are Linux's")
def test_each_stage_under_a_limit_below_the_model_gives_the_unlimited_runs_weights(tmp_path, bnb):
    # 30 layers, hidden 512: 118M parameters, 450 MiB in fp32, in 50 MiB shards
    config = sharded_llama_config(layers=30, hidden=512, intermediate=2048, heads=8, kv_heads=4)
    model = write_sharded_llama(tmp_path / "model", config, shard_bytes=50 * MB, scaled=True)
    model_bytes = sum(p.stat().st_size for p in model.glob("model-*.safetensors"))
    margin = 250 * MB
    assert model_bytes > margin + 150 * MB
    data = tmp_path / "data.txt"
    data.write_text("\n\n".join(f"the king said to the queen of the sea, {i} times, and the sea said nothing."
                                for i in range(400)))
    flags = _flags(model, data)

    # The same commands in the same environment (one thread: bitwise repeatable), once without a limit
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MALLOC_ARENA_MAX": "1", "MALLOC_MMAP_THRESHOLD_": "65536",
           "TOKENIZERS_PARALLELISM": "false", "CUDA_VISIBLE_DEVICES": ""}
    free, limited = tmp_path / "free", tmp_path / "limited"
    results = {}
    for run, limit in ((free, -1), (limited, margin)):
        for stage in STAGES:
            out = tmp_path / f"{run.name}-{stage}.json"
            done = subprocess.run([sys.executable, "-c", CHILD, str(out), str(limit), str(model), stage,
                                   json.dumps([str(run), *flags, "--no-preflight"])],
                                  env=env, capture_output=True, text=True, timeout=600)
            assert done.returncode == 0 and out.is_file(), (stage, done.stderr[-3000:])
            results[run.name, stage] = json.loads(out.read_text())
            assert results[run.name, stage]["code"] == 0, (stage, done.stderr[-3000:])
    assert all(results["limited", stage]["peak"] <= results["limited", stage]["limit"] for stage in STAGES)
    assert results["limited", "eval"]["load"] != "loaded"  # the limit is below what the model needs whole

    for folder in ("adapter-pruned", "adapter"):
        a, b = (load_file(run / folder / "adapter_model.safetensors") for run in (free, limited))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), folder
    a, b = load_weights(free / "merged"), load_weights(limited / "merged")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    free_eval = json.loads((free / "stages" / "eval.json").read_text())
    limited_eval = json.loads((limited / "stages" / "eval.json").read_text())
    assert free_eval["ppl"] == limited_eval["ppl"]
