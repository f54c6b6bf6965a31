"""A pruner in one small file: keep the lowest-numbered KV groups and MLP channels.

Make it installable with three lines of pyproject.toml:

    [project]
    name = "loram-plugin-keepfirst"
    version = "0.1.0"
    [project.entry-points.loram]
    keep-first = "keep_first_pruner"

then `pip install .` and `loram run --pruner keep-first ...`. The core turns the unit scores into a
`PrunePlan`, validates the couplings, applies it, and recovers the adapter: the pruner only decides.
"""

import attrs
import torch

from loram_core import hookimpl
from loram_core.plan import PrunerInfo
from loram_core.structured import StructuredConfig, structured_plan


@attrs.frozen
class KeepFirstPruner:
    name: str = "keep-first"
    config_cls: type = StructuredConfig  # ratio, layers, attention, mlp
    version: str = "0.1.0"

    def plan(self, model, config, context):
        # Higher score = kept. Each coupling group is a layer's KV groups or its MLP channels.
        score = lambda group: -torch.arange(group.units, dtype=torch.float32)
        return structured_plan(model, config, context, PrunerInfo(self.name, self.version), score)


@hookimpl
def register_pruners(register):
    register(KeepFirstPruner())
