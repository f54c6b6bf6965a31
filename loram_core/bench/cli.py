"""``loram bench`` (run a grid, one process per cell, resumable) and ``loram report`` (tables and plots)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from loram_core.atomic import write_bytes, write_json
from loram_core.cli.terminal import wants_progress
from loram_core.errors import LoramError
from loram_core.lifecycle.settings import RunSettings


def _split(text: str) -> list[str]:
    return [t.strip() for t in text.split(";" if ";" in text else ",") if t.strip()]


def _print_rows(rows: list[dict], console: Console, title: str) -> None:
    table = Table(title=title)
    for col in ("variant", "status", "reduction", "original", "pruned", "pruned_lora", "loram", "peak MB", "tok/s"):
        table.add_column(col, justify="left" if col in ("variant", "status") else "right")
    fmt = lambda v, s: "—" if v is None else format(v, s)  # noqa: E731
    for r in rows:
        p, m, t = r["ppl"], r["memory"], r["train"]
        table.add_row(r["label"], r["status"], fmt(r["params"].get("reduction_ratio"), ".2f"),
                      fmt(p.get("original"), ".2f"), fmt(p.get("pruned"), ".2f"), fmt(p.get("pruned_lora"), ".2f"),
                      fmt(p.get("loram"), ".2f"), fmt(m.get("train_peak_rss_mb"), ",.0f"), fmt(t.get("tokens_per_s"), ".0f"))
    console.print(table)
    from loram_core.bench.tasks_table import tasks_rich

    tasks = tasks_rich(rows)
    if tasks is not None:
        console.print(tasks)


def write_results(rows: list[dict], out: Path, subject: str, plots: bool = True) -> list[Path]:
    from loram_core.bench.markdown import results_table
    from loram_core.bench.tasks_table import tasks_markdown

    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "results.json", rows)
    tasks = tasks_markdown(rows)
    write_bytes(out / "results.md", (results_table(rows) + (f"\n{tasks}" if tasks else "")).encode())
    written = [out / "results.json", out / "results.md"]
    if plots:
        from loram_core.bench.plots import all_plots

        written += all_plots(rows, out, subject)
    return written


def cmd_bench(args) -> int:
    from loram_core import plugins
    from loram_core.bench.collect import collect
    from loram_core.bench.grid import build_grid
    from loram_core.bench.runner import run_grid

    plugins.load_plugins()
    try:
        ratios = [float(r) for r in _split(args.ratios)]
    except ValueError:
        raise LoramError(f"--ratios expects numbers separated by commas, got {args.ratios!r}") from None
    cells = build_grid(_split(args.pruners), ratios, _split(args.quantizers), _split(args.aligners),
                       baselines=not args.no_baselines)
    common = ["--model", args.model, "--data", args.data, *[a for a in args.run_args if a != "--"]]
    out = Path(args.out)
    run_grid(cells, out, common, progress=wants_progress(args.no_progress))
    rows = collect([out])
    write_results(rows, out, f"{args.model} + {args.data}", plots=not args.no_plots)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        _print_rows(rows, Console(width=None if sys.stdout.isatty() else 160), f"loram bench: {out}")
    failed = [r for r in rows if r.get("status") == "failed"]
    if failed and len(failed) == sum(r.get("status") in ("done", "failed") for r in rows):
        # every cell that ran failed: the grid measured nothing, whatever the table shows
        first = failed[0].get("error") or "see its run.log"
        print(f"loram: error: every cell of the grid failed (first: {failed[0]['label']}: {first}); each cell's "
              f"run.log under {out / 'cells'} has its reason", file=sys.stderr)
        return 2
    return 0


def cmd_report(args) -> int:
    from loram_core.bench.collect import collect

    rows = collect([Path(p) for p in args.paths])
    written = write_results(rows, Path(args.out), args.title, plots=not args.no_plots)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        console = Console(width=None if sys.stdout.isatty() else 160)
        _print_rows(rows, console, "loram report")
        console.print("wrote " + ", ".join(str(p) for p in written))
    return 0


def add_commands(cli) -> None:
    import argparse

    b = cli.add_parser("bench", help="run a grid of configurations, one process each (resumable)",
                       description="Each cell is `loram run` in its own process; arguments after -- go to every run.")
    b.add_argument("--model", default=RunSettings.default("model"))
    b.add_argument("--data", default=RunSettings.default("data"))
    b.add_argument("--pruners", default="random,magnitude",
                   help="strategies, comma-separated; options as NAME:KEY=VALUE (use ; between strategies then)")
    b.add_argument("--ratios", default="0.5")
    b.add_argument("--quantizers", default="none", help="e.g. none,nf4")
    b.add_argument("--aligners", default="none")
    b.add_argument("--no-baselines", action="store_true", help="skip LoRA / QLoRA on the full original")
    b.add_argument("--out", default="runs/bench", metavar="BENCH_DIR")
    b.add_argument("--no-plots", action="store_true")
    b.add_argument("--no-progress", action="store_true")
    b.add_argument("--json", action="store_true")
    b.add_argument("run_args", nargs=argparse.REMAINDER, help="-- then flags for every `loram run`")
    b.set_defaults(func=cmd_bench)
    r = cli.add_parser("report", help="tables and PNG plots from run or bench directories")
    r.add_argument("paths", nargs="+", metavar="RUN_OR_BENCH_DIR")
    r.add_argument("--out", default="runs/report", help="folder for results.md, results.json and the PNGs")
    r.add_argument("--title", default="loram runs", help="subject named in the plot titles")
    r.add_argument("--no-plots", action="store_true")
    r.add_argument("--json", action="store_true")
    r.set_defaults(func=cmd_report)
