"""Peak memory and wall time of streamed SparseGPT pruning (``loram prune --pruner sparsegpt``).

    python benchmarks/prune_memory.py --model smollm2-135m --data shakespeare --pattern 2:4 --samples 128 --seq-len 512

The prune stage runs in its own process, started with ``MALLOC_MMAP_THRESHOLD_=65536`` so freed tensors go back to
the kernel. That process imports everything the stage uses, records its RSS (the baseline), resets VmHWM through
/proc/self/clear_refs, runs ``loram prune`` in-process and reports VmHWM; the peak is VmHWM minus the baseline
(docs/architecture.md, "Measuring memory"). Nothing here is computed, except the budget the peak is compared with:
half the model's fp32 size plus the calibration activations (samples x seq_len x hidden x 4 bytes), which is what
"one layer at a time" promises for a model whose layers dominate its size.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

# Runs in the measured process: imports, baseline, reset, prune, peak.
# A sampler thread reads VmRSS every 20 ms together with the innermost loram frame of the main thread, to say
# WHERE the resident set is highest; samples can miss a spike shorter than that, VmHWM cannot.
CHILD = r"""
import json, sys, threading, time
import torch, transformers, safetensors.torch, rich
from transformers.models.llama import modeling_llama  # noqa: F401  (imported by the model skeleton anyway)
from loram_core import memory, plugins, registry
from loram_core.cli.main import main
import loram_plugin_sparsegpt

out_json, argv = sys.argv[1], sys.argv[2:]
plugins.load_plugins()
if "sparsegpt" not in registry.collect("pruner"):  # not installed as an entry point: register the module
    plugins.pm.register(loram_plugin_sparsegpt, name="sparsegpt")
main_id, where, done = threading.get_ident(), {}, threading.Event()

def location():
    frame, found = sys._current_frames().get(main_id), None
    while frame is not None and found is None:
        name = frame.f_code.co_filename
        if "loram_core" in name or "loram_plugin" in name:
            found = name.rsplit("/", 2)[-2] + "/" + name.rsplit("/", 1)[-1] + ":" + frame.f_code.co_name
        frame = frame.f_back
    return found or "other"

def sample():
    while not done.wait(0.02):
        rss, loc = memory.current_rss_mb(), location()
        if rss is not None and rss > where.get(loc, 0.0):
            where[loc] = rss

baseline = memory.current_rss_mb()
reset = memory.reset_peak_rss()
sampler = threading.Thread(target=sample, daemon=True)
sampler.start()
start = time.perf_counter()
code = main(argv)
wall = time.perf_counter() - start
done.set()
sampler.join()
json.dump({"code": code, "baseline_mb": baseline, "peak_mb": memory.peak_rss_mb(), "reset": reset,
           "wall_s": wall, "threads": torch.get_num_threads(), "where": where}, open(out_json, "w"))
