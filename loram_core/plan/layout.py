"""Prunable modules and their weight layout: ``nn.Linear`` stores (out, in); transformers' ``Conv1D`` (GPT-2)
stores the transpose, (in, out). Plans, scores and LoRA factors speak (out, in) throughout; only this module
knows how a weight is stored, so a transposed layout costs the rest of loram nothing."""

from __future__ import annotations

import torch
from torch import nn


def _conv1d():
    from transformers.pytorch_utils import Conv1D

    return Conv1D


def is_prunable(module) -> bool:
    """A module whose weight a plan may slice or mask."""
    return isinstance(module, (nn.Linear, _conv1d()))


def is_transposed(module) -> bool:
    return isinstance(module, _conv1d())


def out_in_shape(module) -> tuple[int, int]:
    shape = tuple(module.weight.shape)
    return shape[::-1] if is_transposed(module) else shape


def out_in_weight(module, weight: torch.Tensor | None = None) -> torch.Tensor:
    """``weight`` (the module's own by default), stored as the module stores it, seen as (out, in)."""
    weight = module.weight if weight is None else weight
    return weight.t() if is_transposed(module) else weight


def stored(module, tensor: torch.Tensor) -> torch.Tensor:
    """An (out, in) tensor in the module's storage layout (the inverse of ``out_in_weight``)."""
    return tensor.t() if is_transposed(module) else tensor


def resized(module, shape: tuple[int, int], device=None):
    """An empty module of ``module``'s kind, bias and dtype with (out, in) ``shape``."""
    device = device or module.weight.device
    if is_transposed(module):
        with torch.device(device):  # on meta, no memory and no init
            return _conv1d()(shape[0], shape[1]).to(module.weight.dtype)  # Conv1D(nf=out, nx=in); always a bias
    return nn.Linear(shape[1], shape[0], bias=module.bias is not None, device=device, dtype=module.weight.dtype)
