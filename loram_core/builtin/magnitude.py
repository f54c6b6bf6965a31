"""Structured magnitude pruning: keep the KV groups and MLP channels whose coupled weights have the largest L2 norm."""

from __future__ import annotations

import attrs
import torch

from loram_core import __version__, hookimpl
from loram_core.checkpoint import CheckpointReader
from loram_core.plan import PrunerInfo
from loram_core.structured import StructuredConfig, structured_plan


@attrs.frozen
class MagnitudePruner:
    name: str = "magnitude"
    config_cls: type = StructuredConfig
    pattern: str = "structured"
    description: str = "L2 norm of each KV group's / MLP channel's weights across its coupled modules"
    # The core hands over a meta skeleton; each group's weights are read from the checkpoint when scored,
    # so pruning never holds more than one group's weights (a model larger than memory prunes).
    streaming: bool = True

    def plan(self, model, config: StructuredConfig, context):
        info = PrunerInfo(self.name, __version__, attrs.asdict(config))
        streamed = any(p.is_meta for p in model.parameters())
        reader = CheckpointReader.open(context.model_path) if streamed and context.model_path else None

        def score(group):
            # Sum of squares over every member's slice of the unit, then the root: one L2 norm per unit.
            slices = group.weight_slices(model, reader)
            return torch.stack([w.float().pow(2).sum(1) for w in slices]).sum(0).sqrt()

        return structured_plan(model, config, context, info, score)


@hookimpl
def register_pruners(register):
    register(MagnitudePruner())
