"""Pruner ``none``: an empty plan, so "LoRA (or QLoRA) on the full original" runs through the same lifecycle.

It is the baseline the LoRAM numbers are compared with: the same loading, training, recovery (the identity,
as no module was sliced), merge and report, with ``params.reduction_ratio`` 1.0 (or 4.0 with a 4-bit quantizer).
"""

from __future__ import annotations

import attrs

from loram_core import __version__, hookimpl
from loram_core.plan import PrunePlan, PrunerInfo


@attrs.frozen
class NoPruningConfig:
    """No options: ``--ratio`` and ``--layers`` do not apply to a plan that removes nothing."""


@attrs.frozen
class NoPruning:
    name: str = "none"
    config_cls: type = NoPruningConfig
    pattern: str = "structured"  # nothing is sliced; the protocol has no "dense" pattern and needs none
    description: str = "keep every weight: the LoRA / QLoRA-on-the-full-model baseline"

    def plan(self, model, config: NoPruningConfig, context) -> PrunePlan:
        # ratio 0.0 is recorded so the report shows what was removed, whatever --ratio said
        info = PrunerInfo(self.name, __version__, {"ratio": 0.0})
        return PrunePlan(base=context.fingerprint, pruner=info, pattern=self.pattern, entries={})


@hookimpl
def register_pruners(register):
    register(NoPruning())
