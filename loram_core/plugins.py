"""The plugin host: one pluggy manager, built-ins and entry points registered the same way."""

from __future__ import annotations

import importlib
import os
import sys

import pluggy

from loram_core import hookspecs
from loram_core.errors import warn

ENTRY_POINT_GROUP = "loram"

# Built-ins are ordinary plugins: modules with @hookimpl functions.
DEFAULT_PLUGINS = (
    "loram_core.builtin.families",
    "loram_core.builtin.random_structured",
    "loram_core.builtin.magnitude",
    "loram_core.builtin.no_pruning",
    "loram_core.builtin.recoverers",
    "loram_core.builtin.models",
    "loram_core.builtin.datasets",
    "loram_core.builtin.align",
    "loram_core.builtin.commands",
)

pm = pluggy.PluginManager("loram")
pm.add_hookspecs(hookspecs)

_loaded = False
# Plugins that could not be loaded or registered: name -> one-line reason. Reported, never fatal, so one
# broken third-party package cannot take down `loram plugins` or a run that does not use it.
broken: dict[str, str] = {}


def _warn(name: str, exc: BaseException) -> None:
    reason = f"{type(exc).__name__}: {exc}".splitlines()[0]
    if name not in broken:
        warn(f"plugin '{name}' failed to load and is skipped ({reason})")
    broken[name] = reason


def _load_entry_points(only: set[str] | None) -> None:
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if only is not None and ep.name not in only:
            continue
        try:
            pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP, name=ep.name)
        except Exception as exc:  # noqa: BLE001 - any error in third-party import code
            _warn(ep.name, exc)


def _trace_hook_calls() -> None:
    """LORAM_TRACE_PLUGINS=1: print every hook call, its implementations and outcome (as datasette does).

    The only trace: the registry calls each implementation through pluggy too, so its calls show here."""

    def before(hook_name, hook_impls, kwargs):
        names = ", ".join(impl.plugin_name for impl in hook_impls)
        print(f"loram trace: {hook_name}({', '.join(kwargs)}) -> [{names}]", file=sys.stderr)

    def after(outcome, hook_name, hook_impls, kwargs):
        error = outcome.exception
        print(f"loram trace: {hook_name} {'raised ' + repr(error) if error else 'done'}", file=sys.stderr)

    pm.add_hookcall_monitoring(before, after)


def load_plugins() -> pluggy.PluginManager:
    """Register the built-ins and the installed entry points once; safe to call repeatedly."""
    global _loaded
    if _loaded:
        return pm
    _loaded = True
    for name in DEFAULT_PLUGINS:
        pm.register(importlib.import_module(name), name=name)
    # Tests set sys._called_from_test so an installed third-party plugin cannot change their outcome.
    if not hasattr(sys, "_called_from_test"):
        only = os.environ.get("LORAM_LOAD_PLUGINS")
        _load_entry_points(None if only is None else {n.strip() for n in only.split(",") if n.strip()})
    if os.environ.get("LORAM_TRACE_PLUGINS"):
        _trace_hook_calls()
    pm.check_pending()
    return pm
