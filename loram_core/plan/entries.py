"""Module entries of a plan: a slice (structured, shapes shrink) or a mask (N:M / unstructured, shapes stay)."""

from __future__ import annotations

import re

import attrs
import torch

from loram_core.errors import PlanError

_NM = re.compile(r"^(\d+):(\d+)$")


def _shape(value) -> tuple[int, int]:
    try:
        shape = tuple(int(x) for x in value)
    except (TypeError, ValueError):
        raise PlanError(f"a weight shape must be two integers, got {value!r}") from None
    if len(shape) != 2 or min(shape) <= 0:
        raise PlanError(f"a weight shape must be two positive integers (out, in), got {shape}")
    return shape


def _index(value) -> torch.Tensor | None:
    if value is None:
        return None
    return torch.as_tensor(value, dtype=torch.int64).flatten()


def check_pattern(pattern: str) -> str:
    """``structured``, ``unstructured`` or ``N:M`` with 0 < N < M."""
    if pattern in ("structured", "unstructured"):
        return pattern
    m = _NM.match(pattern)
    if not m or not 0 < int(m.group(1)) < int(m.group(2)):
        raise PlanError(f"pattern '{pattern}' is not 'structured', 'unstructured' or N:M with 0 < N < M")
    return pattern


def check_index(name: str, axis: str, idx: torch.Tensor, size: int) -> None:
    """A keep index: not empty, inside ``[0, size)``, sorted and unique."""
    if idx.numel() == 0:
        raise PlanError(f"{name}: {axis} keeps nothing of {size}")
    if int(idx.min()) < 0 or int(idx.max()) >= size:
        raise PlanError(f"{name}: {axis} has indices outside [0, {size})")
    if idx.numel() > 1 and not bool((idx[1:] > idx[:-1]).all()):
        raise PlanError(f"{name}: {axis} must be sorted and unique")


@attrs.frozen(eq=False)
class SliceEntry:
    """Keep rows ``keep_out`` and columns ``keep_in`` (sorted, unique) of a weight of ``shape`` (out, in)."""

    shape: tuple[int, int] = attrs.field(converter=_shape)
    keep_out: torch.Tensor | None = attrs.field(default=None, converter=_index)
    keep_in: torch.Tensor | None = attrs.field(default=None, converter=_index)
    kind = "slice"

    @property
    def pruned_shape(self) -> tuple[int, int]:
        out = self.shape[0] if self.keep_out is None else len(self.keep_out)
        inp = self.shape[1] if self.keep_in is None else len(self.keep_in)
        return out, inp

    def check(self, module: str) -> None:
        for axis, idx, size in (("keep_out", self.keep_out, self.shape[0]), ("keep_in", self.keep_in, self.shape[1])):
            if idx is not None:
                check_index(module, axis, idx, size)
        if self.keep_out is None and self.keep_in is None:
            raise PlanError(f"{module}: slice entry keeps everything; leave the module out of the plan")

    def equals(self, other) -> bool:
        same = lambda a, b: (a is None and b is None) or (a is not None and b is not None and torch.equal(a, b))
        return (
            isinstance(other, SliceEntry)
            and self.shape == other.shape
            and same(self.keep_out, other.keep_out)
            and same(self.keep_in, other.keep_in)
        )


@attrs.frozen(eq=False)
class MaskEntry:
    """A boolean mask of the weight's shape: True keeps a weight, False zeroes it."""

    mask: torch.Tensor = attrs.field(converter=lambda m: torch.as_tensor(m).to(torch.bool))
    pattern: str = attrs.field(converter=check_pattern)
    kind = "mask"

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.mask.shape)

    @property
    def pruned_shape(self) -> tuple[int, int]:
        return self.shape

    @property
    def kept(self) -> int:
        return int(self.mask.sum())

    def check(self, module: str) -> None:
        if self.mask.dim() != 2:
            raise PlanError(f"{module}: mask must be 2-D, found shape {tuple(self.mask.shape)}")
        m = _NM.match(self.pattern)
        if m:
            n, group = int(m.group(1)), int(m.group(2))
            if self.mask.shape[1] % group:
                raise PlanError(f"{module}: {self.pattern} needs in_features divisible by {group}")
            zeros = (~self.mask).reshape(self.mask.shape[0], -1, group).sum(-1)
            if bool((zeros < n).any()):
                raise PlanError(f"{module}: mask breaks {self.pattern} (a group of {group} has fewer than {n} zeros)")

    def equals(self, other) -> bool:
        return isinstance(other, MaskEntry) and self.pattern == other.pattern and torch.equal(self.mask, other.mask)


Entry = SliceEntry | MaskEntry
