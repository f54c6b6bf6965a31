"""Train large on a machine smaller than the model: the whole lifecycle of a LLaMA-2-13B-shaped model, stage by stage,
with QLoRA on the original measured side by side.

    python benchmarks/train_large.py --work /tmp/large                 # 13.19B parameters, 26.4 GB in bf16
    python benchmarks/train_large.py --work /tmp/large-4 --layers 4    # the same width, 4 decoder layers
    python benchmarks/train_large.py --work /tmp/large --quantize-head # lm_head in NF4 too, on both sides

1. The checkpoint: ``python -m loram_core.testing.sharded`` writes seeded, scaled bf16 weights shard by shard (reused
   when WORK/model is whole).
2. QLoRAM: ``loram run --pruner random --ratio 0.65 --quantizer nf4 --gradient-checkpointing --stream-eval on`` in
   its own process; each stage's wall time, measured peak RSS (above the stage's start) and the estimate recorded
   beside it come from its ``report.json``, the bytes on disk from its folders.
3. QLoRA: the answer a user would pick instead, transformers' ``BitsAndBytesConfig`` (NF4, double quantization)
   loading the original and loram's training loop on it, the unquantized modules and the compute in ``--dtype``
   on both sides (bf16, the checkpoint's dtype and QLoRA's recipe, by default), with the same tokens, steps and savers, in a process of
   its own; its peaks are measured the same way (VmHWM above the RSS before the model is loaded), for loading and
   for the training loop apart (the loop resets VmHWM once the model is loaded, as loram's train stage does;
   loram's train stage row covers load, quantization and loop, its "train loop" row the loop).
   WORK/qlora-VARIANT.json keeps the baseline's measurements; delete it to measure again.

Both processes run with ``MALLOC_MMAP_THRESHOLD_=65536 MALLOC_ARENA_MAX=1`` so freed tensors go back to the kernel.
Nothing is computed: every number in the table was measured or recorded by the run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

ENV = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_ARENA_MAX": "1"}
TORCH_DTYPES = {"bf16": "bfloat16", "fp32": "float32"}
FOLDERS = {"prune": ("pruned", "plan"), "train": ("adapter-pruned",), "recover": ("adapter",), "merge": ("merged",)}


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.exists() else 0


def generate(model: Path, args) -> float | None:
    if (model / "model.safetensors.index.json").is_file() and (model / "tokenizer.json").is_file():
        return None
    cmd = [sys.executable, "-m", "loram_core.testing.sharded", str(model), "--dtype", "bf16"]
    if args.layers:
        cmd += ["--layers", str(args.layers)]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=ENV, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def variant(args) -> str:
    return args.dtype + ("-head4" if args.quantize_head else "")


def train_flags(args) -> list[str]:
    return ["--data", args.data, "--steps", str(args.steps), "--batch-size", "1", "--seq-len", str(args.seq_len),
            "--gradient-checkpointing", "--checkpoint-every", str(args.steps + 1), "--seed", "0"]


def run_qloram(model: Path, out: Path, args) -> dict:
    cmd = [sys.executable, "-m", "loram_core.cli.main", "run", "--model", str(model), "--pruner", args.pruner,
           "--ratio", str(args.ratio), "--quantizer", "nf4", "--dtype", args.dtype,
           "--quantizer-opt", f"compute_dtype={TORCH_DTYPES[args.dtype]}",
           *(["--quantizer-opt", "skip_modules="] if args.quantize_head else []), *train_flags(args),
           *(["--no-merge"] if args.no_merge else []), "--eval-tokens", str(args.eval_tokens),
           "--eval-seq-len", str(args.seq_len), "--stream-eval", "on", "--no-progress", "--json", "--out", str(out)]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=ENV, capture_output=True, text=True)
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-4000:])
        raise SystemExit(f"loram run failed ({done.returncode})")
    report = json.loads((out / "report.json").read_text())
    report["process_wall_s"] = time.perf_counter() - t0
    return report


def qlora_child(model: str, args) -> None:
    """In its own process: transformers' NF4 loader on the original, then loram's loop; prints one JSON line."""
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    from loram_core import memory
    from loram_core.lifecycle.resources import Resources
    from loram_core.lifecycle.settings import make_settings
    from loram_core.train import train_lora

    import accelerate  # noqa: F401  (imported before the baseline, as the train stage does)
    import peft  # noqa: F401

    settings = make_settings({"model": model, "data": args.data, "steps": args.steps, "batch_size": 1,
                              "seq_len": args.seq_len, "gradient_checkpointing": True,
                              "checkpoint_every": args.steps + 1, "seed": 0})
    res = Resources(settings, progress=False)
    tokens = res.train_data  # the same tokens QLoRAM trains on
    memory.release_freed_memory()
    baseline, anon_baseline = memory.current_rss_mb(), memory.current_anon_mb()
    load_anon = memory.AnonPeak().__enter__()
    t0 = time.perf_counter()
    dtype = getattr(torch, TORCH_DTYPES[args.dtype])
    quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                               bnb_4bit_compute_dtype=dtype, llm_int8_skip_modules=[] if args.quantize_head else None)
    base = AutoModelForCausalLM.from_pretrained(model, quantization_config=quant, device_map="cpu", dtype=dtype)
    # In the checkpoint's dtype transformers keeps the unquantized tensors as views of the mapped shards, and every
    # shard page its loader touched stays in RSS with them; loram holds its own copies. Copy them here too, so
    # both sides hold the same anonymous memory and the loop's peak compares like with like.
    for param in base.parameters():
        if type(param).__name__ != "Params4bit":
            param.data = param.data.clone()
    memory.release_freed_memory()
    from loram_plugin_bnb.accounting import held_param_bytes

    base_bytes = held_param_bytes(base)  # packed weights with their quantization state, and the rest
    load_s = time.perf_counter() - t0
    load_peak = memory.peak_rss_mb() - baseline  # VmHWM: with the pages of the shards it maps while reading
    load_anon.__exit__(None, None, None)
    t1 = time.perf_counter()
    with memory.AnonPeak() as loop_anon:
        result = train_lora(base, tokens, settings.train_config(), adapter_dir=Path(args.child_out), progress=False,
                            rss_baseline_mb=baseline)
    print(json.dumps({"load_s": load_s, "train_s": time.perf_counter() - t1, "load_peak_rss_mb": load_peak,
                      "peak_rss_mb": memory.peak_rss_mb() - baseline,
                      "load_peak_anon_mb": load_anon.peak_mb, "param_bytes_base": base_bytes,
                      "param_bytes_train": held_param_bytes(base),  # the adapter added
                      "train_peak_anon_mb": loop_anon.peak_mb + loop_anon.baseline - anon_baseline, "tokens_per_s": result.report()["tokens_per_s"],
                      "train_peak_rss_mb": result.train_peak_rss_mb, "losses": list(result.losses)}))


def run_qlora(model: Path, work: Path, args) -> dict:
    cached = work / f"qlora-{variant(args)}.json"  # the baseline's measurements, kept: the slower half of the benchmark
    if cached.is_file():
        return json.loads(cached.read_text())
    cmd = [sys.executable, __file__, "--qlora-child", str(model), "--child-out", str(work / "qlora-adapter"),
           "--data", args.data, "--steps", str(args.steps), "--seq-len", str(args.seq_len), "--dtype", args.dtype,
           *(["--quantize-head"] if args.quantize_head else [])]
    done = subprocess.run(cmd, env=ENV, capture_output=True, text=True)
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-4000:])
        raise SystemExit(f"QLoRA baseline failed ({done.returncode})")
    cached.write_text(done.stdout.strip().splitlines()[-1])
    return json.loads(cached.read_text())


def rows(report: dict, out: Path, model_bytes: int, qlora: dict) -> list[dict]:
    stages = report["memory"]["stages"]
    table = []
    for name, m in stages.items():
        table.append({"config": "QLoRAM", "stage": name, "seconds": m.get("seconds"), "peak_rss_mb": m["peak_rss_mb"],
                      "peak_anon_mb": m.get("peak_anon_mb"),
                      "estimate_mb": m.get("estimate_mb"),
                      "disk_bytes": sum(folder_bytes(out / f) for f in FOLDERS.get(name, ())),
                      "peak_of_model": m["peak_rss_mb"] * 2**20 / model_bytes,
                      "tokens_per_s": report["train"]["tokens_per_s"] if name == "train" else None})
    # the loop alone: VmHWM reset once the model is loaded (the train stage's train_peak_rss_mb, above the RSS
    # before loading), the same for both
    loop = report["memory"]["train_peak_rss_mb"]
    table.insert(2, {"config": "QLoRAM", "stage": "  train loop", "seconds": None, "peak_rss_mb": loop,
                     "peak_anon_mb": None,
                     "estimate_mb": None, "disk_bytes": None, "peak_of_model": loop * 2**20 / model_bytes,
                     "tokens_per_s": None})
    for stage, seconds, peak, anon, speed in (
            ("load (transformers NF4)", qlora["load_s"], qlora["load_peak_rss_mb"], qlora.get("load_peak_anon_mb"), None),
            ("  train loop", qlora["train_s"], qlora["train_peak_rss_mb"], qlora.get("train_peak_anon_mb"),
             qlora["tokens_per_s"])):
        table.append({"config": "QLoRA", "stage": stage, "seconds": seconds, "peak_rss_mb": peak, "peak_anon_mb": anon,
                      "estimate_mb": None,
                      "disk_bytes": None, "peak_of_model": peak * 2**20 / model_bytes, "tokens_per_s": speed})
    return table


def _f(value, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def print_table(table: list[dict], title: str, console: Console) -> None:
    t = Table(title=title)
    for col in ("config", "stage", "wall s", "peak RSS MB", "peak anon MB", "estimate MB", "estimate / peak", "on disk GB",
                "peak / bf16 model", "tokens/s"):
        t.add_column(col, justify="left" if col in ("config", "stage") else "right")
    for r in table:
        ratio = r["estimate_mb"] / r["peak_rss_mb"] if r["estimate_mb"] and r["peak_rss_mb"] else None
        t.add_row(r["config"], r["stage"], _f(r["seconds"], ",.0f"), _f(r["peak_rss_mb"], ",.0f"),
                  _f(r["peak_anon_mb"], ",.0f"),
                  _f(r["estimate_mb"], ",.0f"), _f(ratio, ".2f"), _f(r["disk_bytes"] and r["disk_bytes"] / 1e9, ".2f"),
                  _f(r["peak_of_model"], ".3f"), _f(r["tokens_per_s"], ".2f"))
    console.print(t)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", default="/tmp/loram-train-large")
    p.add_argument("--layers", type=int, help="decoder layers (default: the shape's 40)")
    p.add_argument("--pruner", default="random", choices=("random", "magnitude"))
    p.add_argument("--ratio", type=float, default=0.65)
    p.add_argument("--data", default="shakespeare")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--seq-len", type=int, default=64)
    p.add_argument("--eval-tokens", type=int, default=256)
    p.add_argument("--dtype", choices=tuple(TORCH_DTYPES), default="bf16",
                   help="the unquantized modules' dtype and the 4-bit compute dtype, on both sides")
    p.add_argument("--no-merge", action="store_true", help="skip the merge stage (its 26 GB write)")
    p.add_argument("--quantize-head", action="store_true", help="NF4 for lm_head too, on both sides (a saver)")
    p.add_argument("--qlora-child", help=argparse.SUPPRESS)
    p.add_argument("--child-out", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.qlora_child:
        qlora_child(args.qlora_child, args)
        return 0
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    model = work / "model"
    generated_s = generate(model, args)
    model_bytes = folder_bytes(model)
    out = work / f"qloram-{variant(args)}"
    report = json.loads((out / "report.json").read_text()) if (out / "report.json").is_file() else run_qloram(model, out, args)
    qlora = run_qlora(model, work, args)
    table = rows(report, out, model_bytes, qlora)
    params = report["params"]["original"]
    title = (f"{params / 1e9:.2f}B-parameter Llama ({model_bytes / 1e9:.1f} GB bf16): QLoRAM ({args.pruner} "
             f"{args.ratio} + NF4) vs QLoRA (NF4 original), {args.dtype}{', head in NF4' if args.quantize_head else ''}, {args.steps} steps of 1 x {args.seq_len} tokens, "
             f"gradient checkpointing, {os.cpu_count()} CPUs")
    console = Console(width=160)
    print_table(table, title, console)
    stage = next(r for r in table if r["stage"] == "train")  # load + quantize + train
    stage_peak, stage_anon = stage["peak_rss_mb"], stage["peak_anon_mb"]
    qlora_peak = max(qlora["load_peak_rss_mb"], qlora["train_peak_rss_mb"])
    qlora_anon = max(qlora.get("load_peak_anon_mb") or 0, qlora.get("train_peak_anon_mb") or 0) or None
    summary = {"title": title, "generated_s": generated_s, "model_bytes": model_bytes, "rows": table,
               "train_stage_peak_vs_qlora": stage_peak / qlora_peak,
               "train_loop_peak_vs_qlora": report["memory"]["train_peak_rss_mb"] / qlora["train_peak_rss_mb"],
               "train_stage_anon_peak_vs_qlora": stage_anon / qlora_anon if stage_anon and qlora_anon else None,
               "qlora": qlora,
               "qloram_losses": report.get("losses"), "load_avg_1m_at_end": os.getloadavg()[0]}
    (work / "train_large.json").write_text(json.dumps(summary, indent=2))
    anon = summary["train_stage_anon_peak_vs_qlora"]
    console.print(f"QLoRAM / QLoRA peak: load + train {summary['train_stage_peak_vs_qlora']:.2f} (anonymous "
                  f"{_f(anon, '.2f')}), training loop {summary['train_loop_peak_vs_qlora']:.2f}; "
                  + (f"checkpoint written in {generated_s:,.0f} s" if generated_s else "checkpoint reused"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