"""


def model_facts(model: str) -> dict:
    """Parameter count and hidden size from the config alone (no weights loaded here)."""
    from loram_core.models.loading import load_config, resolve_model
    from loram_core.plan.fingerprint import count_parameters, meta_model

    config = load_config(str(resolve_model(model)))
    return {"params": count_parameters(meta_model(config)), "hidden": config.hidden_size,
            "layers": config.num_hidden_layers}


def measure(args, work: Path, run_dir: Path) -> dict:
    result_file = work / "result.json"
    argv = ["prune", str(run_dir), "--model", args.model, "--data", args.data, "--pruner", "sparsegpt",
            "--ratio", str(args.ratio), "--pruner-opt", f"pattern={args.pattern}", "--pruner-opt", f"samples={args.samples}",
            "--pruner-opt", f"seq_len={args.seq_len}", "--no-progress", "--json"]
    if args.layers:
        argv += ["--layers", args.layers]
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    done = subprocess.run([sys.executable, "-c", CHILD, str(result_file), *argv], env=env, capture_output=True, text=True)
    if done.returncode != 0 or not result_file.is_file():
        sys.stderr.write(done.stderr[-4000:])
        raise SystemExit(f"the prune process failed ({done.returncode})")
    result = json.loads(result_file.read_text())
    if result["code"] != 0:
        sys.stderr.write(done.stderr[-4000:])
        raise SystemExit(f"loram prune exited {result['code']}")
    record = json.loads((run_dir / "stages" / "prune.json").read_text())
    return {**result, "record": record}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--data", default="shakespeare")
    p.add_argument("--pattern", default="2:4")
    p.add_argument("--ratio", type=float, default=0.5)
    p.add_argument("--samples", type=int, default=128)
    p.add_argument("--seq-len", type=int, default=512)
    p.add_argument("--layers", default=None, metavar="START:END", help="default: every decoder layer")
    p.add_argument("--keep", default=None, metavar="RUN_DIR",
                   help="prune into RUN_DIR and keep it (e.g. to continue with 'loram run --out RUN_DIR' and the "
                        "same flags, which then skips the prune stage); default: a temporary folder")
    p.add_argument("--top", type=int, default=12, help="rows of the 'where' table")
    p.add_argument("--json", action="store_true", help="also print the measurements as JSON")
    args = p.parse_args(argv)

    if args.keep and (Path(args.keep) / "stages" / "prune.json").exists():
        raise SystemExit(f"{args.keep} already has a prune stage, which loram prune would skip; choose a new folder")
    facts = model_facts(args.model)
    with tempfile.TemporaryDirectory() as tmp:
        m = measure(args, Path(tmp), Path(args.keep) if args.keep else Path(tmp) / "run")
    mb = 2**20
    fp32_mb = facts["params"] * 4 / mb
    acts_mb = args.samples * args.seq_len * facts["hidden"] * 4 / mb
    budget_mb = fp32_mb / 2 + acts_mb
    peak_mb = m["peak_mb"] - m["baseline_mb"]
    rows = [
        ("model", f"{args.model} ({facts['params']:,} params, {facts['layers']} layers, hidden {facts['hidden']})"),
        ("pruning", f"sparsegpt {args.pattern}, layers {args.layers or 'all'}, "
                    f"{args.samples} x {args.seq_len} calibration tokens"),
        ("wall time of loram prune (s)", f"{m['wall_s']:.1f}"),
        ("torch threads", str(m["threads"])),
        ("RSS after imports (MB, baseline)", f"{m['baseline_mb']:.0f}"),
        ("VmHWM (MB)", f"{m['peak_mb']:.0f}"),
        ("peak above baseline (MB)", f"{peak_mb:.0f}"),
        ("model fp32 size (MB)", f"{fp32_mb:.0f}"),
        ("calibration activations (MB)", f"{acts_mb:.0f}"),
        ("budget: fp32 / 2 + activations (MB)", f"{budget_mb:.0f}"),
        ("peak < budget", "yes" if peak_mb < budget_mb else "NO"),
        ("VmHWM reset accepted", "yes" if m["reset"] else "no (peak includes the imports)"),
    ]
    table = Table(title="streamed SparseGPT pruning: peak memory (VmHWM after reset - RSS after imports)")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    for name, value in rows:
        table.add_row(name, value)
    console = Console()
    console.print(table)
    where = Table(title="where: highest sampled RSS above the baseline, by innermost loram function (every 20 ms)")
    where.add_column("function")
    where.add_column("MB above baseline", justify="right")
    for loc, rss in sorted(m["where"].items(), key=lambda kv: -kv[1])[: args.top]:
        where.add_row(loc, f"{rss - m['baseline_mb']:.0f}")
    console.print(where)
    if args.json:
        print(json.dumps({"wall_s": m["wall_s"], "baseline_mb": m["baseline_mb"], "vmhwm_mb": m["peak_mb"],
                          "peak_above_baseline_mb": peak_mb, "fp32_mb": fp32_mb, "activations_mb": acts_mb,
                          "budget_mb": budget_mb, "within_budget": peak_mb < budget_mb}, indent=2))
    return 0 if peak_mb < budget_mb else 1


if __name__ == "__main__":
    sys.exit(main())
