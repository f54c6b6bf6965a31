"""``loram plugins``: what is installed, which plugin provides it, and which hooks it implements."""

from __future__ import annotations

import json

from rich.console import Console
from rich.table import Table

from loram_core import plugins, registry
from loram_core.protocols import PROTOCOLS, optional_member


def plugin_rows() -> list[dict]:
    pm = plugins.load_plugins()
    versions = registry.plugin_versions()
    external = {pm.get_name(p) for p, _ in pm.list_plugin_distinfo()}
    provides: dict[str, list[str]] = {}
    for kind in registry.KINDS:
        for name, item in registry.collect(kind).items():
            provides.setdefault(item.plugin, []).append(f"{kind}:{name}")
    rows = []
    for name, plugin in pm.list_name_plugin():
        hooks = sorted(c.name for c in pm.get_hookcallers(plugin) or ())
        kind = "builtin" if name in plugins.DEFAULT_PLUGINS else "entry-point" if name in external else "runtime"
        row = {"name": name, "version": versions.get(name, "unknown"), "kind": kind,
               "provides": sorted(provides.get(name, [])), "hooks": hooks}
        if name in plugins.broken:
            row["error"] = plugins.broken[name]
        rows.append(row)
    listed = {r["name"] for r in rows}
    for name, error in plugins.broken.items():  # failed at import: never registered, still reported
        if name not in listed:
            rows.append({"name": name, "version": "unknown", "kind": "broken", "provides": [], "hooks": [],
                         "error": error})
    return sorted(rows, key=lambda r: (r["kind"] != "builtin", r["name"]))


def cmd_plugins(args) -> int:
    rows = plugin_rows()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    # The table lists what a user can name on the command line; --json keeps one row per plugin.
    table = Table(title="loram plugins")
    for col in ("kind", "name", "version", "plugin", "description"):
        table.add_column(col, overflow="fold")  # fold, never cut: names are what the user types
    for kind in registry.KINDS:
        for name, item in sorted(registry.collect(kind).items()):
            plugin = item.plugin.removeprefix("loram_core.builtin.")
            plugin = f"builtin ({plugin})" if plugin != item.plugin else plugin
            table.add_row(kind, name, item.version, plugin, optional_member(item.obj, PROTOCOLS[kind], "description"))
    for row in rows:
        if "error" in row:
            table.add_row("[red]broken[/red]", "—", row["version"], row["name"], row["error"])
    Console().print(table)
    return 0


def add_commands(sub) -> None:
    p = sub.add_parser("plugins", help="list installed plugins")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_plugins)
