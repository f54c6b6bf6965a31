"""Recovery fill methods: what goes where the pruned model had no rows/columns (docs/architecture.md, "Recovery")."""

from __future__ import annotations

import attrs
import torch

from loram_core import hookimpl


@attrs.frozen
class ZeroFill:
    """Zeros: the recovered delta is the pruned delta on kept rows/columns and exactly zero elsewhere."""

    name: str = "zero"
    description: str = "zeros at pruned positions (the reference code's zeroA, default)"

    def fill(self, shape, *, factor: str, dtype, generator=None) -> torch.Tensor:
        return torch.zeros(shape, dtype=dtype)


@attrs.frozen
class NormalFill:
    """The reference code's normA: pruned lora_A columns drawn from N(0, 1/r); lora_B rows stay zero."""

    name: str = "normal"
    description: str = "N(0, std=1/r) in pruned lora_A columns, zeros in lora_B rows (the reference normA)"

    def fill(self, shape, *, factor: str, dtype, generator=None) -> torch.Tensor:
        if factor != "lora_A":
            return torch.zeros(shape, dtype=dtype)
        rank = shape[0]
        return torch.randn(shape, generator=generator, dtype=torch.float32).mul_(1.0 / rank).to(dtype)


@hookimpl
def register_recoverers(register):
    register(ZeroFill())
    register(NormalFill())
