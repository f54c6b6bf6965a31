"""Train/validation/test splits of a text corpus, assigned per document by a hash of its key."""

from __future__ import annotations

import hashlib
from typing import Hashable, Sequence

import attrs

from loram_core.errors import LoramError

SPLITS = ("train", "validation", "test")


@attrs.frozen
class TextSplits:
    """Documents (strings) of each split; a document never appears in two splits."""

    name: str
    train: tuple[str, ...] = attrs.field(converter=tuple)
    validation: tuple[str, ...] = attrs.field(converter=tuple)
    test: tuple[str, ...] = attrs.field(converter=tuple)

    def split(self, which: str) -> tuple[str, ...]:
        if which not in SPLITS:
            raise LoramError(f"unknown split '{which}' (one of: {', '.join(SPLITS)})")
        return getattr(self, which)

    def sizes(self) -> dict[str, dict[str, int]]:
        """Documents and characters per split, for reports."""
        return {s: {"docs": len(self.split(s)), "chars": sum(map(len, self.split(s)))} for s in SPLITS}


def _unit(key: Hashable, salt: str) -> float:
    """A stable number in [0, 1) for ``key``: sha256, so it does not change with PYTHONHASHSEED."""
    digest = hashlib.sha256(f"{salt}\0{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_by_key(
    items: Sequence[tuple[Hashable, str]],
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    salt: str = "loram",
    name: str = "data",
) -> TextSplits:
    """Assign each ``(key, text)`` to a split by hashing its key, so a document's split never depends on
    which other documents are present. With 3 or more items each split gets at least one document."""
    items = [(k, t) for k, t in items]
    if not items:
        raise LoramError(f"dataset '{name}' has no documents to split")
    groups: list[list[str]] = [[], [], []]
    for (_, text), split in zip(items, assign_splits([k for k, _ in items], fractions, salt)):
        groups[split].append(text)
    return TextSplits(name=name, train=groups[0], validation=groups[1], test=groups[2])


def assign_splits(keys: Sequence[Hashable], fractions: Sequence[float] = (0.8, 0.1, 0.1),
                  salt: str = "loram") -> list[int]:
    """The split (0 train, 1 validation, 2 test) of each key, by its hash alone; with 3 or more keys no split
    is left empty."""
    if len(fractions) != 3 or any(f < 0 for f in fractions) or sum(fractions) <= 0:
        raise LoramError(f"split fractions must be three non-negative numbers, got {tuple(fractions)}")
    total = float(sum(fractions))
    bounds = (fractions[0] / total, (fractions[0] + fractions[1]) / total)
    units = [_unit(k, salt) for k in keys]
    assigned = [0 if u < bounds[0] else 1 if u < bounds[1] else 2 for u in units]
    if len(keys) >= 3:
        _fill_empty(assigned, units, bounds)
    return assigned


def _fill_empty(assigned: list[int], units: list[float], bounds: tuple[float, float]) -> None:
    """Move into each empty split the document whose hash lies nearest to it, taken from a split that
    can spare one. Still a function of the keys only, so it is deterministic."""
    centres = (bounds[0] / 2, (bounds[0] + bounds[1]) / 2, (bounds[1] + 1) / 2)
    for split in (2, 1, 0):  # small held-out splits first: they are the ones that come out empty
        if split in assigned:
            continue
        counts = [assigned.count(s) for s in range(3)]
        donors = [i for i, s in enumerate(assigned) if counts[s] > 1]
        nearest = min(donors, key=lambda i: (abs(units[i] - centres[split]), i))
        assigned[nearest] = split
