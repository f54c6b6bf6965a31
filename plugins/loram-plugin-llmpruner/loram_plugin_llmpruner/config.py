"""The ``llmpruner`` config: which units, which importance criterion, how it is aggregated and ranked."""

from __future__ import annotations

import attrs

from loram_core.arch import ATTENTION_UNITS
from loram_core.configs import parse_layers, ratio_in_unit_interval
from loram_core.fields import boolean, integer, one_of

# Taylor criteria need gradients on calibration data; the weight norms need only the weights.
TAYLOR_CRITERIA = ("param_first", "param_second", "param_mix")
NORM_CRITERIA = ("l1", "l2")
CRITERIA = TAYLOR_CRITERIA + NORM_CRITERIA
AGGREGATIONS = ("sum", "mean", "max", "prod")
RANKINGS = ("layer", "global")


def _int_at_least_or_none(low: int):
    def check(instance, attribute, value) -> None:
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < low):
            raise ValueError(f"{attribute.name} must be an integer >= {low}, got {value!r}")

    return check


def _text_or_none(instance, attribute, value) -> None:
    if value is not None and (not isinstance(value, str) or not value):
        raise ValueError(f"{attribute.name} must be a dataset alias or a file path, got {value!r}")


@attrs.frozen
class LLMPrunerConfig:
    ratio: float = attrs.field(validator=ratio_in_unit_interval)
    layers: tuple[int, int] | None = attrs.field(default=None, converter=parse_layers)
    attention: bool = attrs.field(default=True, validator=boolean)
    mlp: bool = attrs.field(default=True, validator=boolean)
    criterion: str = attrs.field(default="param_first", validator=one_of(CRITERIA))
    aggregation: str = attrs.field(default="sum", validator=one_of(AGGREGATIONS))
    ranking: str = attrs.field(default="layer", validator=one_of(RANKINGS))
    # None: the run's --calibration-samples / --seq-len / training split (see PruneContext.calibration).
    samples: int | None = attrs.field(default=None, validator=_int_at_least_or_none(1))
    seq_len: int | None = attrs.field(default=None, validator=_int_at_least_or_none(2))  # 2: one predicted token
    data: str | None = attrs.field(default=None, validator=_text_or_none)
    # Kept widths rounded to a multiple of this (the core's StructuredConfig.align_to); with global ranking
    # each group's kept count is rounded after the competition, its best-scoring units kept.
    align_to: int = attrs.field(default=1, validator=integer(1))
    # The core's StructuredConfig.attention_units: query_heads prunes query heads inside every KV group.
    attention_units: str = attrs.field(default="kv_groups", validator=one_of(ATTENTION_UNITS))
    # The core's StructuredConfig.experts / experts_ratio: every expert's channels by Taylor importance of the
    # fused 3-D parameters, and whole experts by router usage on the calibration windows.
    experts: bool = attrs.field(default=True, validator=boolean)
    experts_ratio: float = attrs.field(default=0.0, validator=ratio_in_unit_interval)

    @property
    def needs_gradients(self) -> bool:
        return self.criterion in TAYLOR_CRITERIA

    @property
    def needs_second_order(self) -> bool:
        return self.criterion in ("param_second", "param_mix")
