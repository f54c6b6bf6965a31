"""loram: train small, infer large.

The core owns the lifecycle and the mask/index protocol; strategies come from plugins.
"""

from loram_core.hookspecs import hookimpl

__version__ = "0.1.0"

__all__ = ["hookimpl", "__version__"]
