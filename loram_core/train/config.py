"""Training hyper-parameters: one frozen, validated value shared by the CLI, recipes and the loop."""

from __future__ import annotations

from typing import Any

import attrs

from loram_core.configs import to_float, to_names
from loram_core.errors import LoramError

SCHEDULES = ("cosine", "linear", "constant")
ALL_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def _int_at_least(minimum: int):
    def check(_inst, attribute, value) -> None:
        # bool is an int subclass; "steps = true" in a recipe is a mistake, not 1
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
            raise LoramError(f"train config: {attribute.name} must be {what}, got {value!r}")

    return check


def _float_range(low: float, high: float | None = None, *, low_open: bool = False):
    def check(_inst, attribute, value) -> None:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value == value
        if ok:
            ok = value > low if low_open else value >= low
        if ok and high is not None:
            ok = value < high
        if not ok:
            left = "(" if low_open else "["
            right = f"{high})" if high is not None else "inf)"
            raise LoramError(f"train config: {attribute.name} must be in {left}{low}, {right}, got {value!r}")

    return check


def _check_modules(_inst, attribute, value) -> None:
    if not isinstance(value, tuple) or not value or not all(isinstance(m, str) and m for m in value):
        raise LoramError(
            f"train config: {attribute.name} must be a non-empty list of module names, got {value!r}"
        )


def _check_schedule(_inst, attribute, value) -> None:
    if value not in SCHEDULES:
        raise LoramError(f"train config: {attribute.name} must be one of {', '.join(SCHEDULES)}, got {value!r}")


@attrs.frozen(kw_only=True)
class TrainConfig:
    """LoRA training settings.

    One step is one optimizer update over ``batch_size * processes * grad_accum`` sequences of ``seq_len``
    tokens (the global batch): ``batch_size`` is per process, as in accelerate, so ``accelerate launch
    --num_processes 2`` with ``batch_size=b`` trains on the same windows as one process with ``2b``.
    """

    steps: int = attrs.field(default=100, validator=_int_at_least(1))
    batch_size: int = attrs.field(default=4, validator=_int_at_least(1))
    seq_len: int = attrs.field(default=128, validator=_int_at_least(1))
    lr: float = attrs.field(default=2e-4, converter=to_float, validator=_float_range(0.0, low_open=True))
    rank: int = attrs.field(default=8, validator=_int_at_least(1))
    alpha: int = attrs.field(default=16, validator=_int_at_least(1))
    dropout: float = attrs.field(default=0.05, converter=to_float, validator=_float_range(0.0, 1.0))
    target_modules: tuple[str, ...] = attrs.field(
        default=ALL_PROJECTIONS, converter=to_names, validator=_check_modules
    )
    warmup_steps: int = attrs.field(default=10, validator=_int_at_least(0))
    weight_decay: float = attrs.field(default=0.0, converter=to_float, validator=_float_range(0.0))
    schedule: str = attrs.field(default="cosine", validator=_check_schedule)
    seed: int = attrs.field(default=0, validator=_int_at_least(0))
    # 0 turns checkpoints off
    checkpoint_every: int = attrs.field(default=50, validator=_int_at_least(0))
    grad_accum: int = attrs.field(default=1, validator=_int_at_least(1))
    # 0 turns clipping off
    max_grad_norm: float = attrs.field(default=1.0, converter=to_float, validator=_float_range(0.0))
    # Memory savers (train/loss.py): recompute each decoder layer in backward instead of keeping its
    # activations, and compute the loss over this many tokens at a time (0: the model's own loss).
    gradient_checkpointing: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))
    loss_chunk: int = attrs.field(default=0, validator=_int_at_least(0))

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Build from user input (recipe table, JSON); an unknown key is an error naming it."""
        known = {f.name for f in attrs.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise LoramError(
                f"train config: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})"
            )
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values (target_modules as a list)."""
        out = attrs.asdict(self)
        out["target_modules"] = list(self.target_modules)
        # The memory savers are left out at their defaults, so runs made before they existed keep their keys.
        for name in _SAVERS:
            if out[name] == _SAVERS[name]:
                del out[name]
        return out


_SAVERS = {"gradient_checkpointing": False, "loss_chunk": 0}
