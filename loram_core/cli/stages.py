"""``loram run`` and the single-stage commands, each on a RUN_DIR."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console

from loram_core import distributed, registry
from loram_core.cli.flags import add_run_flags, resolve_settings
from loram_core.errors import LoramError
from loram_core.lifecycle.resources import Resources
from loram_core.lifecycle.rundir import RUN_SCHEMA, RunDir

STAGES = ("prune", "align", "train", "recover", "merge", "eval")


def _plugins_used(settings) -> dict:
    used = {}
    pruner = None if settings.pruned else settings.pruner  # a published folder was pruned by its publisher
    for kind, name in (("pruner", pruner), ("quantizer", settings.quantizer),
                       ("aligner", settings.aligner), ("recoverer", settings.recoverer)):
        if name:
            found = registry.collect(kind)
            if name not in found:
                registry.get(kind, name)  # raises UnknownPluginError with installed names
            used[kind] = {"name": name, "version": found[name].version, "plugin": found[name].plugin}
    return used


def _check_schema(run: RunDir) -> None:
    if run.run_json.is_file():
        try:
            schema = json.loads(run.run_json.read_text()).get("schema")
        except ValueError:
            raise LoramError(f"{run.run_json} is unreadable; remove it or choose another RUN_DIR") from None
        if schema != RUN_SCHEMA:
            raise LoramError(f"{run.root} was written by run-dir schema {schema!r}; this loram writes {RUN_SCHEMA}")


def do_stages(run_dir: Path, args, stages: tuple[str, ...], *, inherit: bool) -> int:
    from loram_core.lifecycle.align import run_align
    from loram_core.lifecycle.evaluate import run_eval
    from loram_core.lifecycle.merge import run_merge
    from loram_core.lifecycle.prune import run_prune
    from loram_core.lifecycle.recover import run_recover
    from loram_core.lifecycle.report import build_report, print_report, write_report
    from loram_core.lifecycle.train import run_train

    run = RunDir(run_dir)
    _check_schema(run)
    if inherit and stages[0] != "prune" and not run.run_json.is_file():
        raise LoramError(f"{run.root} is not a run directory (no run.json); start with 'loram run' or 'loram prune'")
    settings = resolve_settings(args, run.root, inherit=inherit)
    plugins = _plugins_used(settings)
    err = Console(stderr=True, quiet=not distributed.is_main_process())  # accelerate launch: main logs
    res = Resources(settings, progress=not args.no_progress)
    if args.no_progress:
        import transformers

        transformers.utils.logging.disable_progress_bar()
    res.preflight(needs_data=any(s in stages for s in ("prune", "align", "train", "eval")))
    run.root.mkdir(parents=True, exist_ok=True)
    run.write_run_json(settings, plugins)
    run_stage = {"prune": run_prune, "align": run_align, "train": run_train, "recover": run_recover,
                 "merge": run_merge, "eval": run_eval}
    for stage in stages:
        if (stage == "align" and not settings.aligner) or (stage == "merge" and not settings.merge):
            continue
        err.log(f"[bold]stage {stage}[/bold]")
        distributed.run_stage(stage, run_stage[stage], run, res, device=settings.device)  # main writes, all train
    if not distributed.is_main_process():
        return 0
    report = build_report(run, settings, res.model_path)
    write_report(run, report)
    from loram_core.adapters.register import refresh_run_metrics  # the registry keeps the report's numbers

    refresh_run_metrics(run.root, report)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_report(report)
    return 0


def cmd_run(args) -> int:
    return do_stages(Path(args.out), args, STAGES, inherit=False)


def add_commands(sub) -> None:
    run = sub.add_parser("run", help="the whole lifecycle: prune, train, recover, merge, eval")
    add_run_flags(run)
    run.add_argument("--out", default="runs/latest", metavar="RUN_DIR", help="run directory (default runs/latest)")
    _common(run)
    run.set_defaults(func=cmd_run)
    helps = {"prune": "prune the original model into RUN_DIR/plan and RUN_DIR/pruned",
             "align": "align the pruned model with the configured aligner plugin",
             "train": "train LoRA on the pruned model", "recover": "recover the adapter to the original shapes",
             "merge": "merge the recovered adapter into the original model", "eval": "perplexity rows and report"}
    for stage in STAGES:
        p = sub.add_parser(stage, help=helps[stage])
        p.add_argument("run_dir", metavar="RUN_DIR", type=Path)
        add_run_flags(p)
        _common(p)
        p.set_defaults(func=lambda a, _s=stage: do_stages(a.run_dir, a, (_s,), inherit=True))
    pub = sub.add_parser("publish", help="write a run's plan and pruned (aligned) weights as a folder others train on",
                         description="OUT gets plan/, pruned/, loram_published.json and a model card (README.md); "
                                     "'loram run --pruned OUT --model BASE' then skips pruning.")
    pub.add_argument("run_dir", metavar="RUN_DIR", type=Path)
    pub.add_argument("out", metavar="OUT", type=Path)
    pub.add_argument("--json", action="store_true", help="print the published card as JSON")
    pub.set_defaults(func=cmd_publish)


def cmd_publish(args) -> int:
    from loram_core.lifecycle.publish import publish_run
    from loram_core.lifecycle.settings import make_settings, read_run_json

    run = RunDir(args.run_dir)
    _check_schema(run)
    res = Resources(make_settings(read_run_json(run.root), source=str(run.run_json)), progress=False)
    card = publish_run(run.root, args.out, res.config, res.model_path)
    if args.json:
        print(json.dumps(card, indent=2))
    else:
        align = card["align"]
        Console().print(f"published {args.out}: {card['prune']['pruner']['name']} ratio {card['ratio']}, "
                        f"{card['prune']['params_pruned']:,} of {card['prune']['params_original']:,} parameters, "
                        + (f"aligned by {align['aligner']} on {align['dataset']}" if align else "not aligned")
                        + f"; train on it with: loram run --pruned {args.out} --model {card['base']['name_or_path']}")
    return 0


def _common(p) -> None:
    p.add_argument("--json", action="store_true", help="print the report as JSON instead of tables")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
