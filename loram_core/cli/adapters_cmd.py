"""``loram adapters ...``: the registry of adapters and their provenance (list, show, add, rm, export, doctor)."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from loram_core.errors import LoramError



def say(message: str) -> None:
    """One message, one line: never wrapped at the console width (a pipe or a log reads it whole)."""
    Console(soft_wrap=True, highlight=False).print(message)

def _store():
    from loram_core.adapters import AdapterStore

    return AdapterStore()


def _fmt_plugin(block: dict | None) -> str:
    if not block:
        return "—"
    params = block.get("params") or {}
    ratio = f" {params['ratio']}" if params.get("ratio") is not None else ""
    return f"{block['name']}{ratio}"


def _fmt_ppl(metrics: dict) -> str:
    ppl = (metrics or {}).get("ppl") or {}
    if ppl.get("loram") is None:
        return "—"
    base = f" (orig {ppl['original']:.2f})" if ppl.get("original") is not None else ""
    return f"{ppl['loram']:.2f}{base}"


def cmd_list(args) -> int:
    base = None
    if args.model:
        from loram_core.models.loading import load_config
        from loram_core.plan.fingerprint import ModelFingerprint

        base = ModelFingerprint.from_config(load_config(args.model), name_or_path=args.model)
    store = _store()
    records = store.list(base)
    if args.json:
        print(json.dumps([{**r.to_json(), "status": r.status()} for r in records], indent=2))
        return 0
    table = Table(title=f"adapters in {store.path}" + (f" for {args.model}" if args.model else ""))
    for col in ("name", "original model", "source", "pruner", "data", "r", "ppl loram", "status", "registered"):
        table.add_column(col, overflow="fold")
    for r in records:
        status = r.status()
        table.add_row(r.name, r.base.name_or_path, r.source, _fmt_plugin(r.pruner), r.data or "—",
                      str((r.lora or {}).get("r", "—")), _fmt_ppl(r.metrics),
                      status if status == "ok" else f"[red]{status}[/red]", r.created_at[:16].replace("T", " "))
    Console().print(table)
    return 0


def cmd_show(args) -> int:
    record = _store().get(args.name)
    status = record.status()
    if args.json:
        print(json.dumps({**record.to_json(), "status": status}, indent=2))
        return 0
    table = Table(title=f"adapter {record.name}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    b = record.base
    warn = {"ok": "ok", "missing": "[red]MISSING: the weights file is gone[/red]",
            "changed": "[red]CHANGED: the weights file no longer matches the recorded hash[/red]",
            "diverged": "[red]DIVERGED: its perplexity on the original is not finite[/red]"}[status]
    rows = [
        ("status", warn), ("source", record.source), ("path", record.adapter_path),
        ("content hash", record.content_hash), ("original model", b.name_or_path),
        ("fingerprint", f"{b.architecture} / {b.model_type}, config {b.config_hash}, {b.num_parameters:,} parameters"),
        ("plan hash", record.plan_hash or "—"), ("pruner", json.dumps(record.pruner) if record.pruner else "—"),
        ("quantizer", json.dumps(record.quantizer) if record.quantizer else "—"),
        ("aligner", json.dumps(record.aligner) if record.aligner else "—"),
        ("recoverer", json.dumps(record.recoverer) if record.recoverer else "—"),
        ("training data", record.data or "—"), ("LoRA", json.dumps(record.lora)),
        ("run dir", record.run_dir or "—"), ("loram version", record.loram_version), ("registered", record.created_at),
    ]
    for key, block in sorted((record.metrics or {}).items()):
        rows.append((f"metrics.{key}", json.dumps(block)))
    for key, value in rows:
        table.add_row(key, value)
    Console().print(table)
    return 0


def cmd_add(args) -> int:
    from loram_core.adapters import register_path

    from loram_core.adapters.register import is_run_adapter

    run_dir = is_run_adapter(Path(args.path).expanduser()) if Path(args.path).expanduser().exists() else None
    before = _store().find_path(run_dir / "adapter") if run_dir is not None else None
    record = register_path(args.path, name=args.name, model=args.model, data=args.data, rename=args.rename)
    if before is None:
        say(f"registered [bold]{record.name}[/bold] ({record.source}) -> {record.adapter_path}")
    else:
        renamed = f", renamed from '{before.name}'" if before.name != record.name else ""
        say(f"updated [bold]{record.name}[/bold]{renamed}: replaced the record of {record.adapter_path} "
            f"(weights {before.content_hash} -> {record.content_hash})")
    return 0


def cmd_rm(args) -> int:
    from loram_core.adapters.files import CONFIG, MODEL_CARD, SIDECAR, WEIGHTS

    store = _store()
    record = store.remove(args.name)
    folder = Path(record.adapter_path)
    message = f"removed {record.name} from the registry"
    if args.delete_files:
        others = [r.name for r in store.list() if Path(r.adapter_path) == folder]
        if others:
            message += f"; files kept: {folder} is also registered as {', '.join(others)}"
        elif record.source != "run":
            message += f"; files kept: {folder} was trained elsewhere, and loram deletes only what it wrote"
        else:
            # a run's recovered adapter: delete the files recovery wrote, and the folder only if that empties it
            deleted = [n for n in (WEIGHTS, CONFIG, SIDECAR, MODEL_CARD) if (folder / n).is_file()]
            for name in deleted:
                (folder / name).unlink()
            left = folder.is_dir() and any(folder.iterdir())
            if folder.is_dir() and not left:
                folder.rmdir()
            message += f"; deleted {', '.join(deleted) or 'nothing'} from {folder}"
            if left:
                message += " (other files in it are kept)"
    else:
        message += f"; its files stay at {folder} (--delete-files removes them)"
    say(message)
    return 0


def cmd_rename(args) -> int:
    record = _store().rename(args.old, args.new)
    say(f"renamed {args.old} -> {record.name}")
    return 0


def cmd_export(args) -> int:
    from loram_core.adapters.export import export_adapter

    out = export_adapter(_store().get(args.name), args.out, base_model=args.base_model, force=args.force)
    say(f"exported {args.name} -> {out} (load with PeftModel.from_pretrained(model, '{out}'))")
    return 0


def cmd_doctor(args) -> int:
    from loram_core.adapters.doctor import diagnose, move_aside

    store = _store()
    found = diagnose(store)
    console = Console()
    if not found.healthy and args.repair:
        moved = move_aside(store)
        console.print(f"moved the broken registry to {moved} and started an empty one at {store.path}; "
                      f"nothing was re-registered: register adapters again with 'loram adapters add RUN_DIR_OR_FOLDER'",
                      highlight=False)
        found = diagnose(store)
    if args.json:
        print(json.dumps({"path": str(found.path), "exists": found.exists, "integrity": found.integrity,
                          "schema_version": found.schema_version, "records": found.records,
                          "missing": list(found.missing), "changed": list(found.changed)}, indent=2))
    else:
        table = Table(title="loram adapters doctor", show_header=False)
        table.add_column("check", style="bold")
        table.add_column("result", overflow="fold")
        table.add_row("database", str(found.path) + ("" if found.exists else " (not created yet)"))
        table.add_row("integrity", found.integrity if found.healthy else f"[red]{found.integrity}[/red]")
        table.add_row("schema version", str(found.schema_version if found.schema_version is not None else "—"))
        table.add_row("records", str(found.records if found.records is not None else "—"))
        table.add_row("weights missing", ", ".join(found.missing) or "none")
        table.add_row("weights changed", ", ".join(found.changed) or "none")
        console.print(table)
    if not found.healthy:
        raise LoramError(f"adapter registry {found.path} is broken ({found.integrity}); "
                         f"'loram adapters doctor --repair' moves it aside and starts an empty one")
    return 0


def add_commands(sub) -> None:
    p = sub.add_parser("adapters", help="the adapter registry: list, show, add, rm, rename, export, doctor")
    cmds = p.add_subparsers(dest="adapters_command", metavar="ACTION")

    def usage(_args) -> int:  # `loram adapters` alone: show the actions
        p.print_help()
        return 2

    p.set_defaults(func=usage)

    c = cmds.add_parser("list", help="registered adapters")
    c.add_argument("--model", help="only adapters for this original model (alias, folder or hub id)")
    c.add_argument("--json", action="store_true", help="print JSON")
    c.set_defaults(func=cmd_list)

    c = cmds.add_parser("show", help="one adapter's full provenance; flags weights that changed since registration")
    c.add_argument("name")
    c.add_argument("--json", action="store_true", help="print JSON")
    c.set_defaults(func=cmd_show)

    c = cmds.add_parser("add", help="register a RUN_DIR's adapter, or a PEFT LoRA folder trained elsewhere")
    c.add_argument("path", metavar="RUN_DIR_OR_FOLDER")
    c.add_argument("--name", help="registry name (default: the folder's name, made unique)")
    c.add_argument("--model", help="the original model it adapts (default: the adapter's base_model_name_or_path)")
    c.add_argument("--data", help="training data, recorded as provenance of an external adapter")
    c.add_argument("--rename", action="store_true", help="rename a run already registered under another name to --name")
    c.set_defaults(func=cmd_add)

    c = cmds.add_parser("rm", help="remove a record (its files stay unless --delete-files)")
    c.add_argument("name")
    c.add_argument("--delete-files", action="store_true", help="also delete the adapter folder")
    c.set_defaults(func=cmd_rm)

    c = cmds.add_parser("rename", help="rename a record")
    c.add_argument("old")
    c.add_argument("new")
    c.set_defaults(func=cmd_rename)

    c = cmds.add_parser("export", help="write a self-contained PEFT folder with a model card")
    c.add_argument("name")
    c.add_argument("out", metavar="OUT")
    c.add_argument("--base-model", help="rewrite base_model_name_or_path (e.g. to a hub id) in the export")
    c.add_argument("--force", action="store_true", help="replace OUT if it exists")
    c.set_defaults(func=cmd_export)

    c = cmds.add_parser("doctor", help="check the registry database; --repair moves a broken one aside")
    c.add_argument("--repair", action="store_true", help="move a broken database aside and start an empty one")
    c.add_argument("--json", action="store_true", help="print JSON")
    c.set_defaults(func=cmd_doctor)
