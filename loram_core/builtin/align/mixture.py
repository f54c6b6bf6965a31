"""Data mixtures for alignment: several corpora (dataset aliases or files) with weights, packed into windows.

A mixture is written ``fortunes`` (one corpus, weight 1), ``fortunes:0.7,shakespeare:0.3`` (the form of
``--aligner-opt data=...``) or as a table ``{"fortunes": 0.7, "shakespeare": 0.3}`` (recipes:
``[align.data]``). Weights are positive and normalized to sum to 1.

Packing: each corpus's train split becomes one token stream (documents separated by eos). Every row of a
batch is a ``seq_len`` window of one corpus, the corpus drawn by weight and the offset uniformly, from a
generator seeded by (seed, step): a resumed run, or a run on more processes with the same global batch,
trains on exactly the windows an uninterrupted one would.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any, Mapping

import attrs
import torch

from loram_core.errors import LoramError
from loram_core.train.batches import mixture_rows


def _bad(message: str) -> LoramError:
    return LoramError(f"data mixture: {message}")


def _weight(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _bad(f"the weight of '{name}' must be a number, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise _bad(f"the weight of '{name}' must be positive, got {value!r}")
    return float(value)


def _split_item(item: str) -> tuple[str, float]:
    """``name`` or ``name:weight``; a name that is a path with a colon in it (``C:\\x``) keeps its colon."""
    if ":" not in item:
        return item, 1.0
    name, tail = item.rsplit(":", 1)
    try:
        weight = float(tail)
    except ValueError:
        if "/" in item or "\\" in item:  # a file path, not NAME:WEIGHT
            return item, 1.0
        raise _bad(f"'{item}': the weight after ':' must be a number, got {tail!r}") from None
    return name.strip(), weight


def _items(value: Any) -> list[tuple[str, Any]]:
    if isinstance(value, str):
        if not value.strip():
            raise _bad("empty; name at least one dataset alias or file, e.g. data=fortunes")
        items = [part.strip() for part in value.split(",")]
        if any(not part for part in items):
            raise _bad(f"{value!r} has an empty entry (a stray comma?)")
        return [_split_item(part) for part in items]
    if isinstance(value, Mapping):
        if not value:
            raise _bad("empty table; give at least one dataset with its weight, e.g. fortunes = 1.0")
        return [(str(k), v) for k, v in value.items()]
    raise _bad(f"expected a string like 'fortunes:0.7,shakespeare:0.3' or a table of weights, got {value!r}")


@attrs.frozen
class Mixture:
    """Corpus names (aliases or file paths) and their normalized weights, in the order given."""

    names: tuple[str, ...]
    weights: tuple[float, ...]

    def spec(self) -> str:
        """The canonical string form: ``fortunes`` or ``fortunes:0.7,shakespeare:0.3``."""
        if len(self.names) == 1:
            return self.names[0]
        return ",".join(f"{n}:{w:g}" for n, w in zip(self.names, self.weights))

    def to_json(self) -> dict[str, float]:
        return dict(zip(self.names, self.weights))

    def __str__(self) -> str:
        return self.spec()


def parse_mixture(value: Any) -> Mixture:
    """A ``Mixture`` from a string or a table (see the module docstring); ``LoramError`` on a bad spec."""
    if isinstance(value, Mixture):
        return value
    names: list[str] = []
    weights: list[float] = []
    for name, weight in _items(value):
        if not name:
            raise _bad(f"a weight without a dataset name in {value!r}")
        if name in names:
            raise _bad(f"'{name}' is named twice")
        names.append(name)
        weights.append(_weight(name, weight))
    total = sum(weights)
    return Mixture(tuple(names), tuple(w / total for w in weights))


@attrs.frozen(eq=False)
class MixtureData:
    """The mixture's train streams (tokenized whole) and its splits (test tokenized on demand)."""

    mixture: Mixture
    splits: tuple[Any, ...]  # TextSplits per corpus
    train: tuple[torch.Tensor, ...]  # 1-D LongTensor per corpus

    def digest(self) -> str:
        h = hashlib.sha256(repr(self.mixture.to_json()).encode())
        for stream in self.train:
            h.update(stream.numpy().tobytes())
        return h.hexdigest()

    def sample(self, rows: int, seq_len: int, seed: int, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``([rows, seq_len] windows, [rows] corpus index)`` of ``step``: a function of (seed, step) alone."""
        return mixture_rows(self.train, self.mixture.weights, rows, seq_len, seed, step)

    def test_tokens(self, tokenizer, eval_tokens: int, seq_len: int) -> list[tuple[str, torch.Tensor]]:
        """Each corpus's test split, its share of ``eval_tokens`` by weight (at least one window)."""
        from loram_core.data import tokenize_documents

        out = []
        for name, weight, splits in zip(self.mixture.names, self.mixture.weights, self.splits):
            share = max(seq_len, int(round(eval_tokens * weight)))
            out.append((name, tokenize_documents(tokenizer, splits.test, max_tokens=share)))
        return out


def load_mixture(mixture: Mixture, tokenizer, seq_len: int) -> MixtureData:
    """Load every corpus (``loram_core.data.load_dataset``) and tokenize its train split into one stream."""
    from loram_core.data import load_dataset, tokenize_documents

    splits, streams = [], []
    for name in mixture.names:
        corpus = load_dataset(name)
        stream = tokenize_documents(tokenizer, corpus.train)
        if stream.numel() < seq_len:
            raise _bad(f"the train split of '{name}' has {stream.numel()} tokens, fewer than seq_len={seq_len}")
        splits.append(corpus)
        streams.append(stream)
    return MixtureData(mixture, tuple(splits), tuple(streams))
