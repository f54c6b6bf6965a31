"""LoRAM-Rand: remove a random fraction of KV groups and MLP channels per layer, seeded."""

from __future__ import annotations

import zlib

import attrs
import torch

from loram_core import __version__, hookimpl
from loram_core.arch import ExpertGroup
from loram_core.plan import PrunerInfo
from loram_core.structured import StructuredConfig, structured_plan


@attrs.frozen
class RandomStructuredPruner:
    name: str = "random"
    config_cls: type = StructuredConfig
    pattern: str = "structured"
    description: str = "random whole KV groups and MLP channels, and experts' channels (LoRAM-Rand)"
    streaming: bool = True  # needs shapes only: the meta skeleton is enough, no weight is ever read

    def plan(self, model, config: StructuredConfig, context):
        info = PrunerInfo(self.name, __version__, {**attrs.asdict(config), "seed": context.seed})

        def generator(group, what: str = ""):
            # One generator per group, seeded by (seed, layer, kind): the plan does not depend on visit order.
            return torch.Generator().manual_seed(zlib.crc32(f"{context.seed}:{group.layer}:{group.kind}{what}".encode()))

        def score(group):
            if isinstance(group, ExpertGroup):  # each expert's own channels
                return torch.rand(group.experts, group.channels, generator=generator(group))
            return torch.rand(group.units, generator=generator(group))

        def expert_score(groups):  # whole experts at random too
            return {g.name: torch.rand(g.experts, generator=generator(g, ":experts")) for g in groups}

        return structured_plan(model, config, context, info, score, expert_score)


@hookimpl
def register_pruners(register):
    register(RandomStructuredPruner())
