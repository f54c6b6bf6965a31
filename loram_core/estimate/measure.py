"""Measure the training peak of one configuration on a random model, in a fresh process
(docs/architecture.md, "Measuring memory").

The ground truth the estimate is checked against: a random model from ``config.json`` (no weights needed),
optionally pruned by ``magnitude`` at ``ratio``, LoRA trained for a few steps through the real loop; the peak
is VmHWM minus the RSS after imports, with ``MALLOC_MMAP_THRESHOLD_=65536`` so freed tensors leave the RSS.

    python -m loram_core.estimate.measure CONFIG_JSON --ratio 0.5 --batch-size 2 --seq-len 64 --steps 3 \
        [--gradient-checkpointing] [--loss-chunk 128]
prints one JSON line: {"peak_mb": ..., "params": ...}.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path


def measure_in_subprocess(config_json: str | Path, *, ratio: float | None, batch_size: int, seq_len: int,
                          steps: int = 3, rank: int = 8, gradient_checkpointing: bool = False,
                          loss_chunk: int = 0) -> dict:
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "LORAM_LOAD_PLUGINS": ""}
    argv = [sys.executable, "-m", "loram_core.estimate.measure", str(config_json), "--batch-size", str(batch_size),
            "--seq-len", str(seq_len), "--steps", str(steps), "--rank", str(rank)]
    if ratio:
        argv += ["--ratio", str(ratio)]
    if gradient_checkpointing:
        argv.append("--gradient-checkpointing")
    if loss_chunk:
        argv += ["--loss-chunk", str(loss_chunk)]
    out = subprocess.run(argv, env=env, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("config")
    p.add_argument("--ratio", type=float, default=None)
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--seq-len", type=int, default=64)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--rank", type=int, default=8)
    p.add_argument("--gradient-checkpointing", action="store_true")
    p.add_argument("--loss-chunk", type=int, default=0)
    args = p.parse_args(argv)

    import gc

    import torch
    import transformers  # noqa: F401  (imports count in the baseline, as in a real run)
    import peft  # noqa: F401

    from loram_core import memory, plugins
    from loram_core.arch import adapter_for
    from loram_core.models.loading import config_from_file
    from loram_core.plan import ModelFingerprint
    from loram_core.plan.apply import apply_plan
    from loram_core.plan.fingerprint import count_parameters
    from loram_core.prune_context import PruneContext
    from loram_core.structured import StructuredConfig
    from loram_core.train.config import TrainConfig
    from loram_core.train.loop import train_lora

    torch.set_num_threads(1)
    baseline = memory.current_rss_mb()
    config = config_from_file(args.config)
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval()
    if args.ratio:
        plugins.load_plugins()
        from loram_core import registry

        pruner = registry.get("pruner", "magnitude")
        ctx = PruneContext(config, adapter_for(config), ModelFingerprint.from_config(config), progress=False)
        apply_plan(model, pruner.plan(model, StructuredConfig(ratio=args.ratio), ctx))
    gc.collect()
    params = count_parameters(model)  # before LoRA is attached in place
    tokens = torch.randint(0, config.vocab_size, (args.batch_size * args.seq_len * 8,))
    cfg = TrainConfig(steps=args.steps, batch_size=args.batch_size, seq_len=args.seq_len, rank=args.rank,
                      checkpoint_every=10**6, warmup_steps=0, gradient_checkpointing=args.gradient_checkpointing,
                      loss_chunk=args.loss_chunk)
    with tempfile.TemporaryDirectory() as tmp:
        result = train_lora(model, tokens, cfg, adapter_dir=Path(tmp) / "a", progress=False, rss_baseline_mb=baseline)
    print(json.dumps({"peak_mb": result.train_peak_rss_mb, "params": params}))


if __name__ == "__main__":
    _main()
