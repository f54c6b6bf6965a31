"""The ``wanda`` config, built by loram from ``--ratio``, ``--layers`` and ``--pruner-opt KEY=VALUE``."""

from __future__ import annotations

import re

import attrs

from loram_core.configs import parse_layers, ratio_in_unit_interval

_NM = re.compile(r"^(\d+):(\d+)$")


def nm(pattern: str) -> tuple[int, int] | None:
    """``"2:4"`` -> (2, 4); ``"unstructured"`` -> None."""
    match = _NM.match(pattern)
    return (int(match.group(1)), int(match.group(2))) if match else None


def _pattern(instance, attribute, value) -> None:
    pair = nm(value) if isinstance(value, str) else None
    if value != "unstructured" and (pair is None or not 0 < pair[0] < pair[1]):
        raise ValueError(f"pattern must be 'unstructured' or N:M with 0 < N < M (e.g. 2:4), got {value!r}")


def _positive_or_none(instance, attribute, value) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"{attribute.name} must be a positive integer, got {value!r}")


def _text_or_none(instance, attribute, value) -> None:
    if value is not None and (not isinstance(value, str) or not value):
        raise ValueError(f"{attribute.name} must be a dataset alias or a file path, got {value!r}")


@attrs.frozen
class WandaConfig:
    # Fraction of each output row's weights zeroed (unstructured); N:M patterns fix it at N/M instead.
    ratio: float = attrs.field(default=0.5, validator=ratio_in_unit_interval)
    pattern: str = attrs.field(default="unstructured", validator=_pattern)
    # Decoder layers [start, end) to prune; None prunes them all, as the Wanda paper does.
    layers: tuple[int, int] | None = attrs.field(default=None, converter=parse_layers)
    # Calibration windows; None takes the run's --calibration-samples / --seq-len / training split.
    samples: int | None = attrs.field(default=None, validator=_positive_or_none)
    seq_len: int | None = attrs.field(default=None, validator=_positive_or_none)
    data: str | None = attrs.field(default=None, validator=_text_or_none)
    batch_size: int = attrs.field(default=8, validator=_positive_or_none)  # windows per forward pass

    @property
    def sparsity(self) -> float:
        pair = nm(self.pattern)
        return pair[0] / pair[1] if pair else self.ratio
