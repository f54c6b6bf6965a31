"""``RunSettings``: the resolved configuration of one run, saved as ``RUN_DIR/run.json``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs

from loram_core.configs import build_config, parse_layers, ratio_in_unit_interval
from loram_core.errors import LoramError
from loram_core.placement import check_device, check_dtype


def _positive(instance, attribute, value) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{attribute.name} must be a positive integer, got {value!r}")


@attrs.frozen
class RunSettings:
    model: str = "smollm2-135m"
    data: str = "shakespeare"
    pruner: str = "magnitude"
    # A folder written by `loram publish`: its plan and (aligned) pruned weights replace the prune stage.
    pruned: str | None = None
    ratio: float = attrs.field(default=0.5, validator=ratio_in_unit_interval)
    layers: tuple[int, int] | None = attrs.field(default=None, converter=parse_layers)
    pruner_options: dict = attrs.field(factory=dict)
    quantizer: str | None = None
    quantizer_options: dict = attrs.field(factory=dict)
    aligner: str | None = None
    aligner_options: dict = attrs.field(factory=dict)
    recoverer: str = "zero"
    steps: int = attrs.field(default=100, validator=_positive)
    batch_size: int = attrs.field(default=4, validator=_positive)
    seq_len: int = attrs.field(default=128, validator=_positive)
    lr: float = 5e-4
    rank: int = attrs.field(default=8, validator=_positive)
    alpha: int = attrs.field(default=16, validator=_positive)
    dropout: float = 0.05
    warmup_steps: int = 10
    schedule: str = "cosine"
    checkpoint_every: int = attrs.field(default=50, validator=_positive)
    target_modules: tuple[str, ...] = attrs.field(
        default=("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"), converter=tuple
    )
    seed: int = 0
    eval_tokens: int = attrs.field(default=8192, validator=_positive)
    eval_seq_len: int = attrs.field(default=512, validator=_positive)
    calibration_samples: int = attrs.field(default=16, validator=_positive)
    merge: bool = True
    trust_remote_code: bool = False
    # Where training and evaluation compute (placement.py): auto = CUDA when visible, bf16 on GPUs with it,
    # fp32 on CPU; under accelerate launch each process's GPU comes from accelerate.
    device: str = attrs.field(default="auto", validator=check_device)
    dtype: str = attrs.field(default="auto", validator=check_dtype)
    # Micro-steps per optimizer update: global batch = batch_size x processes x grad_accum.
    grad_accum: int = attrs.field(default=1, validator=_positive)
    # Training memory savers (train/loss.py): activation recomputation, and the loss over N tokens at a time.
    gradient_checkpointing: bool = False
    loss_chunk: int = attrs.field(default=0, validator=attrs.validators.and_(attrs.validators.instance_of(int), attrs.validators.ge(0)))

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self, value_serializer=lambda _i, _a, v: list(v) if isinstance(v, tuple) else v)

    def train_config(self):
        from loram_core.train.config import TrainConfig

        return TrainConfig(
            steps=self.steps,
            batch_size=self.batch_size,
            seq_len=self.seq_len,
            lr=self.lr,
            rank=self.rank,
            alpha=self.alpha,
            dropout=self.dropout,
            target_modules=tuple(self.target_modules),
            warmup_steps=self.warmup_steps,
            schedule=self.schedule,
            seed=self.seed,
            checkpoint_every=self.checkpoint_every,
            grad_accum=self.grad_accum,
            gradient_checkpointing=self.gradient_checkpointing,
            loss_chunk=self.loss_chunk,
        )


FIELDS = {f.name for f in attrs.fields(RunSettings)}


def make_settings(values: dict[str, Any], *, source: str = "settings") -> RunSettings:
    """Build settings from a flat dict; unknown keys and bad values name themselves."""
    return build_config(RunSettings, values, owner=source)


def load_recipe(path: str | Path) -> dict[str, Any]:
    """A TOML recipe: the run's keys at top level or under [run]; plugin options under [pruner_options],
    [quantizer_options] and [aligner_options]. An [align] table is the aligner's: ``name`` is the aligner,
    its other keys are aligner options, and [align.data] (dataset -> weight) is the data mixture."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    path = Path(path)
    if not path.is_file():
        raise LoramError(f"recipe {path} does not exist")
    try:
        doc = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise LoramError(f"recipe {path}: {exc}") from None
    align = doc.pop("align", None)
    values = dict(doc.pop("run", {}))
    values.update(doc)
    if align is not None:
        if not isinstance(align, dict):
            raise LoramError(f"recipe {path}: [align] must be a table (name = ALIGNER, options, [align.data])")
        align = dict(align)
        name = align.pop("name", None)
        if name is not None:
            if values.get("aligner") not in (None, name):
                raise LoramError(f"recipe {path}: aligner '{values['aligner']}' and [align] name '{name}' disagree")
            values["aligner"] = name
        values["aligner_options"] = {**dict(values.get("aligner_options") or {}), **align}
    unknown = sorted(set(values) - FIELDS)
    if unknown:
        raise LoramError(f"recipe {path}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(FIELDS))})")
    return values


def read_run_json(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / "run.json"
    if not path.is_file():
        raise LoramError(f"{run_dir} is not a run directory (no run.json); start with 'loram run' or 'loram prune'")
    try:
        doc = json.loads(path.read_text())
        return dict(doc["settings"])
    except (ValueError, KeyError, TypeError) as exc:
        raise LoramError(f"{path}: unreadable ({exc})") from None
