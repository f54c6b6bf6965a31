"""Options of the built-in aligners, from ``--aligner-opt KEY=VALUE`` or a recipe's ``[align]`` table.

Defaults follow the paper's alignment stage (reference.md §1, Stage 1): full-parameter training with the
output head frozen, AdamW at lr 5e-5 on a cosine schedule. Steps, batch and window are sized for a CPU.
"""

from __future__ import annotations

from typing import Any

import attrs

from loram_core.builtin.align.mixture import Mixture, parse_mixture
from loram_core.configs import to_float, to_names
from loram_core.fields import integer, number, one_of

OPTIMIZERS = ("adamw", "sgd")
SCHEDULES = ("cosine", "linear", "constant")


def _check_names(_inst, attribute, value) -> None:
    if not isinstance(value, tuple) or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"{attribute.name} must be a list of parameter-name substrings, got {value!r}")


def _optional_budget(_inst, attribute, value) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
        raise ValueError(f"{attribute.name} must be a positive number of tokens, got {value!r}")


@attrs.frozen(kw_only=True)
class ContinualPretrainConfig:
    """Full-parameter continual pre-training of the pruned model.

    One step is one optimizer update over ``batch_size x processes x grad_accum`` windows of ``seq_len``
    tokens. ``token_budget`` caps the steps at ``budget // tokens_per_step``. ``frozen`` holds name
    substrings: a parameter is frozen when any of its names contains one (tied weights have two names:
    with SmolLM2's tied embeddings, freezing ``lm_head`` freezes ``embed_tokens`` too, and the reverse).
    ``eval_tokens`` = 0 skips the perplexities.
    """

    data: Mixture = attrs.field(default="fortunes", converter=parse_mixture)
    steps: int = attrs.field(default=100, validator=integer(1))
    lr: float = attrs.field(default=5e-5, converter=to_float, validator=number(0.0, low_open=True))
    schedule: str = attrs.field(default="cosine", validator=one_of(SCHEDULES))
    warmup_steps: int = attrs.field(default=10, validator=integer(0))
    batch_size: int = attrs.field(default=4, validator=integer(1))
    seq_len: int = attrs.field(default=128, validator=integer(2))
    grad_accum: int = attrs.field(default=1, validator=integer(1))
    token_budget: int | None = attrs.field(default=None, validator=_optional_budget)
    frozen: tuple[str, ...] = attrs.field(
        default=("lm_head", "embed_tokens"), converter=to_names, validator=_check_names
    )
    optimizer: str = attrs.field(default="adamw", validator=one_of(OPTIMIZERS))
    weight_decay: float = attrs.field(default=0.0, converter=to_float, validator=number(0.0))
    # 0 turns clipping off
    max_grad_norm: float = attrs.field(default=1.0, converter=to_float, validator=number(0.0))
    # 0 turns checkpoints off
    checkpoint_every: int = attrs.field(default=50, validator=integer(0))
    eval_tokens: int = attrs.field(default=8192, validator=integer(0))
    eval_seq_len: int = attrs.field(default=512, validator=integer(2))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values (the mixture as its weights table, tuples as lists)."""
        out = attrs.asdict(self, recurse=False)
        out["data"] = self.data.to_json()
        out["frozen"] = list(self.frozen)
        return out


@attrs.frozen(kw_only=True)
class DistillConfig(ContinualPretrainConfig):
    """Continual pre-training with a distillation term to the original (unpruned) model.

    loss = (1 - kl_weight) * CE(student, next tokens) + kl_weight * T^2 * KL(teacher_T || student_T), the KL
    taken per token position over the vocabulary of the temperature-``T`` softmaxes (Hinton's T^2 keeps its
    gradient scale independent of T). The default ``kl_weight`` = 1.0 is pure logit distillation, which
    Minitron found best for pruned models; 0.0 is plain continual pre-training. ``teacher`` names the
    original model (alias, folder or hub id); by default the run's model.
    """

    kl_weight: float = attrs.field(default=1.0, converter=to_float, validator=number(0.0, 1.0, high_open=False))
    temperature: float = attrs.field(default=1.0, converter=to_float, validator=number(0.0, low_open=True))
    teacher: str | None = attrs.field(
        default=None, validator=attrs.validators.optional(attrs.validators.instance_of(str))
    )
