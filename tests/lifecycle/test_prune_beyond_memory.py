"""The built-in pruners stream: plans equal the in-memory ones, and a model larger than a memory limit prunes.

The limit is on the address space (``RLIMIT_AS``) of a child process, set after its imports to what they
use plus a margin that is less than half the model's fp32 size: ``loram prune --pruner magnitude`` must
finish under it, and loading the whole model in the same process must fail.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from loram_core import plugins, registry
from loram_core.arch import adapter_for
from loram_core.checkpoint import load_weights
from loram_core.lifecycle.prune import pruner_config
from loram_core.lifecycle.settings import make_settings
from loram_core.models.loading import load_config, load_model
from loram_core.plan import ModelFingerprint
from loram_core.plan.apply import empty_model
from loram_core.structured import PruneContext
from loram_core.testing.sharded import sharded_llama_config, write_sharded_llama
from loram_core.testing.tiny import save_tiny_model

MB = 2**20


def _plan(name: str, path: Path, streamed: bool, ratio: float = 0.5):
    plugins.load_plugins()
    pruner = registry.get("pruner", name)
    config = load_config(path)
    model = empty_model(config) if streamed else load_model(path)
    context = PruneContext(model_config=config, arch=adapter_for(config), seed=3, progress=False, model_path=str(path),
                           fingerprint=ModelFingerprint.from_config(config, name_or_path=str(path)))
    cfg = pruner_config(pruner, make_settings({"pruner": name, "ratio": ratio, "layers": "1:7"}))
    return pruner.plan(model, cfg, context)


@pytest.mark.parametrize("name", ["magnitude", "random"])
@pytest.mark.parametrize("family", [dict(gqa=True), dict(gqa=False), dict(model_type="qwen2"),
                                    dict(model_type="qwen3", head_dim=16),
                                    dict(model_type="gemma3_text", head_dim=16, sliding_window=8)])
def test_streamed_plan_equals_the_in_memory_plan(name, family, tmp_path):
    plugins.load_plugins()
    assert registry.get("pruner", name).streaming is True
    path = save_tiny_model(tmp_path / "model", seed=5, **family)
    streamed, in_memory = _plan(name, path, streamed=True), _plan(name, path, streamed=False)
    assert streamed.entries and streamed.equals(in_memory)


def test_sharded_test_model_loads_as_a_stock_model(tmp_path):
    config = sharded_llama_config(layers=3, hidden=64, intermediate=128, heads=4, kv_heads=2)
    path = write_sharded_llama(tmp_path / "m", config, shard_bytes=100_000)
    assert len(list(path.glob("model-*.safetensors"))) > 3
    model = load_model(path)
    state = load_weights(path)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())
    assert torch.equal(model.model.norm.weight, torch.ones(64))


# Runs in the limited process: imports, then the limit, then `loram prune`, then the whole-model load.
CHILD = r"""
import json, resource, sys, traceback
import torch, transformers, safetensors.torch, rich, accelerate, peft  # everything the prune stage imports
from transformers.models.llama import modeling_llama  # noqa: F401
from loram_core.cli.main import main
from loram_core.models.loading import load_model
from loram_core import plugins

def vm(key):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key + ":"))

plugins.load_plugins()
out, margin, model, data, run = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
result = {"imports": vm("VmSize"), "limit": vm("VmSize") + margin}
resource.setrlimit(resource.RLIMIT_AS, (result["limit"], result["limit"]))
result["prune_code"] = main(["prune", run, "--model", model, "--data", data, "--pruner", "magnitude", "--no-progress"])
result["peak_after_prune"] = vm("VmPeak")
try:
    load_model(model)
    result["load"] = "loaded"
except (MemoryError, RuntimeError) as exc:  # torch reports a failed allocation or mmap as RuntimeError
    result["load"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
json.dump(result, open(out, "w"))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS and /proc/self/status are Linux's")
def test_prune_of_a_model_larger_than_the_memory_limit(tmp_path):
    # 30 layers, hidden 512: 118M parameters, 450 MiB in fp32, in 50 MiB shards, written without the whole
    # model ever being in memory.
    config = sharded_llama_config(layers=30, hidden=512, intermediate=2048, heads=8, kv_heads=4)
    model = write_sharded_llama(tmp_path / "model", config, shard_bytes=50 * MB)
    model_bytes = sum(p.stat().st_size for p in model.glob("model-*.safetensors"))
    margin = 200 * MB
    assert model_bytes > 2 * margin
    data = tmp_path / "data.txt"
    data.write_text("\n\n".join("the king said to the queen of the sea, and the sea said nothing." for _ in range(200)))
    # One arena and mmap'd large allocations, as for every memory measurement here (docs/architecture.md,
    # "Measuring memory"): glibc would otherwise keep freed tensors in its heap and grow the address space with them.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MALLOC_ARENA_MAX": "1", "MALLOC_MMAP_THRESHOLD_": "65536",
           "TOKENIZERS_PARALLELISM": "false", "CUDA_VISIBLE_DEVICES": ""}
    out, run = tmp_path / "result.json", tmp_path / "run"
    done = subprocess.run([sys.executable, "-c", CHILD, str(out), str(margin), str(model), str(data), str(run)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and out.is_file(), done.stderr[-3000:]
    result = json.loads(out.read_text())
    # The streamed prune finished under the limit...
    assert result["prune_code"] == 0, done.stderr[-3000:]
    assert result["peak_after_prune"] <= result["limit"]
    record = json.loads((run / "stages" / "prune.json").read_text())
    assert record["streamed"] is True and record["params_pruned"] < record["params_original"]
    assert record["param_bytes_original"] == model_bytes - _header_bytes(model)
    # ...which the whole model does not fit under.
    assert result["load"] != "loaded" and "allocate memory" in result["load"], result["load"]


def _header_bytes(folder: Path) -> int:
    """The safetensors headers' bytes (8-byte length + JSON) of a folder's shards."""
    total = 0
    for shard in folder.glob("model-*.safetensors"):
        with open(shard, "rb") as f:
            total += 8 + int.from_bytes(f.read(8), "little")
    return total
