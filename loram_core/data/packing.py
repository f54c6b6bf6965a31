"""Examples -> training rows (docs/data.md, "Batches"):

- ``none``: one example per row; a batch is padded to its longest row;
- ``bfd``: whole examples packed best-fit-decreasing into rows of ``seq_len`` tokens, each with its own
  position ids from 0, so a model's attention keeps packed examples apart (transformers builds the
  block-diagonal mask from position ids when no attention mask is given, as TRL's padding-free packing relies on);
- ``wrapped``: every example's tokens in one stream cut into windows, as plain text is (examples see each other).

Padding continues the position ids as one more sequence and is never trained.
"""

from __future__ import annotations

import bisect
from typing import Sequence

import attrs
import torch

from loram_core.data.encode import IGNORE, Example

PACKINGS = ("auto", "none", "wrapped", "bfd")


@attrs.frozen
class Batch:
    """``[rows, tokens]`` ids, labels (``IGNORE`` where not trained) and position ids (None: 0..T-1 per row)."""

    input_ids: torch.Tensor
    labels: torch.Tensor
    position_ids: torch.Tensor | None = None

    @property
    def trained(self) -> int:
        return int((self.labels[:, 1:] != IGNORE).sum())

    @property
    def tokens(self) -> int:
        return self.input_ids.numel()

    def rows(self, start: int, stop: int) -> Batch:
        pos = None if self.position_ids is None else self.position_ids[start:stop]
        return Batch(self.input_ids[start:stop], self.labels[start:stop], pos)

    def to(self, device) -> Batch:
        pos = None if self.position_ids is None else self.position_ids.to(device)
        return Batch(self.input_ids.to(device), self.labels.to(device), pos)


@attrs.frozen
class Row:
    input_ids: tuple[int, ...]
    labels: tuple[int, ...]
    position_ids: tuple[int, ...]


def pack_bfd(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """Indices of ``lengths`` in bins of at most ``capacity``: longest first, each into the fullest bin it fits
    (best fit decreasing); ties by index, so the packing is a function of the lengths alone."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    free: list[tuple[int, int]] = []  # (room left, bin number), sorted
    bins: list[list[int]] = []
    for i in order:
        at = bisect.bisect_left(free, (lengths[i], -1))
        if at == len(free):
            bins.append([i])
            bisect.insort(free, (capacity - lengths[i], len(bins) - 1))
        else:
            room, number = free.pop(at)
            bins[number].append(i)
            bisect.insort(free, (room - lengths[i], number))
    return bins


def to_rows(examples: Sequence[Example], packing: str, seq_len: int) -> list[Row]:
    """``none`` or ``bfd`` rows (``wrapped`` is a stream: ``to_stream``)."""
    if packing == "none":
        return [Row(e.input_ids, e.labels, tuple(range(len(e)))) for e in examples]
    if packing != "bfd":
        raise ValueError(f"rows are made by packing none or bfd, not {packing!r}")
    rows = []
    for members in pack_bfd([len(e) for e in examples], seq_len):
        ids, labels, pos = [], [], []
        for i in sorted(members):  # within a row, in dataset order
            ids += examples[i].input_ids
            # an example's first token is never a target: keep the previous example's last token from
            # "predicting" it across the boundary
            labels += (IGNORE,) + examples[i].labels[1:]
            pos += range(len(examples[i]))
        rows.append(Row(tuple(ids), tuple(labels), tuple(pos)))
    return rows


def to_stream(examples: Sequence[Example]) -> tuple[torch.Tensor, torch.Tensor]:
    """``wrapped``: all ids and labels end to end, as 1-D tensors."""
    ids = torch.tensor([t for e in examples for t in e.input_ids], dtype=torch.long)
    labels = torch.tensor([t for e in examples for t in e.labels], dtype=torch.long)
    return ids, labels


def collate(rows: Sequence[Row], pad_id: int) -> Batch:
    """Rows padded on the right to the longest; padding gets label ``IGNORE`` and positions of its own. Rows of
    one example each get no position ids: under a causal mask no real token sees the padding after it, and the
    attention keeps its fast causal path (packed rows need the ids, and a mask built from them)."""
    width = max(len(r.input_ids) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    pos = torch.arange(width).repeat(len(rows), 1)
    for n, row in enumerate(rows):
        k = len(row.input_ids)
        ids[n, :k] = torch.tensor(row.input_ids)
        labels[n, :k] = torch.tensor(row.labels)
        pos[n, :k] = torch.tensor(row.position_ids)
        pos[n, k:] = torch.arange(width - k)
    unpacked = all(r.position_ids == tuple(range(len(r.position_ids))) for r in rows)
    return Batch(ids, labels, None if unpacked else pos)
