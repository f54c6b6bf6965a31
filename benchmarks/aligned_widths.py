"""QLoRAM speed with and without hardware-aligned pruned widths (``--pruner-opt align_to=N``), measured.

    python benchmarks/aligned_widths.py --model smollm2-135m --ratio 0.3 --align-to 32

One process, one configuration at a time, the same batches for each: the magnitude plan at ``--ratio`` with
``align_to`` 1 (what the pruner keeps) and N, each in fp32, in NF4 as the quantizer does by default
(bitsandbytes' general path) and in NF4 with ``cpu_packed`` (its AVX512-BF16 packed kernel on every
module whose shape fits), so the table separates "aligned widths" from "the packed kernel".
Train: LoRA r=8 on the seven projections, forward + backward + AdamW step, tokens per second over the
timed steps (after one warm-up). Eval: no-grad forward in eval mode (where bitsandbytes repacks fitting
modules on CPUs with AVX512-BF16), tokens per second, and the loss on the same batch to show the numerics.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from rich.console import Console
from rich.table import Table


def timed(fn, repeats: int) -> float:
    fn()  # warm-up: bitsandbytes repacks on the first eval forward, PEFT allocates its optimizer state
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t0) / repeats


def pruned_model(res, ratio: float, align_to: int):
    from loram_core import registry
    from loram_core.arch import adapter_for
    from loram_core.configs import build_config
    from loram_core.plan import ModelFingerprint
    from loram_core.plan.apply import apply_plan
    from loram_core.structured import PruneContext

    model = res.original_model()
    pruner = registry.get("pruner", "magnitude")
    ctx = PruneContext(res.config, adapter_for(res.config), ModelFingerprint.from_config(res.config), progress=False)
    plan = pruner.plan(model, build_config(pruner.config_cls, {"ratio": ratio, "align_to": align_to}, owner="magnitude"), ctx)
    return apply_plan(model, plan), plan


def prepared(res, ratio: float, align_to: int, weights: str):
    from loram_plugin_bnb import quantize_model
    from loram_plugin_bnb.config import NF4Config

    model, plan = pruned_model(res, ratio, align_to)
    if weights != "fp32":  # "nf4": the quantizer's default (general path); "nf4 cpu_packed": packed where it fits
        quantize_model(model, NF4Config(cpu_packed=weights == "nf4 cpu_packed"))
    return model, plan


def measure(make_model, batch_train, batch_eval, steps: int) -> dict:
    """Eval and train each on a model of its own: a packed (evaluated) model is not the one trained."""
    from peft import LoraConfig, get_peft_model

    import bitsandbytes as bnb

    model = make_model()
    fits = [m.support_avx512bf16_for_cpu for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    model.eval()
    with torch.no_grad():
        eval_s = timed(lambda: model(batch_eval), steps)
        loss = float(model(batch_eval, labels=batch_eval).loss)
    del model
    model = make_model()
    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    peft_model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=targets, lora_dropout=0.0))
    peft_model.train()
    opt = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=1e-4)

    def step():
        peft_model(batch_train, labels=batch_train).loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    train_s = timed(step, steps)
    return {"eval_tok_s": batch_eval.numel() / eval_s, "train_tok_s": batch_train.numel() / train_s,
            "eval_loss": loss, "packed_modules": f"{sum(fits)}/{len(fits)}" if fits else "—"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--data", default="shakespeare")
    ap.add_argument("--ratio", type=float, default=0.3)
    ap.add_argument("--align-to", type=int, default=32)
    ap.add_argument("--steps", type=int, default=3, help="timed repeats of each measurement")
    ap.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    args = ap.parse_args()

    import bitsandbytes as bnb
    from loram_core.lifecycle.resources import Resources
    from loram_core.lifecycle.settings import make_settings

    res = Resources(make_settings({"model": args.model, "data": args.data, "eval_tokens": 2048}), progress=False)
    tokens = res.test_tokens
    batch_eval = tokens[: 4 * 512].view(4, 512)
    batch_train = tokens[: 4 * 128].view(4, 128)
    rows = []
    for align_to in (1, args.align_to):
        for quantize in ("fp32", "nf4", "nf4 cpu_packed"):
            model, plan = prepared(res, args.ratio, align_to, quantize)
            kept = model.model.layers[4].mlp.gate_proj.out_features
            del model
            make = lambda: prepared(res, args.ratio, align_to, quantize)[0]  # noqa: E731
            row = {"align_to": align_to, "kept_mlp": kept, "ratio_reached": plan.pruner.params["ratio_reached"]["mlp"],
                   "weights": quantize, **measure(make, batch_train, batch_eval, args.steps)}
            rows.append(row)
    table = Table(title=f"{args.model}, magnitude {args.ratio}: QLoRAM speed vs kept widths "
                        f"(CPU AVX512-BF16: {bnb.functional.has_avx512bf16()}, {torch.get_num_threads()} threads)")
    for col in ("align_to", "kept MLP", "MLP ratio reached", "weights", "packed modules", "eval tok/s",
                "eval loss", "train tok/s"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(str(r["align_to"]), str(r["kept_mlp"]), f"{r['ratio_reached']:.4f}", r["weights"],
                      r["packed_modules"], f"{r['eval_tok_s']:.0f}", f"{r['eval_loss']:.4f}", f"{r['train_tok_s']:.0f}")
    Console().print(table)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
