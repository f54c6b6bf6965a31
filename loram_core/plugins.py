"""The plugin host: one pluggy manager, built-ins and entry points registered the same way."""

from __future__ import annotations

import importlib
import os
import sys

import pluggy

from loram_core import hookspecs

ENTRY_POINT_GROUP = "loram"

# Built-ins are ordinary plugins: modules with @hookimpl functions.
DEFAULT_PLUGINS = (
    "loram_core.builtin.architectures",
    "loram_core.builtin.random_structured",
    "loram_core.builtin.magnitude",
    "loram_core.builtin.no_pruning",
    "loram_core.builtin.recoverers",
    "loram_core.builtin.models",
    "loram_core.builtin.datasets",
    "loram_core.builtin.commands",
)

pm = pluggy.PluginManager("loram")
pm.add_hookspecs(hookspecs)

_loaded = False


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
        if only is None:
            pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
        else:
            for name in filter(None, (n.strip() for n in only.split(","))):
                pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP, name=name)
    pm.check_pending()
    return pm
