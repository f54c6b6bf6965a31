"""Plan entries for parameters with an expert axis (transformers 5 fuses a mixture's experts into 3-D
parameters: Mixtral's ``experts.gate_up_proj`` is [experts, 2 x intermediate, hidden], ``experts.down_proj``
[experts, hidden, intermediate]; the router's weight is [experts, hidden]).

An ``ExpertEntry`` keeps whole experts (``keep_experts``) and, inside every kept expert, its own rows and/or
columns, the same number for every expert so the tensor stays rectangular: ``keep_out`` / ``keep_in`` are
[kept experts, kept channels], one sorted row of indices per expert. Keyed by the parameter's full name.
"""

from __future__ import annotations

import attrs
import torch

from loram_core.errors import PlanError
from loram_core.plan.entries import check_index


def _shape(value) -> tuple[int, ...]:
    try:
        shape = tuple(int(x) for x in value)
    except (TypeError, ValueError):
        raise PlanError(f"an expert parameter's shape must be integers, got {value!r}") from None
    if len(shape) not in (2, 3) or min(shape) <= 0:
        raise PlanError(f"an expert parameter's shape is (experts, out, in) or (experts, in), got {shape}")
    return shape


def _experts(value) -> torch.Tensor | None:
    return None if value is None else torch.as_tensor(value, dtype=torch.int64).flatten()


def _rows(value):
    """[experts, k] indices; rows of unequal length stay a tuple, which ``check`` rejects (not rectangular)."""
    if value is None:
        return None
    if isinstance(value, torch.Tensor):
        return value.to(torch.int64).reshape(value.shape[0], -1) if value.dim() else value.to(torch.int64)
    rows = tuple(torch.as_tensor(r, dtype=torch.int64).flatten() for r in value)
    if len({r.numel() for r in rows}) > 1:
        return rows
    return torch.stack(rows) if rows else torch.empty(0, 0, dtype=torch.int64)


@attrs.frozen(eq=False)
class ExpertEntry:
    shape: tuple[int, ...] = attrs.field(converter=_shape)
    keep_experts: torch.Tensor | None = attrs.field(default=None, converter=_experts)
    keep_out: torch.Tensor | None = attrs.field(default=None, converter=_rows)
    keep_in: torch.Tensor | None = attrs.field(default=None, converter=_rows)
    kind = "experts"

    @property
    def experts(self) -> int:
        return self.shape[0] if self.keep_experts is None else len(self.keep_experts)

    @property
    def pruned_shape(self) -> tuple[int, ...]:
        dims = list(self.shape)
        dims[0] = self.experts
        if len(dims) == 3:
            dims[1] = dims[1] if self.keep_out is None else self.keep_out.shape[1]
            dims[2] = dims[2] if self.keep_in is None else self.keep_in.shape[1]
        return tuple(dims)

    def check(self, name: str) -> None:
        if self.keep_experts is not None:
            check_index(name, "keep_experts", self.keep_experts, self.shape[0])
        for axis, idx, dim in (("keep_out", self.keep_out, 1), ("keep_in", self.keep_in, 2)):
            if idx is None:
                continue
            if len(self.shape) != 3:
                raise PlanError(f"{name}: {axis} needs an (experts, out, in) parameter, this one is {self.shape}")
            if isinstance(idx, tuple):
                counts = sorted({r.numel() for r in idx})
                raise PlanError(f"{name}: {axis}: experts keep {', '.join(map(str, counts))} channels; every expert "
                                "must keep the same number (the tensor stays rectangular)")
            if idx.dim() != 2 or idx.shape[0] != self.experts:
                raise PlanError(f"{name}: {axis} must hold one row of indices per kept expert ({self.experts}), "
                                f"found shape {tuple(idx.shape)}: every expert keeps the same number (rectangular)")
            for row in idx:
                check_index(name, axis, row, self.shape[dim])
        if self.keep_experts is None and self.keep_out is None and self.keep_in is None:
            raise PlanError(f"{name}: expert entry keeps everything; leave the parameter out of the plan")

    def equals(self, other) -> bool:
        same = lambda a, b: (a is None and b is None) or (a is not None and b is not None and torch.equal(a, b))
        return (isinstance(other, ExpertEntry) and self.shape == other.shape
                and all(same(getattr(self, a), getattr(other, a)) for a in ("keep_experts", "keep_out", "keep_in")))

    def apply(self, tensor: torch.Tensor) -> torch.Tensor:
        """The pruned parameter: kept experts, then each expert's kept rows and columns (gathered, vectorized)."""
        if tuple(tensor.shape) != self.shape:
            raise PlanError(f"expert entry expects shape {self.shape}, the parameter has {tuple(tensor.shape)}")
        if self.keep_experts is not None:
            tensor = tensor.index_select(0, self.keep_experts.to(tensor.device))
        if self.keep_out is not None:
            rows = self.keep_out.to(tensor.device)[:, :, None].expand(-1, -1, tensor.shape[2])
            tensor = tensor.gather(1, rows)
        if self.keep_in is not None:
            cols = self.keep_in.to(tensor.device)[:, None, :].expand(-1, tensor.shape[1], -1)
            tensor = tensor.gather(2, cols)
        return tensor.contiguous()
