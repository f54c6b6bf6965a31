"""``loram estimate``: parameters, reduction and training memory per strategy and ratio, from a config alone.

Registered through the ``register_commands`` hook by the built-in plugin ``loram_core.builtin.estimate``.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import attrs
from rich.console import Console
from rich.table import Table

from loram_core.errors import LoramError
from loram_core.lifecycle.settings import RunSettings, make_settings

DEFAULT_RATIOS = (0.25, 0.5, 0.65, 0.75, 0.85, 0.95)
BUDGET_RATIOS = tuple(round(0.05 * i, 2) for i in range(20))  # 0.0 .. 0.95
_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "kib": 2**10, "mib": 2**20, "gib": 2**30}


def parse_bytes(text: str) -> int:
    m = re.fullmatch(r"\s*([0-9.]+)\s*([a-zA-Z]*)\s*", text)
    if not m or m.group(2).lower() not in _UNITS:
        raise LoramError(f"--budget expects a size such as 20GiB, 512MiB or 8GB, got {text!r}")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def load_any_config(spec: str, trust_remote_code: bool = False):
    """A config.json path, a folder holding one, a built-in alias or an HF id in the local cache."""
    from loram_core.models.loading import config_from_file, load_config

    path = Path(spec).expanduser()
    if path.is_file() or (path.is_dir() and (path / "config.json").is_file()):
        return config_from_file(path, trust_remote_code=trust_remote_code)
    return load_config(spec, trust_remote_code=trust_remote_code)


def _ratios(text: str | None) -> tuple[float, ...]:
    if not text:
        return DEFAULT_RATIOS
    try:
        return tuple(float(r) for r in text.split(","))
    except ValueError:
        raise LoramError(f"--ratio expects numbers separated by commas, got {text!r}") from None


def _pruner_rows(pruner, ratios, options):
    from loram_core.configs import build_config

    fields = {f.name for f in attrs.fields(pruner.config_cls)}
    for ratio in ratios if "ratio" in fields else (None,):
        opts = dict(options)
        if ratio is not None:
            opts.setdefault("ratio", ratio)
        yield ratio, build_config(pruner.config_cls, opts, owner=f"pruner '{pruner.name}'")


def estimate_rows(config, pruner_names, ratios, options, quantizer, *, batch_size, seq_len, rank, dtype_bytes,
                  gradient_checkpointing=False, loss_chunk=0):
    from loram_core import registry
    from loram_core.arch import adapter_for
    from loram_core.estimate.memory import estimate_train_memory
    from loram_core.estimate.params import estimate_params
    from loram_core.protocols import quantizer_bits

    arch = adapter_for(config)
    bits = None
    if quantizer:
        q = registry.get("quantizer", quantizer)
        bits = quantizer_bits(q, q.config_cls())
    names = pruner_names or sorted(registry.collect("pruner"))
    rows = []
    for name in names:
        pruner = registry.get("pruner", name)
        for ratio, pcfg in _pruner_rows(pruner, ratios, options):
            params = estimate_params(config, arch, pruner, pcfg, bits=bits)
            mem = estimate_train_memory(config, arch, params, ratio=ratio, batch_size=batch_size, seq_len=seq_len,
                                        rank=rank, dtype_bytes=dtype_bytes,
                                        gradient_checkpointing=gradient_checkpointing, loss_chunk=loss_chunk,
                                        align_to=getattr(pcfg, "align_to", 1))
            rows.append({"pruner": name, "ratio": ratio, "quantizer": quantizer, "params": params.to_dict(),
                         "memory": mem.to_dict()})
    return rows


def _table(rows, title: str) -> Table:
    table = Table(title=title)
    for col in ("pruner", "ratio", "quant", "pattern", "params", "reduction", "GiB 16-bit", "train GiB"):
        table.add_column(col, justify="left" if col in ("pruner", "quant", "pattern") else "right", no_wrap=True)
    for r in rows:
        p = r["params"]
        table.add_row(r["pruner"], "—" if r["ratio"] is None else f"{r['ratio']:.2f}", r["quantizer"] or "—",
                      p["pattern"], f"{p['pruned']:,}", f"{p['reduction_ratio']:.2f}x",
                      f"{p['weights_gib_16bit']:.2f}", f"{r['memory']['total'] / 2**30:.2f}")
    return table


def cmd_estimate(args) -> int:
    from loram_core import plugins
    from loram_core.cli.flags import parse_options

    plugins.load_plugins()
    config = load_any_config(args.model, trust_remote_code=args.trust_remote_code)
    options = parse_options(args.pruner_options or [], "--pruner-opt")
    dtype_bytes = {"fp32": 4, "bf16": 2, "fp16": 2}[args.dtype]
    if args.loss_chunk < 0:
        raise LoramError(f"--loss-chunk must be 0 (off) or a positive number of positions, not {args.loss_chunk}")
    # the same settings as a run's, checked by the same fields (a batch, window or rank of 0 is no estimate)
    make_settings({"batch_size": args.batch_size, "seq_len": args.seq_len, "rank": args.rank}, source="estimate")
    common = dict(batch_size=args.batch_size, seq_len=args.seq_len, rank=args.rank, dtype_bytes=dtype_bytes,
                  gradient_checkpointing=args.gradient_checkpointing, loss_chunk=args.loss_chunk)
    console = Console(width=None if sys.stdout.isatty() else 140)  # pipes and logs get the full table
    if args.stages:
        return _print_stages(args, config, console)
    if args.budget:
        budget = parse_bytes(args.budget)
        rows = estimate_rows(config, args.pruner, BUDGET_RATIOS if not args.ratio else _ratios(args.ratio), options,
                             None, **common)
        if args.quantizer:
            rows += estimate_rows(config, args.pruner, BUDGET_RATIOS if not args.ratio else _ratios(args.ratio),
                                  options, args.quantizer, **common)
        fits = sorted((r for r in rows if r["memory"]["total"] <= budget), key=lambda r: r["params"]["reduction_ratio"])
        choice = fits[0] if fits else None
        if args.json:
            print(json.dumps({"budget_bytes": budget, "choice": choice, "rows": rows}, indent=2))
        elif choice is None:
            smallest = min(rows, key=lambda r: r["memory"]["total"])
            console.print(f"nothing fits in {args.budget}: the smallest estimate is "
                          f"{smallest['memory']['total'] / 2**30:.2f} GiB ({smallest['pruner']} {smallest['ratio']})")
        else:
            console.print(_table([choice], f"least aggressive configuration within {args.budget}"))
        return 0 if choice is not None else 2
    rows = estimate_rows(config, args.pruner, _ratios(args.ratio), options, args.quantizer, **common)
    if args.json:
        print(json.dumps(rows[0] if len(rows) == 1 else rows, indent=2))
    else:
        params = rows[0]["params"]
        active = f" ({params['active']:,} active per token)" if params.get("active") else ""
        console.print(_table(rows, f"{args.model}: {params['original']:,} parameters{active}; training at batch "
                                   f"{args.batch_size} x {args.seq_len} tokens, rank {args.rank}, {args.dtype}"))
        console.print("reduction = original / pruned, a b-bit quantized parameter counting b/16 (the paper's "
                      "formula); mask patterns count their zeros as removed, but hold them in training memory.")
    return 0


def _print_stages(args, config, console) -> int:
    """Each stage's memory for one configuration: the figure a run records beside each stage's measured peak."""
    from loram_core.estimate.stages import stage_estimates

    if len(args.pruner or []) > 1 or (args.ratio and "," in args.ratio):
        raise LoramError("--stages estimates one configuration: give one --pruner and one --ratio")
    values = {"model": args.model, "pruner": (args.pruner or ["random"])[0], "quantizer": args.quantizer,
              "batch_size": args.batch_size, "seq_len": args.seq_len, "rank": args.rank, "loss_chunk": args.loss_chunk,
              "gradient_checkpointing": args.gradient_checkpointing, "dtype": args.dtype,
              **{k: getattr(args, k) for k in ("eval_tokens", "eval_seq_len", "stream_eval") if hasattr(args, k)}}
    if args.ratio:
        values["ratio"] = float(args.ratio)
    settings = make_settings(values, source="estimate")
    model_path = args.model if Path(args.model).is_dir() else str(Path(args.model).parent)
    estimates = stage_estimates(settings, config, model_path)
    if args.json:
        print(json.dumps({"stages": estimates}, indent=2))
        return 0
    table = Table(title=f"{args.model}: {settings.pruner} ratio {settings.ratio}, quantizer {settings.quantizer or '—'}, "
                        f"batch {settings.batch_size} x {settings.seq_len}")
    table.add_column("stage")
    table.add_column("MiB above the stage's start", justify="right")
    for stage, need in estimates.items():
        table.add_row(stage, f"{need / 2**20:,.0f}")
    console.print(table)
    return 0


def add_command(cli) -> None:
    p = cli.add_parser("estimate", help="parameter and memory accounting from a model config, no weights")
    p.add_argument("--model", required=True, help="config.json, a model folder, an alias or a cached HF id")
    p.add_argument("--pruner", action="append", help="pruner name (repeatable; default: every installed pruner)")
    p.add_argument("--ratio", help="ratio or comma-separated ratios (default 0.25,0.5,0.65,0.75,0.85,0.95)")
    p.add_argument("--pruner-opt", action="append", dest="pruner_options", metavar="KEY=VALUE")
    p.add_argument("--quantizer", help="quantizer name, e.g. nf4 (4-bit parameters count as a quarter)")
    p.add_argument("--budget", help="memory budget, e.g. 20GiB: print the least aggressive configuration that fits")
    p.add_argument("--batch-size", type=int, default=RunSettings.default("batch_size"))
    p.add_argument("--seq-len", type=int, default=RunSettings.default("seq_len"))
    p.add_argument("--rank", type=int, default=RunSettings.default("rank"))
    p.add_argument("--dtype", choices=("fp32", "bf16", "fp16"), default="fp32", help="training dtype of the weights")
    p.add_argument("--gradient-checkpointing", action="store_true",
                   help="estimate as `loram run --gradient-checkpointing` trains: layer inputs kept, layers recomputed")
    p.add_argument("--loss-chunk", type=int, default=0, metavar="N",
                   help="estimate as `loram run --loss-chunk N` trains: logits for N positions at a time")
    from loram_core.cli.flags import add_setting_flag

    add_setting_flag(p, "trust_remote_code", default=False)
    for name in ("eval_tokens", "eval_seq_len", "stream_eval"):  # what the eval stage's figure depends on (--stages)
        add_setting_flag(p, name)
    p.add_argument("--stages", action="store_true",
                   help="each lifecycle stage's memory for one --pruner/--ratio, as a run records it beside the "
                        "measured peak (a model folder gives the checkpoint's dtype)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_estimate)
