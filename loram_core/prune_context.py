"""``PruneContext``: what the prune stage hands a pruner besides the model (``loram_core.protocols.Pruner``)."""

from __future__ import annotations

from typing import Any, Callable

import attrs


@attrs.frozen
class PruneContext:
    """What a pruner may use besides the model: its config, family adapter, fingerprint, seed and data."""

    model_config: Any
    arch: Any  # a loram_core.protocols.ArchitectureFamily
    fingerprint: Any
    seed: int = 0
    # calibration(samples=None, seq_len=None, data=None) -> LongTensor [samples, seq_len]; data-driven pruners
    calibration: Callable[..., Any] | None = None
    progress: bool = True
    tokenizer: Any = None
    model_path: str | None = None  # the original's local folder or hub id, for pruners that stream layers
    weights: Any = None  # a WeightStore: reconstructed weights for planned modules (e.g. SparseGPT's update)
