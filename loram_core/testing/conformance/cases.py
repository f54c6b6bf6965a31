"""Which configurations of a pruner the suite runs: the ratio, an explicit layer range, each mask pattern."""

from __future__ import annotations

from typing import Any, Mapping

import attrs

from loram_core.protocols import Pruner, optional_member

RATIO = 0.5
LAYERS = (2, 6)  # of the tiny models' 8: differs from both the adapter's default (4, 6) and "all layers"
PATTERNS = ("unstructured", "2:4")  # tried when the config has a ``pattern`` field and the pruner lists none


@attrs.frozen
class PrunerCase:
    label: str
    options: Mapping[str, Any] = attrs.field(converter=dict)


def pruner_cases(pruner, extra: Mapping[str, Any] | None = None) -> list[PrunerCase]:
    """The default options with ``--ratio 0.5``; then ``--layers 2:6``; then query heads inside KV groups
    (``attention_units``, on the families that define them, see ``case_fits``); then every other pattern it supports.

    A pruner declares the patterns it supports with ``patterns`` (optional in ``loram_core.protocols.Pruner``,
    e.g. ``("unstructured", "2:4")``); without it, a config with a ``pattern`` field is tried with ``unstructured``
    and ``2:4``.
    """
    fields = attrs.fields_dict(pruner.config_cls)
    base = {**({"ratio": RATIO} if "ratio" in fields else {}), **dict(extra or {})}
    label = ",".join(f"{k}={v}" for k, v in base.items()) or "defaults"
    cases = [PrunerCase(label, base)]
    if "layers" in fields:
        cases.append(PrunerCase(f"{label},layers={LAYERS[0]}:{LAYERS[1]}", {**base, "layers": LAYERS}))
    if "attention_units" in fields and "attention_units" not in base:
        cases.append(PrunerCase(f"{label},attention_units=query_heads", {**base, "attention_units": "query_heads"}))
    if "pattern" in fields:
        default = fields["pattern"].default
        for pattern in optional_member(pruner, Pruner, "patterns") or PATTERNS:
            if pattern != default and pattern != base.get("pattern"):
                cases.append(PrunerCase(f"{label},pattern={pattern}", {**base, "pattern": pattern}))
    return cases


def case_fits(family_config, case: PrunerCase) -> bool:
    """Whether ``case`` applies to the family of ``family_config``: query-head pruning needs the family's
    query-head groups and more query heads than KV heads."""
    if case.options.get("attention_units") != "query_heads":
        return True
    from loram_core.arch import adapter_for

    heads, kv = family_config.num_attention_heads, getattr(family_config, "num_key_value_heads", None)
    return getattr(adapter_for(family_config), "query_head_groups", None) is not None and kv is not None and heads > kv
