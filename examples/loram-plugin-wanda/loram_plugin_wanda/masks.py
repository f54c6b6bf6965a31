"""Wanda's decision: score ``|W_ij| * ||X_j||_2`` and drop the lowest scores within each output row.

Rows are compared separately (the paper's "per output" comparison group), and within a row either the
lowest ``int(in * ratio)`` scores go (unstructured) or the lowest N of every M consecutive inputs (N:M).
Ties go to the lower input index (stable sort), so the mask is a function of the scores alone.
"""

from __future__ import annotations

import torch

from loram_core.errors import LoramError


def wanda_scores(weight: torch.Tensor, feature_norms: torch.Tensor) -> torch.Tensor:
    """``[out, in]`` importance: the weight's magnitude times the L2 norm of the input feature it reads."""
    if feature_norms.shape != (weight.shape[1],):
        raise LoramError(f"wanda: {feature_norms.numel()} input norms for a weight with {weight.shape[1]} inputs")
    return weight.detach().float().abs() * feature_norms.float()[None, :]


def unstructured_mask(scores: torch.Tensor, ratio: float) -> torch.Tensor:
    """Keep-mask (True keeps) removing the ``int(in * ratio)`` lowest scores of every row."""
    removed = int(scores.shape[1] * ratio)
    mask = torch.ones_like(scores, dtype=torch.bool)
    lowest = torch.argsort(scores, dim=1, stable=True)[:, :removed]
    return mask.scatter_(1, lowest, False)


def nm_mask(scores: torch.Tensor, n: int, m: int, module: str = "") -> torch.Tensor:
    """Keep-mask removing the ``n`` lowest scores of every ``m`` consecutive inputs of a row."""
    out_features, in_features = scores.shape
    if in_features % m:
        raise LoramError(f"wanda: {module} has {in_features} inputs, not a multiple of {m} for {n}:{m}")
    grouped = scores.reshape(out_features, in_features // m, m)
    lowest = torch.argsort(grouped, dim=-1, stable=True)[..., :n]
    mask = torch.ones_like(grouped, dtype=torch.bool).scatter_(-1, lowest, False)
    return mask.reshape(out_features, in_features)
