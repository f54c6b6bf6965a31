"""Peak memory and wall time of ``loram prune`` for a built-in pruner, streamed vs the whole model in memory.

    python benchmarks/streaming_prune.py --model smollm2-135m --pruner magnitude --ratio 0.5

Each configuration runs in its own process started with ``MALLOC_MMAP_THRESHOLD_=65536``; the process imports
everything the stage uses, records its RSS (the baseline), resets VmHWM through /proc/self/clear_refs, runs
``loram prune`` in-process and reports VmHWM; peak = VmHWM - baseline (docs/architecture.md, "Measuring
memory"). The in-memory row registers the same pruner with ``streaming = False`` under another name, so the prune
stage loads the whole original first, as it did before the built-in pruners streamed. The two plans must be equal.
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

CHILD = r"""
import json, sys, time
import attrs, torch, transformers, safetensors.torch, rich, accelerate, peft  # noqa: F401
from transformers.models.llama import modeling_llama  # noqa: F401
from loram_core import hookimpl, memory, plugins, registry
from loram_core.cli.main import main

out_json, pruner, streaming, argv = sys.argv[1], sys.argv[2], sys.argv[3] == "1", sys.argv[4:]
plugins.load_plugins()
name = pruner
if not streaming:  # the same strategy, handed the whole original model
    name = pruner + "-in-memory"
    class InMemory:
        @hookimpl
        def register_pruners(self, register):
            register(attrs.evolve(registry.get("pruner", pruner), name=name, streaming=False))
    plugins.pm.register(InMemory(), name="InMemory")
baseline = memory.current_rss_mb()
reset = memory.reset_peak_rss()
start = time.perf_counter()
code = main([*argv, "--pruner", name])
wall = time.perf_counter() - start
json.dump({"code": code, "baseline_mb": baseline, "peak_mb": memory.peak_rss_mb(), "reset": reset, "wall_s": wall},
          open(out_json, "w"))
"""


def measure(args, work: Path, streaming: bool) -> dict:
    run_dir = work / ("streamed" if streaming else "in-memory")
    result_file = work / f"{run_dir.name}.json"
    argv = ["prune", str(run_dir), "--model", args.model, "--data", args.data, "--ratio", str(args.ratio),
            "--no-progress"]
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    done = subprocess.run([sys.executable, "-c", CHILD, str(result_file), args.pruner, "1" if streaming else "0", *argv],
                          env=env, capture_output=True, text=True)
    if done.returncode != 0 or not result_file.is_file():
        sys.stderr.write(done.stderr[-4000:])
        raise SystemExit(f"the prune process failed ({done.returncode})")
    result = json.loads(result_file.read_text())
    if result["code"] != 0:
        sys.stderr.write(done.stderr[-4000:])
        raise SystemExit(f"loram prune exited {result['code']}")
    return {**result, "run_dir": run_dir}


def main(argv: list[str] | None = None) -> int:
    from loram_core.plan.serialize import load_plan

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--data", default="shakespeare")
    p.add_argument("--pruner", default="magnitude", choices=("magnitude", "random"))
    p.add_argument("--ratio", type=float, default=0.5)
    p.add_argument("--json", action="store_true", help="also print the measurements as JSON")
    args = p.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        rows = {mode: measure(args, Path(tmp), mode == "streamed") for mode in ("streamed", "in-memory")}
        plans = {mode: load_plan(r["run_dir"] / "plan") for mode, r in rows.items()}
        record = json.loads((rows["streamed"]["run_dir"] / "stages" / "prune.json").read_text())
    # the in-memory plan carries the wrapper's name; compare the decisions
    same = plans["streamed"].entries.keys() == plans["in-memory"].entries.keys() and all(
        e.equals(plans["in-memory"].entries[k]) for k, e in plans["streamed"].entries.items())
    table = Table(title=f"loram prune --pruner {args.pruner} --ratio {args.ratio} on {args.model}: "
                        f"{record['params_original']:,} params, {record['param_bytes_original'] / 2**20:.0f} MB fp32")
    for col in ("mode", "wall (s)", "RSS after imports (MB)", "VmHWM (MB)", "peak above baseline (MB)"):
        table.add_column(col, justify="right" if col != "mode" else "left")
    for mode, r in rows.items():
        table.add_row(mode, f"{r['wall_s']:.1f}", f"{r['baseline_mb']:.0f}", f"{r['peak_mb']:.0f}",
                      f"{r['peak_mb'] - r['baseline_mb']:.0f}")
    Console().print(table)
    Console().print(f"plans equal: {'yes' if same else 'NO'}; VmHWM reset accepted: "
                    f"{'yes' if all(r['reset'] for r in rows.values()) else 'no'}")
    if args.json:
        print(json.dumps({m: {k: v for k, v in r.items() if k != "run_dir"} for m, r in rows.items()} | {"plans_equal": same},
                         indent=2))
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
