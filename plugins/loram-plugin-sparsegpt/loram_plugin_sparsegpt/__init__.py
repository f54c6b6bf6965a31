"""loram-plugin-sparsegpt: the ``sparsegpt`` pruner (LoRAM-Unst, LoRAM-Semi) and its ``magnitude-unstructured``
baseline; both emit mask plans (shapes stay, recovery is the identity) and stream layers from disk."""

from loram_core import hookimpl
from loram_plugin_sparsegpt.config import MaskPruneConfig, SparseGPTConfig
from loram_plugin_sparsegpt.magnitude import MagnitudeMaskPruner
from loram_plugin_sparsegpt.pruner import SparseGPTPruner
from loram_plugin_sparsegpt.version import __version__

__all__ = ["MagnitudeMaskPruner", "MaskPruneConfig", "SparseGPTConfig", "SparseGPTPruner", "__version__",
           "register_pruners"]


@hookimpl
def register_pruners(register):
    register(SparseGPTPruner())
    register(MagnitudeMaskPruner())
