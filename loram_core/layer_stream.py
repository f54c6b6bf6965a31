"""Layer-by-layer driver: activations flow through the decoder one layer at a time, so the model is never in
memory whole: calibration for streaming pruners (SparseGPT) and the streamed perplexity of the original.

The model is the core's meta-device skeleton. The driver loads the
embeddings, computes the first layer's inputs and releases them; then for each decoder layer it loads the
layer's weights from the checkpoint, lets the caller look at it (collect statistics, prune it in place),
runs the possibly pruned layer to turn the activations into the next layer's inputs, and releases it.
Resident at any time: one layer, one fp32 activation buffer ``[samples, seq_len, hidden]`` (overwritten in
place, micro-batch by micro-batch) and one micro-batch's intermediates.

Each layer's keyword arguments (causal mask, rotary position embeddings, position ids) are caught from the
model's own forward with stand-ins for the layers, so masks and RoPE are built exactly as the model builds
them (sdpa's ``None`` mask, eager's tensor, sliding windows, a mask and RoPE per layer type), with no copy of
that logic here.
"""

from __future__ import annotations

import copy
from typing import Callable

import torch
from torch import nn

from loram_core.checkpoint import CheckpointReader, release_module
from loram_core.errors import LoramError

# visit(index, prefix, layer, collect): called once per decoder layer; ``collect()`` runs the layer over all
# calibration activations without keeping its outputs (for forward hooks). ``layer`` may be changed in place.
Visit = Callable[[int, str, nn.Module, Callable[[], None]], None]


class _LastLayerReached(Exception):
    pass


class _Recorder(nn.Module):
    """Stands in for one decoder layer: records what the model passes to it and hands the hidden states on
    unchanged, so one forward of the stand-ins gives every layer's own keyword arguments (models that mix
    sliding-window and full attention, as Gemma 3 does, pass each layer its own mask and rotary embeddings).
    The last one stops the forward: the final norm is still on the meta device."""

    def __init__(self, last: bool):
        super().__init__()
        self.last = last
        self.hidden: torch.Tensor | None = None
        self.kwargs: dict = {}

    def forward(self, hidden_states, *args, **kwargs):
        if args:
            raise LoramError("the decoder passes positional arguments to its layers; layer streaming needs keywords")
        self.hidden, self.kwargs = hidden_states, kwargs
        if self.last:
            raise _LastLayerReached
        return hidden_states


def decoder_layers(model) -> nn.ModuleList:
    try:
        layers = model.get_submodule("model.layers")
    except AttributeError:
        raise LoramError(f"{type(model).__name__} ({model.config.model_type}) has no decoder layers at 'model.layers': "
                         "layer streaming supports the llama and phi3 families") from None
    return layers


class WeightLoader:
    """Gives a module real weights: loaded from the checkpoint when they are on meta (and released after),
    else the module itself (read only) or a private copy (to be pruned: an in-memory model never changes)."""

    def __init__(self, reader: CheckpointReader | None):
        self.reader = reader
        self._owned: set[int] = set()

    def acquire(self, module: nn.Module, prefix: str, *, private: bool) -> nn.Module:
        if any(p.is_meta for p in module.parameters()):
            if self.reader is None:
                raise LoramError(f"{prefix} has no weights in memory and there is no checkpoint to stream them from")
            module = self.reader.load_module(module, prefix)
        elif private:
            module = copy.deepcopy(module)
        else:
            return module
        self._owned.add(id(module))
        return module

    def release(self, module: nn.Module) -> None:
        if id(module) in self._owned:
            self._owned.discard(id(module))
            release_module(module)


def _batches(total: int, size: int):
    for start in range(0, total, size):
        yield slice(start, min(start + size, total))


@torch.no_grad()
def first_layer_inputs(model, ids: torch.Tensor, batch_size: int, loader: WeightLoader):
    """``(activations [samples, seq, hidden] fp32, {micro-batch size: [each layer's kwargs]})``: decoder layer 0's
    inputs, and what the model passes to every layer, from one forward with stand-ins for all of them."""
    embed = model.get_input_embeddings()
    prefix = next(n for n, m in model.named_modules() if m is embed)
    layers = decoder_layers(model)
    loader.acquire(embed, prefix, private=False)  # loaded in place: the model's forward uses it
    originals = list(layers)
    recorders = [_Recorder(last=i == len(originals) - 1) for i in range(len(originals))]
    for index, recorder in enumerate(recorders):
        layers[index] = recorder
    acts, kwargs_by_size = None, {}
    try:
        for batch in _batches(ids.shape[0], batch_size):
            try:
                model.base_model(input_ids=ids[batch], use_cache=False)
            except _LastLayerReached:
                pass
            if any(r.hidden is None for r in recorders):
                raise LoramError("the model's forward did not pass through every decoder layer")
            hidden = recorders[0].hidden
            if acts is None:
                acts = torch.empty((ids.shape[0], *hidden.shape[1:]), dtype=torch.float32)
            acts[batch] = hidden
            kwargs_by_size.setdefault(hidden.shape[0], [dict(r.kwargs) for r in recorders])
            for recorder in recorders:
                recorder.hidden = None
    finally:
        for index, layer in enumerate(originals):
            layers[index] = layer
        loader.release(embed)
    return acts, kwargs_by_size


def _run(layer: nn.Module, index: int, acts: torch.Tensor, kwargs_by_size: dict, batch_size: int, keep: bool) -> None:
    for batch in _batches(acts.shape[0], batch_size):
        hidden = acts[batch]
        out = layer(hidden, **kwargs_by_size[hidden.shape[0]][index])
        if keep:
            acts[batch] = out[0] if isinstance(out, tuple) else out


@torch.no_grad()
def stream_layers(model, ids: torch.Tensor, *, stop: int, batch_size: int, reader: CheckpointReader | None,
                  visit: Visit | None = None, after: Callable[[int], None] | None = None) -> torch.Tensor:
    """Run decoder layers ``0 .. stop-1`` on ``ids`` [samples, seq_len], each visited before it runs;
    ``after(index)`` is called once the layer's outputs are the next layer's inputs.

    Returns the activations after layer ``stop - 1`` (the decoder's hidden states before the final norm
    when ``stop`` is the number of layers).
    """
    layers = decoder_layers(model)
    if not 0 < stop <= len(layers):
        raise LoramError(f"cannot stream {stop} layers of a model with {len(layers)} decoder layers")
    was_training = model.training
    model.eval()
    loader = WeightLoader(reader)
    acts, kwargs_by_size = first_layer_inputs(model, ids, batch_size, loader)
    try:
        for index in range(stop):
            prefix = f"model.layers.{index}"
            layer = loader.acquire(layers[index], prefix, private=True)
            layer.eval()
            if visit is not None:
                visit(index, prefix, layer, lambda: _run(layer, index, acts, kwargs_by_size, batch_size, keep=False))
            _run(layer, index, acts, kwargs_by_size, batch_size, keep=True)  # the next layer sees this layer pruned
            loader.release(layer)
            if after is not None:
                after(index)
    finally:
        model.train(was_training)
    return acts
