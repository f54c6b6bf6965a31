"""Input statistics of Linear modules: ``Σ x xᵀ`` over every calibration token each one sees.

SparseGPT's Hessian is ``H = 2 X Xᵀ``; the sum is kept unscaled (fp32, as the reference) with the token
count, so the same numbers give both the Hessian and the exact reconstruction error ‖(W − Ŵ) X‖².
Modules fed the very same tensor (q/k/v after the attention norm, gate/up after the MLP norm) share the
product: it is computed once per forward and added to each.
"""

from __future__ import annotations

import torch
from torch import nn


class InputStatistics:
    """Forward pre-hooks on ``modules`` (full name -> Linear) while used as a context manager."""

    def __init__(self, modules: dict[str, nn.Linear]):
        self.modules = dict(modules)
        self.xtx: dict[str, torch.Tensor] = {}
        self.tokens: dict[str, int] = {name: 0 for name in self.modules}
        self._handles: list = []
        self._last: tuple[torch.Tensor, torch.Tensor] | None = None  # (input, its x xᵀ): reused by identity

    def _hook(self, name: str):
        def record(module, args):
            x = args[0]
            if self._last is not None and self._last[0] is x:
                product = self._last[1]
            else:
                flat = x.detach().reshape(-1, x.shape[-1]).to(torch.float32)
                product = flat.T @ flat
                self._last = (x, product)
            if name in self.xtx:
                self.xtx[name].add_(product)
            else:
                self.xtx[name] = product.clone()
            self.tokens[name] += x[..., 0].numel()

        return record

    def __enter__(self) -> InputStatistics:
        self._handles = [m.register_forward_pre_hook(self._hook(n)) for n, m in self.modules.items()]
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles, self._last = [], None
