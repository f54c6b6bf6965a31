"""``PrunePlan``: the base model's fingerprint, the pruner that decided, and one entry per pruned module."""

from __future__ import annotations

from typing import Any, Mapping

import attrs

from loram_core.plan.entries import MaskEntry, SliceEntry, check_pattern
from loram_core.plan.experts import ExpertEntry
from loram_core.plan.fingerprint import ModelFingerprint

SCHEMA_VERSION = 1


@attrs.frozen
class PrunerInfo:
    name: str
    version: str
    params: Mapping[str, Any] = attrs.field(factory=dict, converter=dict)


def _entries(value) -> dict:
    return dict(sorted(dict(value).items()))


@attrs.frozen(eq=False)
class PrunePlan:
    base: ModelFingerprint
    pruner: PrunerInfo
    pattern: str = attrs.field(converter=check_pattern)
    # keyed by module name; an ExpertEntry by the full name of its 3-D parameter (plan/experts.py)
    entries: Mapping[str, SliceEntry | MaskEntry | ExpertEntry] = attrs.field(converter=_entries)
    schema: int = SCHEMA_VERSION

    def __attrs_post_init__(self):
        for module, entry in self.entries.items():
            entry.check(module)

    @property
    def structured(self) -> bool:
        return any(isinstance(e, (SliceEntry, ExpertEntry)) for e in self.entries.values())

    def equals(self, other: PrunePlan) -> bool:
        return (
            self.base == other.base
            and self.pruner == other.pruner
            and self.pattern == other.pattern
            and self.entries.keys() == other.entries.keys()
            and all(e.equals(other.entries[k]) for k, e in self.entries.items())
        )

    def removed_parameters(self, shapes: Mapping[str, tuple[int, int]]) -> dict[str, int]:
        """Weights removed per module: sliced rows/cols, or masked zeros (the paper's theoretical count)."""
        removed = {}
        for module, entry in self.entries.items():
            if isinstance(entry, ExpertEntry):
                removed[module] = _numel(entry.shape) - _numel(entry.pruned_shape)
                continue
            out, inp = shapes[module]
            if isinstance(entry, MaskEntry):
                removed[module] = out * inp - entry.kept
            else:
                p_out, p_in = entry.pruned_shape
                removed[module] = out * inp - p_out * p_in
        return removed


def _numel(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n
