"""The run flags shared by ``loram run`` and the single-stage commands (design §6: add, never rename)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from loram_core.errors import LoramError
from loram_core.lifecycle.settings import FIELDS, RunSettings, load_recipe, make_settings, read_run_json

S = argparse.SUPPRESS  # flags not given stay out of the namespace, so recipes and run.json show through


def add_run_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model, data and plugins")
    g.add_argument("--recipe", metavar="FILE.toml", help="TOML recipe; flags override it")
    g.add_argument("--model", default=S, help="HF id, local folder or alias (default smollm2-135m)")
    g.add_argument("--data", default=S, help="dataset alias or a .txt/.md/.jsonl file (default shakespeare)")
    g.add_argument("--pruner", default=S, help="pruner plugin name (default magnitude)")
    g.add_argument("--ratio", type=float, default=S, help="fraction of KV groups / MLP channels removed (default 0.5)")
    g.add_argument("--layers", default=S, metavar="START:END", help="decoder layers to prune (default: first 4 and last 2 dense)")
    g.add_argument("--pruner-opt", action="append", default=S, metavar="KEY=VALUE", dest="pruner_options", help="pruner config option (repeatable)")
    g.add_argument("--pruned", default=S, metavar="FOLDER", help="start from a folder written by 'loram publish' instead of pruning (its base must be --model)")
    g.add_argument("--quantizer", default=S, help="quantizer plugin for the pruned model (QLoRAM)")
    g.add_argument("--quantizer-opt", action="append", default=S, metavar="KEY=VALUE", dest="quantizer_options")
    g.add_argument("--aligner", default=S, help="aligner plugin (continual pre-training of the pruned model)")
    g.add_argument("--aligner-opt", action="append", default=S, metavar="KEY=VALUE", dest="aligner_options")
    g.add_argument("--recoverer", default=S, help="recovery fill method (default zero)")
    g.add_argument("--trust-remote-code", action="store_true", default=S, help="allow model code from the hub (off by default)")
    t = p.add_argument_group("training and evaluation")
    t.add_argument("--steps", type=int, default=S)
    t.add_argument("--batch-size", type=int, default=S, help="sequences per process per micro-step (default 4)")
    t.add_argument("--seq-len", type=int, default=S)
    t.add_argument("--lr", type=float, default=S)
    t.add_argument("--rank", type=int, default=S, help="LoRA rank r")
    t.add_argument("--alpha", type=int, default=S, help="LoRA alpha")
    t.add_argument("--dropout", type=float, default=S, help="LoRA dropout")
    t.add_argument("--warmup-steps", type=int, default=S)
    t.add_argument("--schedule", choices=("cosine", "linear", "constant"), default=S)
    t.add_argument("--checkpoint-every", type=int, default=S)
    t.add_argument("--target-modules", default=S, help="comma-separated LoRA targets")
    t.add_argument("--seed", type=int, default=S)
    t.add_argument("--eval-tokens", type=int, default=S, help="test tokens for perplexity (default 8192)")
    t.add_argument("--eval-seq-len", type=int, default=S, help="perplexity window (default 512)")
    t.add_argument("--calibration-samples", type=int, default=S)
    t.add_argument("--no-merge", dest="merge", action="store_false", default=S, help="skip writing merged/")
    t.add_argument("--grad-accum", type=int, default=S, help="micro-steps per update (global batch = batch size x processes x this)")
    t.add_argument("--gradient-checkpointing", action="store_true", default=S, help="recompute decoder layers in backward: less activation memory, ~30%% more compute")
    t.add_argument("--loss-chunk", type=int, default=S, metavar="TOKENS", help="compute the loss over this many tokens at a time, so the logits never exist whole (0: off)")
    t.add_argument("--device", choices=("auto", "cpu", "cuda"), default=S, help="where training and evaluation run (default auto: CUDA when visible)")
    t.add_argument("--dtype", choices=("auto", "fp32", "bf16", "fp16"), default=S, help="model dtype for training and evaluation (default auto: bf16 on GPUs that support it, fp32 on CPU)")


def _option_value(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def _parse_options(items: list[str], flag: str) -> dict[str, Any]:
    opts = {}
    for item in items:
        if "=" not in item:
            raise LoramError(f"{flag} expects KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        opts[k.strip()] = _option_value(v.strip())
    return opts


def flag_values(args: argparse.Namespace) -> dict[str, Any]:
    values = {k: v for k, v in vars(args).items() if k in FIELDS}
    for key in ("pruner_options", "quantizer_options", "aligner_options"):
        if key in values:
            values[key] = _parse_options(values[key], "--" + key.replace("_options", "-opt"))
    if "target_modules" in values:
        values["target_modules"] = tuple(m.strip() for m in values["target_modules"].split(",") if m.strip())
    return values


def resolve_settings(args: argparse.Namespace, run_dir: Path | None, *, inherit: bool) -> RunSettings:
    """Defaults <- RUN_DIR/run.json (stage commands) <- recipe <- flags."""
    values: dict[str, Any] = {}
    if inherit and run_dir is not None and (run_dir / "run.json").is_file():
        values.update(read_run_json(run_dir))
    if getattr(args, "recipe", None):
        values.update(load_recipe(args.recipe))
    values.update(flag_values(args))
    return make_settings(values, source="run settings")
