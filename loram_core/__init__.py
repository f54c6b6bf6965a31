"""loram: train small, infer large.

The core owns the lifecycle and the mask/index protocol; strategies come from plugins, each kind's contract a
``typing.Protocol`` in ``loram_core.protocols``.
"""

from loram_core.hookspecs import hookimpl
from loram_core.prune_context import PruneContext
from loram_core.protocols import (Aligner, ArchitectureFamily, Dataset, ModelAlias, Pruner, Quantizer, Recoverer,
                                  TaskEvaluator)

__version__ = "0.1.0"


def run(out, stages=None, *, progress: bool = False, overwrite: bool = False, preflight: bool = True, **settings):
    """Run the lifecycle (or ``stages``, names of ``lifecycle.stages.STAGES``) into the run directory ``out``.

    ``settings`` are ``RunSettings`` fields (``model=``, ``data=``, ``pruner=``, ``ratio=``, ``steps=``, ...),
    validated before anything is written; returns the run report. The CLI's ``loram run`` is this call.
    """
    from loram_core.lifecycle.runner import run_lifecycle
    from loram_core.lifecycle.settings import make_settings

    return run_lifecycle(out, make_settings(settings), stages, progress=progress, overwrite=overwrite,
                         preflight=preflight)

__all__ = [
    "Aligner",
    "ArchitectureFamily",
    "Dataset",
    "ModelAlias",
    "TaskEvaluator",
    "PruneContext",
    "Pruner",
    "Quantizer",
    "Recoverer",
    "__version__",
    "hookimpl",
    "run",
]
