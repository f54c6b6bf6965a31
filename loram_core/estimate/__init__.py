"""Parameter and memory accounting from a model config alone (no weights): ``loram estimate``."""

from loram_core.estimate.memory import MemoryEstimate, estimate_train_memory
from loram_core.estimate.params import ParamEstimate, estimate_params

__all__ = ["ParamEstimate", "estimate_params", "MemoryEstimate", "estimate_train_memory"]
