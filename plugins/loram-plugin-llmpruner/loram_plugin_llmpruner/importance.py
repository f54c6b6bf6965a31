"""Importance of every unit of a coupling group, as LLM-Pruner estimates it.

Per weight element (LLM-Pruner's ``TaylorImportance`` / ``MagnitudeImportance``, hf_llama_pruner.py):

- ``param_first``  ``|w * g|``, with ``g`` the gradient of the mean LM loss over the calibration samples;
- ``param_second`` ``|w * a * w|``, with ``a = mean_i g_i**2`` the diagonal Fisher approximation of the
  Hessian from per-sample gradients ``g_i`` (LLM-Pruner writes ``w * acc_grad * w``, without a 1/2);
- ``param_mix``    ``|w * g - 0.5 * w * a * w|``, the second-order Taylor expansion of the loss change;
- ``l1`` / ``l2``  ``|w|`` / ``w**2`` (LLM-Pruner's ``p``-norm importance, summed without the root).

A unit's importance in one member is the sum of its elements there (``salience.abs().sum(...)``); the
members of the group (q/k/v/o, or gate/up/down) are then aggregated by sum, mean, max or product.
"""

from __future__ import annotations

from typing import Mapping

import attrs
import torch

from loram_core.arch import CouplingGroup
from loram_core.errors import LoramError


@attrs.frozen(eq=False)
class GradientStats:
    """Calibration statistics of one weight, in fp32 and the weight's shape."""

    grad: torch.Tensor  # mean over samples of the per-sample gradient (= gradient of the mean loss)
    grad_sq: torch.Tensor | None = None  # mean over samples of the squared per-sample gradient


def element_importance(weight: torch.Tensor, criterion: str, stats: GradientStats | None = None) -> torch.Tensor:
    """Importance of every element of ``weight`` (same shape, fp32, non-negative)."""
    w = weight.detach().float()
    if criterion == "l1":
        return w.abs()
    if criterion == "l2":
        return w.square()
    if stats is None:
        raise LoramError(f"criterion '{criterion}' needs calibration gradients, and none were computed")
    first = w * stats.grad
    if criterion == "param_first":
        return first.abs()
    if stats.grad_sq is None:
        raise LoramError(f"criterion '{criterion}' needs squared per-sample gradients, and none were computed")
    second = w * stats.grad_sq * w
    if criterion == "param_second":
        return second.abs()
    if criterion == "param_mix":
        return (first - 0.5 * second).abs()
    raise LoramError(f"unknown importance criterion '{criterion}'")


def aggregate(per_member: torch.Tensor, how: str) -> torch.Tensor:
    """``[members, units]`` -> ``[units]``; ``prod`` multiplies plainly in fp64, as LLM-Pruner does
    (``torch.prod``): the ranking equals that of the sum of logs, and a zero member still gives zero."""
    per_member = per_member.double()
    if how == "sum":
        return per_member.sum(0)
    if how == "mean":
        return per_member.mean(0)
    if how == "max":
        return per_member.max(0).values
    if how == "prod":
        return per_member.prod(0)
    raise LoramError(f"unknown aggregation '{how}'")


def unit_importance(
    model,
    group: CouplingGroup,
    criterion: str,
    aggregation: str,
    stats: Mapping[str, GradientStats] | None = None,
) -> torch.Tensor:
    """One fp64 score per unit of ``group``: element importance summed per member, then aggregated."""
    from loram_core.plan.layout import out_in_weight

    per_member = []
    for member in group.members:
        module = model.get_submodule(member.module)
        member_stats = None if stats is None else stats.get(member.module)
        elements = element_importance(module.weight, criterion, member_stats)
        # Units are contiguous, unit-major blocks of rows ("out") or columns ("in") of W seen as (out, in),
        # inside the member's segment of a fused module.
        per_member.append(group.member_view(member, out_in_weight(module, elements)).sum(1, dtype=torch.float64))
    return aggregate(torch.stack(per_member), aggregation)


def expert_channel_importance(model, group, criterion: str, aggregation: str,
                              stats: Mapping[str, GradientStats] | None = None) -> torch.Tensor:
    """[experts, channels] fp64: each expert's channel importance, its gate row, up row and down column
    summed per member (as a dense MLP channel's gate/up rows and down column are), then aggregated."""
    def elements(name):
        weight = model.get_parameter(name)
        return element_importance(weight, criterion, None if stats is None else stats.get(name))

    gate_up = elements(group.gate_up).sum(2, dtype=torch.float64)  # [E, 2I]
    down = elements(group.down).sum(1, dtype=torch.float64)  # [E, I]
    per_member = torch.stack([gate_up[:, : group.channels], gate_up[:, group.channels:], down])
    return aggregate(per_member, aggregation)
