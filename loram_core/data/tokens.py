"""Documents -> one token stream -> fixed-length blocks for training and evaluation."""

from __future__ import annotations

from typing import Iterable

import torch

from loram_core.errors import LoramError


def tokenize_documents(tokenizer, docs: Iterable[str], max_tokens: int | None = None) -> torch.Tensor:
    """One 1-D LongTensor: each document's ids followed by eos (so the model sees document ends).

    Stops after ``max_tokens`` so a large corpus is never tokenized whole when only a slice is used.
    """
    eos = tokenizer.eos_token_id
    if eos is None:
        raise LoramError("the tokenizer has no eos token, needed to separate documents")
    if max_tokens is not None and max_tokens <= 0:
        raise LoramError(f"max_tokens must be positive, got {max_tokens}")
    chunks: list[torch.Tensor] = []
    total = 0
    for doc in docs:
        # No special tokens: a BOS in front of every document would be noise inside a packed stream.
        ids = list(tokenizer(doc, add_special_tokens=False, verbose=False).input_ids)
        ids.append(eos)
        chunks.append(torch.tensor(ids, dtype=torch.long))
        total += len(ids)
        if max_tokens is not None and total >= max_tokens:
            break
    if not chunks:
        return torch.zeros(0, dtype=torch.long)
    stream = torch.cat(chunks)
    return stream[:max_tokens] if max_tokens is not None else stream


def _check_length(tokens: torch.Tensor, seq_len: int, what: str) -> None:
    if tokens.dim() != 1:
        raise LoramError(f"expected a 1-D token stream, got shape {tuple(tokens.shape)}")
    if seq_len <= 0:
        raise LoramError(f"seq_len must be positive, got {seq_len}")
    if tokens.numel() < seq_len:
        raise LoramError(
            f"too little text for {what}: {tokens.numel()} tokens, need at least {seq_len} (one block of "
            f"seq_len); use more data or a shorter seq_len"
        )


def random_blocks(
    tokens: torch.Tensor, seq_len: int, batch_size: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``[batch_size, seq_len]`` blocks at random start offsets (overlaps allowed): one training batch."""
    _check_length(tokens, seq_len, "training")
    if batch_size <= 0:
        raise LoramError(f"batch_size must be positive, got {batch_size}")
    starts = torch.randint(0, tokens.numel() - seq_len + 1, (batch_size,), generator=generator)
    offsets = starts[:, None] + torch.arange(seq_len)[None, :]
    return tokens[offsets]


def eval_blocks(tokens: torch.Tensor, seq_len: int) -> torch.Tensor:
    """``[n, seq_len]`` non-overlapping blocks from the start; the ragged tail is dropped."""
    _check_length(tokens, seq_len, "evaluation")
    n = tokens.numel() // seq_len
    return tokens[: n * seq_len].reshape(n, seq_len)
