"""Configs of the mask pruners (attrs, frozen): built from ``--ratio``, ``--layers`` and ``--pruner-opt K=V``.

``ratio`` is the fraction of weights removed. For an ``N:M`` pattern the fraction is fixed at ``N/M``, so a
ratio that says otherwise is an error rather than silently ignored (the run report shows the ratio; it must
be the one that was applied): ``2:4`` and ``4:8`` fit the default ``--ratio 0.5``, ``1:4`` needs ``--ratio 0.25``.
"""

from __future__ import annotations

import re

import attrs

from loram_core.configs import parse_layers, ratio_in_unit_interval
from loram_core.fields import boolean, integer, number

_NM = re.compile(r"^\s*(\d+)\s*:\s*(\d+)\s*$")


def parse_pattern(value) -> str:
    """``unstructured`` or ``N:M`` with 0 < N < M (e.g. ``2:4``, ``4:8``)."""
    text = str(value).strip()
    if text == "unstructured":
        return text
    m = _NM.match(text)
    if not m or not 0 < int(m.group(1)) < int(m.group(2)):
        raise ValueError(f"pattern must be 'unstructured' or N:M with 0 < N < M (e.g. 2:4), got {value!r}")
    return f"{int(m.group(1))}:{int(m.group(2))}"


def parse_modules(value) -> tuple[str, ...] | None:
    """``"q_proj,k_proj"`` or a sequence -> a tuple of Linear names inside a decoder layer; None: every
    Linear the model family's adapter lists (q/k/v/o, gate/up/down for Llama; qkv_proj, gate_up_proj for Phi-3)."""
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else list(value)
    names = tuple(dict.fromkeys(str(v).strip() for v in items if str(v).strip()))
    if not names:
        raise ValueError("modules must name at least one Linear of a decoder layer (e.g. q_proj,down_proj)")
    return names


@attrs.frozen
class MaskPruneConfig:
    """What every mask pruner here shares: how much, which pattern, which layers and modules."""

    ratio: float = attrs.field(default=0.5, validator=ratio_in_unit_interval)
    pattern: str = attrs.field(default="unstructured", converter=parse_pattern)
    # [start, end) decoder layers; None = ALL of them (the paper's ▲ ratios count every decoder Linear)
    layers: tuple[int, int] | None = attrs.field(default=None, converter=parse_layers)
    modules: tuple[str, ...] | None = attrs.field(default=None, converter=parse_modules)
    # unstructured only: the same number of zeros in every row (otherwise rows may differ, see README)
    per_row: bool = attrs.field(default=False, validator=boolean)

    def __attrs_post_init__(self):
        nm = self.nm
        if nm is not None and abs(self.ratio - nm[0] / nm[1]) > 1e-9:
            raise ValueError(
                f"pattern {self.pattern} removes {nm[0] / nm[1]:g} of the weights but ratio is {self.ratio:g}; "
                f"pass --ratio {nm[0] / nm[1]:g}"
            )

    @property
    def nm(self) -> tuple[int, int] | None:
        if self.pattern == "unstructured":
            return None
        n, m = self.pattern.split(":")
        return int(n), int(m)


@attrs.frozen
class SparseGPTConfig(MaskPruneConfig):
    """SparseGPT's own knobs (defaults as in the reference code) and the calibration data."""

    percdamp: float = attrs.field(default=0.01, validator=number(0))  # dampening: percdamp x mean diag(H)
    blocksize: int = attrs.field(default=128, validator=integer(1))  # columns pruned and updated together
    samples: int | None = attrs.field(default=None, validator=attrs.validators.optional(integer(1)))  # None: the run's --calibration-samples
    seq_len: int | None = attrs.field(default=None, validator=attrs.validators.optional(integer(1)))  # None: the run's --seq-len
    data: str | None = None  # dataset alias or file; None: the run's training split
    batch_size: int = attrs.field(default=4, validator=integer(1))  # calibration samples per layer forward

    def __attrs_post_init__(self):
        super().__attrs_post_init__()
        nm = self.nm
        if nm is not None and self.blocksize % nm[1]:
            raise ValueError(f"blocksize {self.blocksize} must be a multiple of M={nm[1]} for pattern {self.pattern}")
