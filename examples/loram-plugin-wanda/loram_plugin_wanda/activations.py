"""The calibration statistic Wanda needs: the L2 norm of every input feature of every pruned Linear.

Forward pre-hooks on the Linear modules accumulate the sum of squares of their inputs over all calibration
tokens while the model runs batch by batch; the weights are never touched. The activations are the dense
model's (the reference implementation instead feeds each layer the output of the already-pruned layers
before it; with one statistic per input feature the difference is small, and this way needs no layer driver).
"""

from __future__ import annotations

import torch


def _progress(enabled: bool):
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("[bold]wanda[/] calibration batches"),
        MofNCompleteColumn(),
        BarColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),  # stdout stays clean for --json
        disable=not enabled,
    )


@torch.no_grad()
def input_feature_norms(model, modules: list[str], tokens: torch.Tensor, batch_size: int, progress: bool = True) -> dict[str, torch.Tensor]:
    """``{module: [in_features] L2 norms}`` of the inputs each module sees on ``tokens`` ``[samples, seq_len]``."""
    sums: dict[str, torch.Tensor] = {}
    handles = []

    def accumulate(name):
        def hook(module, args):
            x = args[0].detach().reshape(-1, args[0].shape[-1]).float()
            sums[name] = sums.get(name, 0) + x.pow(2).sum(0)

        return hook

    for name in modules:
        handles.append(model.get_submodule(name).register_forward_pre_hook(accumulate(name)))
    was_training = model.training
    model.eval()
    try:
        batches = tokens.split(batch_size)
        with _progress(progress) as bar:
            task = bar.add_task("batches", total=len(batches))
            for batch in batches:
                model(input_ids=batch, use_cache=False)
                bar.advance(task)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return {name: sums[name].sqrt() for name in modules}
