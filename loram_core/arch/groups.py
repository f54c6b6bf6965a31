"""Coupling groups: a unit (a KV group with its query heads, an MLP channel) spans several modules' axes.

A member may be one segment of a fused module (Phi-3's ``qkv_proj`` holds q, k and v rows one after the
other): ``offset`` says where its segment starts, and one module then appears as several members. Weights
are seen as (out, in) whatever their storage (GPT-2's ``Conv1D`` stores them transposed; plan/layout.py).
"""

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
    offset: int = 0  # where this member's segment starts on the axis (fused modules); it spans units x unit_size


@attrs.frozen
class CouplingGroup:
    name: str  # e.g. "model.layers.4.self_attn"
    kind: str  # "attention" | "mlp"
    layer: int
    units: int
    members: tuple[GroupMember, ...]
    # How a ratio turns into a count of removed units: the paper removes int(KV*r) KV heads, ceil(I*r) channels.
    rounding: str = "floor"
    # Units fall into this many equal, contiguous blocks that each keep the same count: query heads inside
    # their KV groups (HF's repeat_kv gives every KV head the same number of query heads).
    blocks: int = 1

    @property
    def block_units(self) -> int:
        return self.units // self.blocks

    def removed(self, ratio: float, align_to: int = 1) -> int:
        """Units removed at ``ratio``; with ``align_to`` > 1, every member's kept width is made a multiple of it.
        With blocks, every block loses the same number of units and keeps at least one."""
        size = self.block_units
        n = math.floor(size * ratio) if self.rounding == "floor" else math.ceil(size * ratio)
        n = min(n, size - 1)  # never remove a whole group (or block): the layer would have no width left
        if align_to == 1 or n == 0:
            return n * self.blocks
        return self.units - self.aligned_keep(self.units - n * self.blocks, align_to)

    def unit_step(self, align_to: int) -> int:
        """The fewest units whose channels are a multiple of ``align_to`` on every member's axis."""
        return math.lcm(*(align_to // math.gcd(align_to, m.unit_size) for m in self.members))

    def aligned_keep(self, keep: int, align_to: int) -> int:
        """``keep`` rounded to the nearest multiple of ``unit_step`` (ties keep more), at least one step and at
        most every unit (a dense width that is not a multiple stays as it is)."""
        step = math.lcm(self.unit_step(align_to), self.blocks)
        return min(max(step, (keep + step // 2) // step * step), self.units)

    def keep(self, scores: torch.Tensor, count: int) -> torch.Tensor:
        """The ``count`` highest-scoring units, sorted (ties keep the lower index); with blocks, the best
        ``count / blocks`` of every block."""
        if self.blocks == 1:
            return _top(scores, count)
        per_block = count // self.blocks
        starts = torch.arange(self.blocks) * self.block_units
        chosen = [_top(block, per_block) + start for block, start in zip(scores.view(self.blocks, -1), starts)]
        return torch.cat(chosen)

    def span(self, member: GroupMember) -> tuple[int, int]:
        """``[start, end)`` of ``member``'s segment on its axis."""
        return member.offset, member.offset + self.units * member.unit_size

    def segment(self, member: GroupMember, index: torch.Tensor) -> torch.Tensor:
        """The part of a module's keep index that falls in ``member``'s segment, relative to its start."""
        start, end = self.span(member)
        return index[(index >= start) & (index < end)] - start

    def channels(self, member: GroupMember, units: torch.Tensor) -> torch.Tensor:
        """Sorted channel indices of ``units`` along ``member``'s axis (vectorized, no Python loop)."""
        units = torch.as_tensor(units, dtype=torch.int64).sort().values
        offsets = torch.arange(member.unit_size, dtype=torch.int64)
        return (units[:, None] * member.unit_size + offsets).flatten() + member.offset

    def units_of(self, member: GroupMember, channels: torch.Tensor) -> torch.Tensor | None:
        """The units that ``channels`` (a module's whole keep index) cover whole in ``member``'s segment, or
        None if they cut through a unit."""
        channels = self.segment(member, channels)
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
        from loram_core.plan.layout import out_in_weight

        views = []
        for m in self.members:
            module = model.get_submodule(m.module)
            w = module.weight
            if w.is_meta:
                if reader is None:
                    raise LoramError(f"{m.module}: the model is on the meta device and no checkpoint reader was given")
                w = reader.get(f"{m.module}.weight")
            views.append(self.member_view(m, out_in_weight(module, w.detach())))
        return views

    def member_view(self, member: GroupMember, tensor: torch.Tensor) -> torch.Tensor:
        """``member``'s segment of an (out, in) tensor shaped like its weight, as [units, -1]."""
        start, end = self.span(member)
        tensor = tensor if member.axis == "out" else tensor.t()
        return tensor[start:end].reshape(self.units, -1)


def _top(scores: torch.Tensor, count: int) -> torch.Tensor:
    order = torch.argsort(scores.double(), descending=True, stable=True)
    return order[:count].sort().values


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


ATTENTION_UNITS = ("kv_groups", "query_heads")


def family_groups(adapter, config, layer: int, attention_units: str = "kv_groups") -> list[CouplingGroup]:
    """The layer's coupling groups; with ``query_heads`` its attention groups are the family's query-head
    groups (q rows and o columns by single query heads, k and v kept), which still shrink a model whose KV
    heads cannot be removed (one KV head: multi-query attention, Gemma 3 270M)."""
    groups = adapter.groups(config, layer)
    if attention_units == "kv_groups":
        return groups
    if attention_units != "query_heads":
        raise LoramError(f"attention_units must be one of {', '.join(ATTENTION_UNITS)}, got '{attention_units}'")
    query_head_groups = getattr(adapter, "query_head_groups", None)
    if query_head_groups is None:
        raise LoramError(f"the '{adapter.name}' family defines no query-head groups; use attention_units=kv_groups")
    return [g for g in groups if g.kind != "attention"] + query_head_groups(config, layer)
