"""What the training loop draws its global batches from: a ``TokenStream`` (random windows, as for plain text, or
``wrapped`` examples with their labels) or ``ExampleRows`` (one example, or one ``bfd`` pack, per row).

Either way a step's global batch is a function of (seed, step) and the global batch size alone, so a resumed run,
or one on another number of processes, trains on exactly the rows an uninterrupted one would (docs/scaling.md).
"""

from __future__ import annotations

import hashlib
from typing import Sequence

import torch

from loram_core.data.encode import IGNORE
from loram_core.data.packing import Batch, Row, collate
from loram_core.errors import LoramError
from loram_core.train.batches import seed_of, step_starts, windows
from loram_core.train.config import TrainConfig


class TokenStream:
    """Windows of ``seq_len`` tokens at random offsets; ``labels`` None: every token is trained."""

    def __init__(self, ids: torch.Tensor, labels: torch.Tensor | None = None):
        if not isinstance(ids, torch.Tensor) or ids.dim() != 1:
            raise LoramError("train_tokens must be a 1-D tensor of token ids")
        self.ids = ids.detach().to("cpu", torch.long).contiguous()
        self.labels = None if labels is None else labels.detach().to("cpu", torch.long).contiguous()

    def check(self, cfg: TrainConfig, vocab: int) -> None:
        if self.ids.numel() < cfg.seq_len:
            raise LoramError(f"training data has {self.ids.numel()} tokens, fewer than seq_len={cfg.seq_len}")
        _check_vocab(self.ids, vocab)

    def global_batch(self, step: int, cfg: TrainConfig, processes: int) -> Batch:
        starts = step_starts(self.ids.numel(), step, cfg, processes)
        ids = windows(self.ids, starts, cfg.seq_len)
        return Batch(ids, ids if self.labels is None else windows(self.labels, starts, cfg.seq_len))

    def starts(self, step: int, cfg: TrainConfig, processes: int) -> torch.Tensor:
        return step_starts(self.ids.numel(), step, cfg, processes)

    def digest(self) -> bytes:
        h = hashlib.sha256(self.ids.numpy().tobytes())
        if self.labels is not None:
            h.update(self.labels.numpy().tobytes())
        return h.digest()


class ExampleRows:
    """Whole rows, drawn epoch by epoch in a seeded order: every row once per epoch, as a data loader would."""

    def __init__(self, rows: Sequence[Row], pad_id: int):
        if not rows:
            raise LoramError("no training examples")
        self.rows, self.pad_id = list(rows), pad_id
        self._epoch, self._permutation = None, None

    def check(self, cfg: TrainConfig, vocab: int) -> None:
        longest = max(len(r.input_ids) for r in self.rows)
        if longest > cfg.seq_len:
            raise LoramError(f"a training row holds {longest} tokens, more than seq_len={cfg.seq_len}")
        _check_vocab(torch.tensor([t for r in self.rows for t in r.input_ids] + [self.pad_id]), vocab)

    def indices(self, step: int, cfg: TrainConfig, processes: int) -> torch.Tensor:
        per_step = cfg.grad_accum * cfg.batch_size * processes
        first = step * per_step
        out = []
        for position in range(first, first + per_step):
            epoch, offset = divmod(position, len(self.rows))
            out.append(self._order(epoch, cfg.seed)[offset])
        return torch.tensor(out, dtype=torch.long)

    def _order(self, epoch: int, seed: int) -> torch.Tensor:
        if self._epoch != (epoch, seed):  # steps go forward: only the current epoch's order is kept
            gen = torch.Generator().manual_seed(seed_of(seed, "epoch", epoch))
            self._epoch, self._permutation = (epoch, seed), torch.randperm(len(self.rows), generator=gen)
        return self._permutation

    def global_batch(self, step: int, cfg: TrainConfig, processes: int) -> RowBatch:
        return RowBatch([self.rows[int(i)] for i in self.indices(step, cfg, processes)], self.pad_id)

    def starts(self, step: int, cfg: TrainConfig, processes: int) -> torch.Tensor:
        return self.indices(step, cfg, processes)

    def digest(self) -> bytes:
        h = hashlib.sha256()
        for row in self.rows:
            h.update(repr((row.input_ids, row.labels, row.position_ids)).encode())
        return h.digest()


class RowBatch:
    """A step's global rows; a micro-batch's slice is padded to its own longest row only."""

    def __init__(self, rows: Sequence[Row], pad_id: int):
        self._rows, self.pad_id = list(rows), pad_id

    @property
    def trained(self) -> int:
        return sum(sum(1 for label in r.labels[1:] if label != IGNORE) for r in self._rows)

    @property
    def tokens(self) -> int:  # real tokens, padding not counted
        return sum(len(r.input_ids) for r in self._rows)

    def rows(self, start: int, stop: int) -> Batch:
        return collate(self._rows[start:stop], self.pad_id)


def _check_vocab(ids: torch.Tensor, vocab: int) -> None:
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= vocab):
        raise LoramError(f"training data holds token ids outside the model's vocabulary (size {vocab})")
