"""Perplexity over non-overlapping windows, summed per token so every predicted token weighs the same."""

from __future__ import annotations

import math

import attrs
import torch
import torch.nn.functional as F

from loram_core.errors import LoramError


@attrs.frozen(kw_only=True)
class Perplexity:
    ppl: float
    nll: float  # mean negative log-likelihood per predicted token (nats)
    tokens: int  # predicted tokens: windows * (seq_len - 1)


def _progress_bar(enabled: bool):
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("[bold]eval[/] windows"),
        MofNCompleteColumn(),
        BarColumn(),
        TextColumn("ppl {task.fields[ppl]}"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=not enabled,
    )


def _device(model: torch.nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def perplexity(
    model: torch.nn.Module,
    tokens: torch.Tensor,
    *,
    seq_len: int = 512,
    batch_size: int = 4,
    max_tokens: int | None = None,
    progress: bool = True,
) -> Perplexity:
    """Perplexity of ``model`` (plain or ``PeftModel``) on the first ``max_tokens`` of a 1-D token stream.

    The stream is cut into non-overlapping windows of ``seq_len`` (the ragged tail is dropped); inside a
    window every token after the first is predicted. The NLL is summed in fp32/fp64 from the logits
    rather than averaging the model's per-batch mean loss, so batches of any size weigh correctly.
    """
    if not isinstance(tokens, torch.Tensor) or tokens.dim() != 1:
        raise LoramError("perplexity: tokens must be a 1-D tensor of token ids")
    if seq_len < 2 or batch_size < 1:
        raise LoramError(f"perplexity: need seq_len >= 2 and batch_size >= 1, got {seq_len} and {batch_size}")
    if max_tokens is not None and max_tokens < 0:
        raise LoramError(f"perplexity: max_tokens must be >= 0, got {max_tokens}")
    stream = tokens if max_tokens is None else tokens[:max_tokens]
    windows = stream.numel() // seq_len
    if windows < 1:
        raise LoramError(
            f"perplexity: {stream.numel()} evaluation tokens are fewer than one window of seq_len={seq_len}"
        )
    blocks = stream[: windows * seq_len].to(torch.long).view(windows, seq_len)
    device = _device(model)

    total_nll = 0.0  # python float: fp64 accumulation across batches
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(), _progress_bar(progress) as bar:
            task = bar.add_task("eval", total=windows, ppl="-")
            for first in range(0, windows, batch_size):
                batch = blocks[first : first + batch_size].to(device)
                logits = model(input_ids=batch, use_cache=False).logits
                # token t predicts token t+1; fp32 so half-precision models do not lose the sum
                shifted = logits[:, :-1, :].float()
                total_nll += F.cross_entropy(
                    shifted.reshape(-1, shifted.size(-1)), batch[:, 1:].reshape(-1), reduction="sum"
                ).item()
                del logits, shifted
                done = min(first + batch_size, windows)
                running = total_nll / (done * (seq_len - 1))
                bar.update(task, completed=done, ppl=f"{math.exp(min(running, 700.0)):.3f}")
    finally:
        model.train(was_training)

    count = windows * (seq_len - 1)
    nll = total_nll / count
    return Perplexity(ppl=math.exp(nll) if nll < 700 else math.inf, nll=nll, tokens=count)


def response_perplexity(model: torch.nn.Module, examples, *, batch_size: int = 4, progress: bool = True) -> Perplexity:
    """Perplexity over the trained tokens (the responses) of encoded examples (``loram_core.data.encode``),
    one example per row, summed per token like ``perplexity``: prompts are context, never scored."""
    from loram_core.data.packing import collate, to_rows
    from loram_core.train.loss import token_nll

    rows = to_rows(list(examples), "none", 0)
    count = sum(e.trained for e in examples)
    if not rows or not count:
        raise LoramError("perplexity: no evaluation example has a response token")
    device = _device(model)
    total_nll = 0.0
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(), _progress_bar(progress) as bar:
            task = bar.add_task("eval", total=len(rows), ppl="-")
            scored = 0
            for first in range(0, len(rows), batch_size):
                part = rows[first: first + batch_size]
                batch = collate(part, pad_id=0).to(device)
                total_nll += token_nll(model, batch).item()
                scored += batch.trained
                bar.update(task, completed=first + len(part), ppl=f"{math.exp(min(total_nll / scored, 700.0)):.3f}")
    finally:
        model.train(was_training)
    nll = total_nll / count
    return Perplexity(ppl=math.exp(nll) if nll < 700 else math.inf, nll=nll, tokens=count)


def up_to(examples, tokens: int) -> list:
    """The first examples whose trained tokens reach ``tokens`` (at least one example)."""
    kept, total = [], 0
    for example in examples:
        kept.append(example)
        total += example.trained
        if total >= tokens:
            break
    return kept
