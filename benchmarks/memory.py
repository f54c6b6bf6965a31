"""Measured training memory and speed: LoRA, LoRAM, QLoRA and QLoRAM on the same model, batch and steps.

    python benchmarks/memory.py --model smollm2-135m --data shakespeare --pruner magnitude --ratio 0.5 --steps 10

The prune stage runs once per plan (``none`` for the full original, ``--pruner`` for LoRAM) into WORK/prep-*; each
configuration then gets its own run directory (hard links to the prepared plan and weights) and its train stage
runs as ``loram train RUN_DIR`` in its own process, started with ``MALLOC_MMAP_THRESHOLD_=65536`` so freed tensors
go back to the kernel. The peak is measured as docs/architecture.md ("Measuring memory") says and ``loram train``
records it: VmHWM (reset through /proc/self/clear_refs once the model is loaded and quantized) minus the RSS before
the model was loaded, i.e. the resident model plus everything training adds. Nothing here is computed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

# (label, what it is, plan, quantized?)
CONFIGS = (
    ("LoRA", "LoRA on the full original", "none", False),
    ("LoRAM", "LoRA on the pruned model", "pruned", False),
    ("QLoRA", "LoRA on the full original in 4-bit", "none", True),
    ("QLoRAM", "LoRA on the pruned model in 4-bit", "pruned", True),
)


def loram(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "loram_core.cli.main", *args]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-4000:])
        raise SystemExit(f"failed ({done.returncode}): {' '.join(cmd)}")
    return done


def prepare(work: Path, name: str, args, pruner: str) -> Path:
    """The prune stage for one plan; ``loram prune`` skips it when an earlier benchmark left it in place."""
    folder = work / f"prep-{name}"
    flags = ["--model", args.model, "--data", args.data, "--pruner", pruner, "--seq-len", str(args.seq_len)]
    if pruner != "none":
        flags += ["--ratio", str(args.ratio)]
    loram("prune", str(folder), *flags, "--no-progress", "--json")
    return folder


def fresh_run_dir(prep: Path, folder: Path) -> Path:
    """A new run directory sharing the prepared plan and weights (hard links: nothing is rewritten in place)."""
    if folder.exists():
        shutil.rmtree(folder)
    shutil.copytree(prep, folder, copy_function=os.link,
                    ignore=shutil.ignore_patterns("adapter*", "checkpoints", "merged", "train.json", "eval.json",
                                                  "recover.json", "report.json"))
    return folder


def train_in_own_process(folder: Path, args, quantized: bool) -> dict:
    flags = ["--steps", str(args.steps), "--batch-size", str(args.batch_size), "--seq-len", str(args.seq_len),
             "--checkpoint-every", str(args.steps + 1), "--no-progress", "--json"]  # no checkpoint I/O in the timing
    if quantized:
        flags += ["--quantizer", args.quantizer]
    if args.gradient_checkpointing:
        flags += ["--gradient-checkpointing"]
    if args.loss_chunk:
        flags += ["--loss-chunk", str(args.loss_chunk)]
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    t0 = time.perf_counter()
    loram("train", str(folder), *flags, env=env)
    wall = time.perf_counter() - t0
    report = json.loads((folder / "report.json").read_text())
    # tokens/s depends on what else the machine runs; the 1-minute load average says how busy it was
    return {"wall_s": wall, "report": report, "load_avg_1m": os.getloadavg()[0]}


def row(label: str, what: str, result: dict) -> dict:
    r = result["report"]
    return {
        "config": label,
        "what": what,
        "params": r["params"]["pruned"],
        "reduction_ratio": r["params"]["reduction_ratio"],
        "param_bytes_train": r["memory"]["param_bytes_train"],
        "train_peak_rss_mb": r["memory"]["train_peak_rss_mb"],
        "tokens_per_s": r["train"]["tokens_per_s"],
        "loss_first": r["train"]["loss_first"],
        "loss_last": r["train"]["loss_last"],
        "process_wall_s": result["wall_s"],
        "load_avg_1m": result["load_avg_1m"],
    }


def print_table(rows: list[dict], args, console: Console) -> None:
    base = rows[0]
    table = Table(title=f"training memory on {args.model}: batch {args.batch_size} x {args.seq_len} tokens, "
                        f"{args.steps} steps, {args.pruner} ratio {args.ratio}, quantizer {args.quantizer}, "
                        f"{args.threads or os.environ.get('OMP_NUM_THREADS', 'default')} thread(s)"
                        + (", gradient checkpointing" if args.gradient_checkpointing else "")
                        + (f", loss in chunks of {args.loss_chunk} tokens" if args.loss_chunk else ""))
    table.caption = "; ".join(f"{label}: {what}" for label, what, _, _ in CONFIGS) + \
        ". reduction: original / pruned, a 4-bit parameter counted as a quarter (the paper's formula). " \
        f"load 1m: the machine's 1-minute load average after the run ({os.cpu_count()} CPUs)"
    for name, justify in (("config", "left"), ("reduction", "right"), ("param bytes", "right"),
                          ("vs LoRA", "right"), ("train peak MB", "right"), ("vs LoRA", "right"),
                          ("tokens/s", "right"), ("vs LoRA", "right"), ("load 1m", "right")):
        table.add_column(name, justify=justify)

    def ratio(key, r):
        return f"{r[key] / base[key]:.2f}" if r[key] is not None and base[key] else "—"

    for r in rows:
        peak = "—" if r["train_peak_rss_mb"] is None else f"{r['train_peak_rss_mb']:,.0f}"
        table.add_row(r["config"], f"{r['reduction_ratio']:.2f}x", f"{r['param_bytes_train']:,}",
                      ratio("param_bytes_train", r), peak, ratio("train_peak_rss_mb", r),
                      f"{r['tokens_per_s']:,.0f}", ratio("tokens_per_s", r), f"{r['load_avg_1m']:.1f}")
    console.print(table)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--data", default="shakespeare")
    p.add_argument("--pruner", default="magnitude", help="pruner of the LoRAM rows (default magnitude)")
    p.add_argument("--ratio", type=float, default=0.5)
    p.add_argument("--quantizer", default="nf4", help="quantizer of the QLoRA rows (default nf4)")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--gradient-checkpointing", action="store_true", help="every run recomputes layers in backward")
    p.add_argument("--loss-chunk", type=int, default=0, metavar="TOKENS", help="every run computes the loss in chunks")
    p.add_argument("--threads", type=int, default=None,
                   help="OMP_NUM_THREADS of the training processes (on a shared machine, 1 keeps tokens/s steady)")
    p.add_argument("--work", type=Path, default=Path("runs/bench-memory"), help="run directories (kept)")
    p.add_argument("--json", type=Path, metavar="OUT", help="also write the rows as JSON")
    args = p.parse_args(argv)
    console = Console(stderr=True)

    args.work.mkdir(parents=True, exist_ok=True)
    console.log("prune stage: the full original (pruner none) and the pruned model")
    preps = {"none": prepare(args.work, "none", args, "none"),
             "pruned": prepare(args.work, f"{args.pruner}-{args.ratio}", args, args.pruner)}
    rows = []
    for label, what, plan, quantized in CONFIGS:
        console.log(f"train {label} ({what}) in its own process")
        folder = fresh_run_dir(preps[plan], args.work / label.lower())
        rows.append(row(label, what, train_in_own_process(folder, args, quantized)))
    print_table(rows, args, Console())
    if args.json:
        args.json.write_text(json.dumps({"settings": {k: str(v) if isinstance(v, Path) else v
                                                      for k, v in vars(args).items()}, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
