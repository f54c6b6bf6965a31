"""Structured magnitude pruning: keep the KV groups and MLP channels whose coupled weights have the largest L2 norm."""

from __future__ import annotations

import attrs
import torch

from loram_core import __version__, hookimpl
from loram_core.arch import ExpertGroup
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
            if isinstance(group, ExpertGroup):
                return expert_channel_norms(model, group, reader)
            # Sum of squares over every member's slice of the unit, then the root: one L2 norm per unit.
            slices = group.weight_slices(model, reader)
            return torch.stack([w.float().pow(2).sum(1) for w in slices]).sum(0).sqrt()

        return structured_plan(model, config, context, info, score)


def expert_channel_norms(model, group: ExpertGroup, reader=None) -> torch.Tensor:
    """[experts, channels]: the L2 norm of each expert's gate row, up row and down column of each channel."""
    def tensor(name):
        owner, _, attr = name.rpartition(".")
        value = getattr(model.get_submodule(owner), attr)
        return (reader.get(name) if value.is_meta else value).detach().float()

    gate_up, down = tensor(group.gate_up), tensor(group.down)  # [E, 2I, H], [E, H, I]
    squares = gate_up.pow(2).sum(2)  # [E, 2I]
    return (squares[:, : group.channels] + squares[:, group.channels:] + down.pow(2).sum(1)).sqrt()


@hookimpl
def register_pruners(register):
    register(MagnitudePruner())
