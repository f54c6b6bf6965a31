"""loram-plugin-wanda: the ``wanda`` pruner, written against loram's public plugin API only (docs/plugins.md)."""

from loram_core import hookimpl
from loram_plugin_wanda.config import WandaConfig
from loram_plugin_wanda.pruner import WandaPruner, __version__

__all__ = ["WandaConfig", "WandaPruner", "__version__", "register_pruners"]


@hookimpl
def register_pruners(register):
    register(WandaPruner())
