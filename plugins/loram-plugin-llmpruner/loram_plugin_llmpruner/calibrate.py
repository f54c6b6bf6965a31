"""Calibration gradients, one sample at a time, for the weights being scored and nothing else.

Memory: only the group members inside the pruned layer range require gradients, so autograd records the
graph from the first pruned layer on, and one ``[1, seq_len]`` sample's activations are alive at a time.
First order needs one gradient buffer per scored weight (``.grad`` itself accumulates the sum); second
order adds the sum and the sum of squares of the per-sample gradients.
"""

from __future__ import annotations

import contextlib
from typing import Iterable

import torch

from loram_core.errors import LoramError
from loram_plugin_llmpruner.importance import GradientStats


def progress_bar(enabled: bool, what: str):
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn(f"[bold]llmpruner[/] {what}"),
        MofNCompleteColumn(),
        BarColumn(),
        TextColumn("{task.fields[note]}"),
        TimeRemainingColumn(),
        console=Console(stderr=True),  # stdout stays clean for --json
        disable=not enabled,
    )


@contextlib.contextmanager
def gradients_only_for(model, weights: dict[str, torch.nn.Parameter]):
    """Freeze everything but ``weights``, switch off dropout; restore the flags and mode after, and leave no
    ``.grad`` behind (the buffers are as large as the scored weights)."""
    saved = {name: p.requires_grad for name, p in model.named_parameters()}
    was_training = model.training
    try:
        for p in model.parameters():
            p.requires_grad_(False)
            p.grad = None
        for p in weights.values():
            p.requires_grad_(True)
        model.eval()
        yield
    finally:
        for name, p in model.named_parameters():
            p.grad = None
            p.requires_grad_(saved[name])
        model.train(was_training)


def _weight(model, name: str) -> torch.nn.Parameter:
    """A module's weight, or a parameter by its full name (a mixture's 3-D ``experts.gate_up_proj``)."""
    try:
        return model.get_submodule(name).weight
    except AttributeError:
        return model.get_parameter(name)


def _grad(weight: torch.nn.Parameter, name: str) -> torch.Tensor:
    if weight.grad is None:
        raise LoramError(f"{name}: no gradient reached this weight; is it used by the model's forward?")
    return weight.grad.float()


def _sample_loss(model, sample: torch.Tensor, device) -> torch.Tensor:
    ids = sample.view(1, -1).to(device)
    loss = model(input_ids=ids, labels=ids, use_cache=False).loss
    if not torch.isfinite(loss):
        raise LoramError(f"calibration loss is {loss.item()} on a sample; the model or data is broken")
    return loss


def calibration_gradients(
    model,
    modules: Iterable[str],
    tokens: torch.Tensor,
    *,
    second_order: bool,
    progress: bool = True,
) -> dict[str, GradientStats]:
    """Per-module (or per-parameter: ``modules`` may name 3-D expert parameters) ``GradientStats`` over the rows
    of ``tokens`` ``[samples, seq_len]``, one backward each.

    ``grad`` is the mean of the per-sample gradients of each sample's mean token loss, which equals the
    gradient of the whole batch's mean loss (LLM-Pruner's ``loss.backward()`` on the batch), and
    ``grad_sq`` the mean of their squares (LLM-Pruner's ``acc_grad``).
    """
    if tokens.dim() != 2 or tokens.shape[0] < 1 or tokens.shape[1] < 2:
        raise LoramError(f"calibration data must be [samples >= 1, seq_len >= 2] token ids, got {tuple(tokens.shape)}")
    weights = {m: _weight(model, m) for m in modules}
    samples = tokens.shape[0]
    device = model.get_input_embeddings().weight.device  # where the token ids go in
    sums: dict[str, torch.Tensor] = {}
    squares: dict[str, torch.Tensor] = {}
    with gradients_only_for(model, weights), torch.enable_grad(), progress_bar(progress, "calibration samples") as bar:
        task = bar.add_task("samples", total=samples, note="loss -")
        for i in range(samples):
            loss = _sample_loss(model, tokens[i], device)
            loss.backward()
            if second_order:  # the per-sample gradient is needed on its own: move it out of .grad
                for name, w in weights.items():
                    g = _grad(w, name)
                    if name in sums:
                        sums[name].add_(g)
                        squares[name].addcmul_(g, g)
                    else:
                        sums[name], squares[name] = g, g.square()
                    w.grad = None
            bar.update(task, advance=1, note=f"loss {loss.item():.3f}")
        stats = {}
        for name, w in weights.items():
            total = sums[name] if second_order else _grad(w, name)
            stats[name] = GradientStats(
                grad=total / samples, grad_sq=squares[name] / samples if second_order else None
            )
    return stats
