"""The causal-LM training loss, optionally computed in chunks of tokens so the logits never exist whole.

With a 49k vocabulary the logits of one 4 x 128 batch are 100 MB in fp32, and cross-entropy keeps about three
such tensors alive in backward; on a small pruned model that is more than its weights. ``loss_chunk = N``
feeds the output head N positions at a time under activation checkpointing: only one chunk's logits exist at
once, in forward and in backward. The result equals the model's own mean token loss up to float summation
order (tested).
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from loram_core.data.encode import IGNORE
from loram_core.data.packing import Batch


def causal_lm_loss(model, batch: torch.Tensor, loss_chunk: int = 0) -> torch.Tensor:
    """Mean next-token cross-entropy of ``batch`` (``[B, T]`` token ids, labels = inputs shifted by one)."""
    return token_nll(model, Batch(batch, batch), loss_chunk) / (batch.shape[0] * (batch.shape[1] - 1))


def token_nll(model, batch: Batch, loss_chunk: int = 0) -> torch.Tensor:
    """The summed next-token cross-entropy over the trained tokens of ``batch`` (labels ``IGNORE`` elsewhere;
    position ids, where given, keep packed examples apart). The loop divides by the step's trained tokens."""
    labels = batch.labels[:, 1:].reshape(-1)
    if not loss_chunk:
        logits = model(input_ids=batch.input_ids, position_ids=batch.position_ids, use_cache=False).logits
        return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(), labels, ignore_index=IGNORE,
                               reduction="sum")
    head = model.get_output_embeddings()
    with _capture_head_input(head) as captured:
        # The model runs whole (under DDP its wrapper's forward must run for gradient sync); the head sees one
        # position, and the hook keeps the full final hidden states for the chunked loss below.
        model(input_ids=batch.input_ids, position_ids=batch.position_ids, use_cache=False)
    hidden = captured[0][:, :-1, :].reshape(-1, captured[0].shape[-1])
    total = hidden.new_zeros((), dtype=torch.float32)
    for start in range(0, labels.numel(), loss_chunk):
        end = start + loss_chunk
        total = total + checkpoint(_chunk_nll, hidden[start:end], labels[start:end], head, use_reentrant=False)
    return total


def _chunk_nll(hidden: torch.Tensor, labels: torch.Tensor, head) -> torch.Tensor:
    return F.cross_entropy(head(hidden).float(), labels, ignore_index=IGNORE, reduction="sum")


@contextlib.contextmanager
def _capture_head_input(head):
    captured: list[torch.Tensor] = []

    def keep_and_shrink(_module, args):
        captured.append(args[0])
        return (args[0][:, :1, :],) + tuple(args[1:])

    handle = head.register_forward_pre_hook(keep_and_shrink)
    try:
        yield captured
    finally:
        handle.remove()
