"""``loram run`` and the single-stage commands, each on a RUN_DIR."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console

from loram_core import distributed
from loram_core.cli.flags import add_run_flags, resolve_settings
from loram_core.cli.terminal import status_console, wants_progress
from loram_core.errors import LoramError
from loram_core.lifecycle.resources import Resources
from loram_core.lifecycle.rundir import RunDir
from loram_core.lifecycle import stages as table


def do_stages(run_dir: Path, args, stages: tuple[str, ...], *, inherit: bool) -> int:
    """Parse: settings from defaults <- run.json (stage commands) <- recipe <- flags; then the lifecycle."""
    from loram_core.lifecycle.report import print_report
    from loram_core.lifecycle.runner import run_lifecycle

    run = RunDir(run_dir)
    run.check_schema()
    if inherit and stages[0] != "prune" and not run.run_json.is_file():
        raise LoramError(f"{run.root} is not a run directory (no run.json); start with 'loram run' or 'loram prune'")
    settings = resolve_settings(args, run.root, inherit=inherit)
    progress = wants_progress(args.no_progress)
    err = status_console(progress and distributed.is_main_process())  # accelerate launch: the main process logs
    report = run_lifecycle(run.root, settings, stages, progress=progress, overwrite=args.overwrite,
                           preflight=not args.no_preflight,
                           log=(lambda name: err.log(f"[bold]stage {name}[/bold]")) if progress else None)
    if report is None:  # not the main process
        return 0
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_report(report)
    return 0


def cmd_run(args) -> int:
    return do_stages(Path(args.out), args, tuple(s.name for s in table.STAGES), inherit=False)


def add_commands(sub) -> None:
    run = sub.add_parser("run", help="the whole lifecycle: prune, train, recover, merge, eval")
    add_run_flags(run)
    run.add_argument("--out", default="runs/latest", metavar="RUN_DIR", help="run directory (default runs/latest)")
    _common(run)
    run.set_defaults(func=cmd_run)
    commands: dict[str, list] = {}  # command -> its rows of the stage table (`loram eval`: eval and tasks)
    for stage in table.STAGES:
        commands.setdefault(stage.cli, []).append(stage)
    for command, rows in commands.items():
        p = sub.add_parser(command, help="; ".join(row.help for row in rows))
        names = tuple(row.name for row in rows)
        if command == "eval":  # `loram eval --list-tasks` needs no run directory
            p.add_argument("run_dir", metavar="RUN_DIR", type=Path, nargs="?")
            p.add_argument("--list-tasks", action="store_true",
                           help="list the downstream tasks the installed evaluators offer (with --include-path: "
                                "yours too) and exit")
        else:
            p.add_argument("run_dir", metavar="RUN_DIR", type=Path)
        add_run_flags(p)
        _common(p)
        p.set_defaults(func=lambda a, _names=names: _stage_command(a, _names))
    pub = sub.add_parser("publish", help="write a run's plan and pruned (aligned) weights as a folder others train on",
                         description="OUT gets plan/, pruned/, loram_published.json and a model card (README.md); "
                                     "'loram run --pruned OUT --model BASE' then skips pruning.")
    pub.add_argument("run_dir", metavar="RUN_DIR", type=Path)
    pub.add_argument("out", metavar="OUT", type=Path)
    pub.add_argument("--json", action="store_true", help="print the published card as JSON")
    pub.set_defaults(func=cmd_publish)


def _stage_command(args, names: tuple[str, ...]) -> int:
    if getattr(args, "list_tasks", False):
        from loram_core.cli.tasks_cmd import list_tasks

        return list_tasks(getattr(args, "include_path", None), as_json=args.json)
    if args.run_dir is None:
        raise LoramError(f"loram {names[0]}: give a RUN_DIR (or --list-tasks)")
    return do_stages(args.run_dir, args, names, inherit=True)


def cmd_publish(args) -> int:
    from loram_core.lifecycle.publish import publish_run
    from loram_core.lifecycle.settings import make_settings

    run = RunDir(args.run_dir)
    run.check_schema()
    res = Resources(make_settings(run.read_settings(), source=str(run.run_json)), progress=False)
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
    p.add_argument("--overwrite", action="store_true",
                   help="let changed settings run finished stages again, replacing what they wrote (the adapter "
                        "and its registry record); without it such a command is refused")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--no-preflight", action="store_true",
                   help="run even where the estimates say training does not fit in this machine's memory or the "
                        "shards on its disk")
