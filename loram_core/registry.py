"""Name lookup over what plugins registered, with attribution to the plugin that registered each thing."""

from __future__ import annotations

from typing import Any

import attrs

from loram_core import __version__
from loram_core.errors import LoramError, UnknownPluginError
from loram_core import plugins
from loram_core.plugins import load_plugins
from loram_core.protocols import PROTOCOLS, optional_member

# kind (singular, for messages) -> hook name
KINDS = {
    "pruner": "register_pruners",
    "quantizer": "register_quantizers",
    "aligner": "register_aligners",
    "recoverer": "register_recoverers",
    "architecture": "register_architectures",
    "dataset": "register_datasets",
    "model": "register_models",
    "evaluator": "register_task_evaluators",
}


@attrs.frozen
class Registered:
    kind: str
    name: str
    obj: Any
    plugin: str
    version: str


def plugin_versions() -> dict[str, str]:
    pm = load_plugins()
    versions = {name: __version__ for name, _ in pm.list_name_plugin()}
    for plugin, dist in pm.list_plugin_distinfo():
        versions[pm.get_name(plugin)] = dist.version
    return versions


def collect(kind: str) -> dict[str, Registered]:
    """Everything of one kind, by name. Built fresh each call, so test-time (un)registration shows at once."""
    pm = load_plugins()
    versions = plugin_versions()
    found: dict[str, Registered] = {}
    hook = KINDS[kind]
    impls = getattr(pm.hook, hook).get_hookimpls()
    # Each implementation is called on its own, so every registered object is attributed to its plugin and
    # one that raises does not hide the others. Called through pluggy (a subset of the hook), so the one trace
    # of LORAM_TRACE_PLUGINS (plugins.py) shows these calls too.
    for impl in impls:

        def register(obj, aliases=(), _plugin=impl.plugin_name):
            version = optional_member(obj, PROTOCOLS[kind], "version") or versions.get(_plugin, "unknown")
            for name in (obj.name, *aliases):
                if name in found and found[name].plugin != _plugin:
                    raise LoramError(
                        f"{kind} '{name}' is registered twice: by {found[name].plugin} and by {_plugin}"
                    )
                found[name] = Registered(kind, name, obj, _plugin, str(version))

        only_this = pm.subset_hook_caller(hook, remove_plugins=[i.plugin for i in impls if i is not impl])
        try:
            only_this(register=register)
        except LoramError:
            raise  # a name clash is the user's to fix, not a broken plugin
        except Exception as exc:  # noqa: BLE001 - a third party's registration code
            plugins._warn(impl.plugin_name, exc)
    return found


def get(kind: str, name: str) -> Any:
    """The object registered under ``name``; ``UnknownPluginError`` lists what is installed."""
    found = collect(kind)
    if name not in found:
        raise UnknownPluginError(kind, name, list(found))
    return found[name].obj

