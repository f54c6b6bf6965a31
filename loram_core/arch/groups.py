"""Coupling groups: a unit (a KV group with its query heads, an MLP channel) spans several modules' axes."""

from __future__ import annotations

import math

import attrs
import torch

from loram_core.errors import LoramError


@attrs.frozen
class GroupMember:
    module: str  # full module name, e.g. "model.layers.4.self_attn.q_proj"
    axis: str  # "out" (rows of W) or "in" (columns of W)
    unit_size: int  # channels one unit spans on that axis (contiguous, unit-major)


@attrs.frozen
class CouplingGroup:
    name: str  # e.g. "model.layers.4.self_attn"
    kind: str  # "attention" | "mlp"
    layer: int
    units: int
    members: tuple[GroupMember, ...]
    # How a ratio turns into a count of removed units: the paper removes int(KV*r) KV heads, ceil(I*r) channels.
    rounding: str = "floor"

    def removed(self, ratio: float, align_to: int = 1) -> int:
        """Units removed at ``ratio``; with ``align_to`` > 1, every member's kept width is made a multiple of it."""
        n = math.floor(self.units * ratio) if self.rounding == "floor" else math.ceil(self.units * ratio)
        n = min(n, self.units - 1)  # never remove a whole group: the layer would have no width left
        if align_to == 1 or n == 0:
            return n
        return self.units - self.aligned_keep(self.units - n, align_to)

    def unit_step(self, align_to: int) -> int:
        """The fewest units whose channels are a multiple of ``align_to`` on every member's axis."""
        return math.lcm(*(align_to // math.gcd(align_to, m.unit_size) for m in self.members))

    def aligned_keep(self, keep: int, align_to: int) -> int:
        """``keep`` rounded to the nearest multiple of ``unit_step`` (ties keep more), at least one step and at
        most every unit (a dense width that is not a multiple stays as it is)."""
        step = self.unit_step(align_to)
        return min(max(step, (keep + step // 2) // step * step), self.units)

    def channels(self, member: GroupMember, units: torch.Tensor) -> torch.Tensor:
        """Sorted channel indices of ``units`` along ``member``'s axis (vectorized, no Python loop)."""
        units = torch.as_tensor(units, dtype=torch.int64).sort().values
        offsets = torch.arange(member.unit_size, dtype=torch.int64)
        return (units[:, None] * member.unit_size + offsets).flatten()

    def units_of(self, member: GroupMember, channels: torch.Tensor) -> torch.Tensor | None:
        """The units that ``channels`` cover whole, or None if they cut through a unit."""
        if channels.numel() % member.unit_size:
            return None
        blocks = channels.view(-1, member.unit_size)
        units = blocks[:, 0] // member.unit_size
        if not torch.equal(blocks, units[:, None] * member.unit_size + torch.arange(member.unit_size)):
            return None
        return units

    def weight_slices(self, model, reader=None) -> list[torch.Tensor]:
        """Each member's weight viewed as [units, -1], for importance scores over whole units.

        A streamed (meta-device) model's weights come from ``reader`` (a ``CheckpointReader``), read for
        this group only, so a pruner holds at most one group's weights at a time.
        """
        views = []
        for m in self.members:
            w = model.get_submodule(m.module).weight
            if w.is_meta:
                if reader is None:
                    raise LoramError(f"{m.module}: the model is on the meta device and no checkpoint reader was given")
                w = reader.get(f"{m.module}.weight")
            w = w.detach()
            w = w if m.axis == "out" else w.t()
            views.append(w.reshape(self.units, -1))
        return views


def adapter_for(config):
    """The registered architecture adapter that handles ``config.model_type``."""
    from loram_core.registry import collect

    adapters = [r.obj for r in collect("architecture").values()]
    for adapter in adapters:
        if config.model_type in adapter.model_types:
            return adapter
    known = sorted({t for a in adapters for t in a.model_types})
    raise LoramError(
        f"no architecture adapter for model_type '{config.model_type}' (supported: {', '.join(known)}); "
        "docs/plugins.md, 'register_architectures', shows how to add a family"
    )
