"""``--loram-plugin NAME`` -> the registered things to check.

NAME is, in this order: a plugin registered with the core's plugin manager (``loram_core.builtin.magnitude``,
one registered in a conftest), an installed entry point of the ``loram`` group (``wanda``, ``bnb``: it is
loaded and registered, so everything it registers is checked), or the name of one registered pruner,
quantizer, aligner, recoverer or task evaluator (``magnitude``, ``nf4``).
"""

from __future__ import annotations

from importlib.metadata import entry_points

import attrs

from loram_core.errors import LoramError

CHECKED_KINDS = ("pruner", "quantizer", "aligner", "recoverer", "evaluator")


@attrs.frozen
class Target:
    kind: str
    name: str
    obj: object
    plugin: str

    @property
    def id(self) -> str:
        return f"{self.kind}:{self.name}"


def _load_entry_point(pm, name: str) -> bool:
    found = [ep for ep in entry_points(group="loram") if ep.name == name]
    if not found:
        return False
    if pm.get_plugin(name) is None:
        pm.register(found[0].load(), name=name)
        pm.check_pending()
    return True


def resolve(name: str) -> list[Target]:
    """Everything of a checked kind that NAME stands for; ``LoramError`` listing what exists otherwise."""
    from loram_core import plugins, registry

    pm = plugins.load_plugins()
    everything = {kind: registry.collect(kind) for kind in CHECKED_KINDS}
    if pm.get_plugin(name) is not None or _load_entry_point(pm, name):
        everything = {kind: registry.collect(kind) for kind in CHECKED_KINDS}
        found = [Target(kind, n, r.obj, r.plugin) for kind, items in everything.items()
                 for n, r in sorted(items.items()) if r.plugin == name and n == r.obj.name]
        if not found:
            raise LoramError(f"plugin '{name}' registers no pruner, quantizer, aligner, recoverer or evaluator to check")
        return found
    found = [Target(kind, name, items[name].obj, items[name].plugin) for kind, items in everything.items() if name in items]
    if found:
        return found
    names = sorted({n for items in everything.values() for n in items} | {ep.name for ep in entry_points(group="loram")})
    raise LoramError(f"--loram-plugin {name}: no such plugin, entry point, pruner, quantizer, aligner, recoverer or evaluator "
                     f"(known: {', '.join(names)})")
