"""Build a strategy's attrs config from user input: unknown keys and bad values become clear errors."""

from __future__ import annotations

from typing import Any, Mapping

import attrs

from loram_core.errors import LoramError


def build_config(cls, options: Mapping[str, Any], *, owner: str):
    """``cls(**options)`` with user-facing errors that name ``owner`` (e.g. "pruner 'random'")."""
    fields = {f.name for f in attrs.fields(cls)}
    unknown = sorted(set(options) - fields)
    if unknown:
        raise LoramError(f"{owner}: unknown option(s) {', '.join(unknown)} (known: {', '.join(sorted(fields))})")
    try:
        return cls(**options)
    except (TypeError, ValueError) as exc:
        raise LoramError(f"{owner}: {exc}") from None


def to_float(value: Any) -> Any:
    """attrs converter: TOML and argparse hand over ints for "lr = 1"; anything else stays for the validator."""
    return float(value) if isinstance(value, int) and not isinstance(value, bool) else value


def to_names(value: Any) -> Any:
    """attrs converter: ``"a,b"`` (a CLI option) or a list (a recipe) -> a tuple of names; ``""`` -> ()."""
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    return tuple(value) if isinstance(value, (list, tuple)) else value


def ratio_in_unit_interval(instance, attribute, value) -> None:
    """attrs validator: a pruning ratio in [0, 1)."""
    if not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(f"{attribute.name} must be in [0, 1), got {value!r}")


def parse_layers(value) -> tuple[int, int] | None:
    """'4:28' or (4, 28) -> (4, 28): decoder layers [start, end) to prune; None = the adapter's default."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        parts = value.split(":")
        if len(parts) != 2:
            raise ValueError(f"layers must look like START:END, got {value!r}")
        value = parts
    start, end = (int(v) for v in value)
    if not 0 <= start <= end:
        raise ValueError(f"layers must satisfy 0 <= START <= END, got {start}:{end}")
    return (start, end)
