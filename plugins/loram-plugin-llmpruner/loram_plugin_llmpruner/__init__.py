"""loram-plugin-llmpruner: the ``llmpruner`` structured pruner (LoRAM-Stru), after LLM-Pruner."""

from loram_core import hookimpl
from loram_plugin_llmpruner.config import LLMPrunerConfig
from loram_plugin_llmpruner.pruner import LLMPruner
from loram_plugin_llmpruner.version import __version__

__all__ = ["LLMPruner", "LLMPrunerConfig", "__version__", "register_pruners"]


@hookimpl
def register_pruners(register):
    register(LLMPruner())
