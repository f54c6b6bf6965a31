"""Router statistics for whole-expert pruning: how often each expert is among a token's top-k on calibration
data. The decoder is streamed layer by layer (``layer_stream``), so a model on the meta device is read from
its checkpoint one layer at a time."""

from __future__ import annotations

import torch

from loram_core.arch import ExpertGroup


def expert_usage(model, groups: list[ExpertGroup], tokens: torch.Tensor, *, reader=None,
                 batch_size: int = 4) -> dict[str, torch.Tensor]:
    """``{group name: selections per expert}`` (float64) over every token of ``tokens`` [samples, seq_len]."""
    from loram_core.layer_stream import stream_layers

    counts = {g.name: torch.zeros(g.experts, dtype=torch.float64) for g in groups}
    by_layer = {g.layer: g for g in groups}
    if not by_layer:
        return counts
    hooks = []

    def visit(index, prefix, layer, _run):
        group = by_layer.get(index)
        if group is None:
            return
        router = layer.get_submodule(group.router.removeprefix(f"{prefix}.").rpartition(".")[0])

        def count(_module, _inputs, outputs):
            # transformers' routers return (logits, top-k weights, top-k expert indices)
            counts[group.name] += torch.bincount(outputs[-1].flatten(), minlength=group.experts).double()

        hooks.append(router.register_forward_hook(count))  # counts during the pass that feeds the next layer

    def after(_index):
        while hooks:
            hooks.pop().remove()

    try:
        stream_layers(model, tokens, stop=max(by_layer) + 1, batch_size=batch_size, reader=reader, visit=visit,
                      after=after)
    finally:
        after(None)
    return counts
