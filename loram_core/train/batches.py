"""Seeded batch sampling for LoRA training and alignment: every batch is a function of (seed, step) alone.

Every process draws the whole global batch of a step from one generator seeded by (seed, step) and trains
on its slice (``rank_rows``), so the batches depend on the global batch size alone: a resumed run, or one
on another number of processes with the same global batch, draws exactly the windows an uninterrupted one
would (docs/scaling.md, docs/reliability.md).
"""

from __future__ import annotations

import hashlib
import json
from typing import Sequence

import torch

from loram_core.train.config import TrainConfig

# First value of every alignment seed: an aligner's draws differ from LoRA training's for the same seed.
ALIGN = "align"


def seed_of(*values: object) -> int:
    """A generator seed from (seed, step, ...)."""
    # A hash, not arithmetic, so tuples never collide and stay inside the generator's range.
    digest = hashlib.blake2b(repr(values).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


def windows(tokens: torch.Tensor, starts: torch.Tensor, seq_len: int) -> torch.Tensor:
    """The ``[len(starts), seq_len]`` windows of ``tokens`` beginning at ``starts``."""
    return tokens[starts[:, None] + torch.arange(seq_len)]


def step_starts(n_tokens: int, step: int, cfg: TrainConfig, processes: int = 1) -> torch.Tensor:
    """Start offsets of LoRA training's global batch of ``step``: ``grad_accum * batch_size * processes``
    windows drawn uniformly from a token stream of ``n_tokens``."""
    gen = torch.Generator().manual_seed(seed_of(cfg.seed, step))
    return torch.randint(0, n_tokens - cfg.seq_len + 1, (cfg.grad_accum * cfg.batch_size * processes,), generator=gen)


def step_rows(tokens: torch.Tensor, step: int, cfg: TrainConfig, processes: int = 1) -> torch.Tensor:
    """The global rows of ``step``: random windows of ``seq_len`` tokens (see ``step_starts``)."""
    return windows(tokens, step_starts(tokens.numel(), step, cfg, processes), cfg.seq_len)


def mixture_rows(streams: Sequence[torch.Tensor], weights: Sequence[float], rows: int, seq_len: int, seed: int,
                 step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``([rows, seq_len] windows, [rows] stream index)`` of an alignment step: each row's stream drawn by
    weight, its offset uniformly (docs/alignment.md)."""
    gen = torch.Generator().manual_seed(seed_of(ALIGN, seed, step))
    probs = torch.tensor(weights, dtype=torch.float64)
    which = torch.multinomial(probs, rows, replacement=True, generator=gen)
    where = torch.rand(rows, generator=gen, dtype=torch.float64)
    out = torch.empty(rows, seq_len, dtype=torch.long)
    for i in range(rows):
        stream = streams[int(which[i])]
        start = min(int(where[i] * (stream.numel() - seq_len + 1)), stream.numel() - seq_len)
        out[i] = stream[start : start + seq_len]
    return out, which


def rank_rows(rows: torch.Tensor, micro: int, batch_size: int, processes: int, rank: int) -> torch.Tensor:
    """Process ``rank``'s ``batch_size`` rows of micro-step ``micro``: consecutive slices of the global rows,
    so the processes of one micro-step together see what one process with ``batch_size * processes`` would."""
    first = (micro * processes + rank) * batch_size
    return rows[first : first + batch_size]


def log_starts(path: str, rank: int, step: int, micro: int, starts: torch.Tensor) -> None:
    """Append one micro-step's window offsets to ``PATH.rank<N>`` (``LORAM_DEBUG_BATCHES``, docs/scaling.md):
    the multi-process test checks with it which windows each process trained on."""
    with open(f"{path}.rank{rank}", "a", encoding="utf-8") as f:
        f.write(json.dumps({"rank": rank, "step": step, "micro": micro, "starts": starts.tolist()}) + "\n")
