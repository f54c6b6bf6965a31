"""Structured magnitude pruning: keep the KV groups and MLP channels whose coupled weights have the largest L2 norm."""

from __future__ import annotations

import attrs
import torch

from loram_core import __version__, hookimpl
from loram_core.plan import PrunerInfo
from loram_core.structured import StructuredConfig, structured_plan


@attrs.frozen
class MagnitudePruner:
    name: str = "magnitude"
    config_cls: type = StructuredConfig
    pattern: str = "structured"
    description: str = "L2 norm of each KV group's / MLP channel's weights across its coupled modules"

    def plan(self, model, config: StructuredConfig, context):
        info = PrunerInfo(self.name, __version__, attrs.asdict(config))

        def score(group):
            # Sum of squares over every member's slice of the unit, then the root: one L2 norm per unit.
            return torch.stack([w.float().pow(2).sum(1) for w in group.weight_slices(model)]).sum(0).sqrt()

        return structured_plan(model, config, context, info, score)


@hookimpl
def register_pruners(register):
    register(MagnitudePruner())
