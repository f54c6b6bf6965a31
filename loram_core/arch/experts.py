"""Expert groups: one mixture-of-experts block, whose experts live in fused 3-D parameters.

Every kept expert keeps the same number of its own intermediate channels (the tensors stay rectangular), with
its own indices: the same channels ``c`` in its gate rows ``c``, its up rows ``intermediate + c`` (``gate_up``
holds gate rows, then up rows, as transformers' ``chunk(2)`` splits them) and its ``down`` columns ``c``.
Removing a whole expert drops its slice of both tensors and its row of the router's weight.
"""

from __future__ import annotations

import math

import attrs
import torch


@attrs.frozen
class ExpertGroup:
    name: str  # the block, e.g. "model.layers.3.mlp"
    layer: int
    experts: int
    channels: int  # intermediate channels per expert
    gate_up: str  # parameter [experts, 2 x channels, hidden]
    down: str  # parameter [experts, hidden, channels]
    router: str  # parameter [experts, hidden]
    top_k: int  # experts each token is routed to: at least this many are kept
    kind = "experts"

    def removed_channels(self, ratio: float) -> int:
        """Channels removed from every expert at ``ratio`` (as the dense MLP: ceil, at least one kept)."""
        return min(math.ceil(self.channels * ratio), self.channels - 1)

    def removed_experts(self, ratio: float) -> int:
        """Whole experts removed at ``ratio`` (floor), keeping at least ``top_k``."""
        return min(math.floor(self.experts * ratio), self.experts - self.top_k)

    def gate_up_rows(self, channels: torch.Tensor) -> torch.Tensor:
        """[experts, k] channels -> [experts, 2k] rows of ``gate_up``: the gate rows, then the up rows."""
        return torch.cat([channels, channels + self.channels], dim=1)

    def channels_of(self, gate_up_rows: torch.Tensor) -> torch.Tensor | None:
        """The inverse of ``gate_up_rows``, or None if gate and up keep different channels."""
        half = gate_up_rows.shape[1] // 2
        if gate_up_rows.shape[1] % 2 or not torch.equal(gate_up_rows[:, half:], gate_up_rows[:, :half] + self.channels):
            return None
        return gate_up_rows[:, :half]


def is_mixture(config) -> bool:
    """Whether ``config``'s family has expert groups (pruners that handle only Linear modules refuse it)."""
    from loram_core.arch.groups import adapter_for

    return getattr(adapter_for(config), "expert_groups", None) is not None


def layer_expert_groups(adapter, config, layer: int) -> list[ExpertGroup]:
    """The layer's expert groups (none for a dense family)."""
    groups = getattr(adapter, "expert_groups", None)
    return groups(config, layer) if groups is not None else []
