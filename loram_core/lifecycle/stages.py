"""The lifecycle as a table: each stage is one module with a ``run_<name>(run, res)`` and one row here.

``run_lifecycle`` (``lifecycle/runner.py``) walks the rows in order; the CLI's stage commands and their
help come from the same rows. Adding a stage is one module and one row (docs/architecture.md shows it).
"""

from __future__ import annotations

import importlib
from typing import Callable

import attrs

from loram_core.lifecycle.settings import DATA_FIELDS, TRAIN_FIELDS, RunSettings


def _always(_settings: RunSettings) -> bool:
    return True


@attrs.frozen
class Stage:
    name: str
    function: str  # "module:function", imported when the stage runs: `loram plugins` never loads torch
    help: str
    needs_data: bool  # reads the dataset: `run_lifecycle` checks the data spec before any stage starts
    # the settings the stage's output depends on: a stage command may not change one that a finished
    # earlier stage read (its artifact would disagree with run.json)
    reads: tuple[str, ...] = ()
    # {flag of the stage's record: settings read only when the record says so}; a record without the flag
    # counts as having read them
    reads_if: dict[str, tuple[str, ...]] = attrs.field(factory=dict)

    def settings_read(self, record: dict) -> tuple[str, ...]:
        """The settings a finished stage's output depends on, from its record."""
        unused = {name for flag, names in self.reads_if.items() if record.get(flag) is False for name in names}
        return tuple(name for name in self.reads if name not in unused)
    # every process of `accelerate launch` takes part (the others run on the main process only)
    collective: bool = False
    enabled: Callable[[RunSettings], bool] = _always  # a disabled stage is skipped, not failed
    command: str | None = None  # the CLI command that runs it (default: its name); `loram eval` runs two rows
    replaces: bool = True  # running it again replaces what it wrote (changed settings need --overwrite)

    @property
    def cli(self) -> str:
        return self.command or self.name

    def load(self) -> Callable:
        module, _, name = self.function.partition(":")
        return getattr(importlib.import_module(module), name)


PLACEMENT = ("device", "dtype")

STAGES = (
    Stage("prune", "loram_core.lifecycle.prune:run_prune", "prune the original model into RUN_DIR/plan and RUN_DIR/pruned",
          needs_data=True, reads=("model", "pruned", "pruner", "ratio", "layers", "pruner_options", "seed", *DATA_FIELDS,
                                  "calibration_samples", "seq_len", "trust_remote_code"),
          reads_if={"calibrated": (*DATA_FIELDS, "calibration_samples", "seq_len")}),
    Stage("align", "loram_core.lifecycle.align:run_align", "align the pruned model with the configured aligner plugin",
          needs_data=True, collective=True, enabled=lambda s: bool(s.aligner),
          reads=("aligner", "aligner_options", "seed", *PLACEMENT)),
    Stage("train", "loram_core.lifecycle.train:run_train", "train LoRA on the pruned model", needs_data=True,
          collective=True, reads=(*DATA_FIELDS, "quantizer", "quantizer_options", *TRAIN_FIELDS, *PLACEMENT,
                                  "eval_every", "report_to")),  # the last two: what metrics.jsonl holds
    Stage("recover", "loram_core.lifecycle.recover:run_recover", "recover the adapter to the original shapes",
          needs_data=False, reads=("recoverer", "seed")),
    Stage("merge", "loram_core.lifecycle.merge:run_merge", "merge the recovered adapter into the original model",
          needs_data=False, enabled=lambda s: s.merge, reads=("merge",)),
    Stage("eval", "loram_core.lifecycle.evaluate:run_eval", "perplexity rows and report", needs_data=True,
          reads=(*DATA_FIELDS, "eval_tokens", "eval_seq_len", "stream_eval", *PLACEMENT)),
    # scores kept per task: a changed task list adds scores, it replaces nothing (no --overwrite needed)
    Stage("tasks", "loram_core.lifecycle.tasks:run_tasks", "downstream task scores (docs/tasks.md)",
          needs_data=False, enabled=lambda s: bool(s.tasks), command="eval", replaces=False,
          reads=("tasks", "num_fewshot", "limit", "include_path", *PLACEMENT)),
)


def upstream_of(names) -> tuple[Stage, ...]:
    """The stages before the first of ``names`` in lifecycle order (those a stage command does not re-run)."""
    order = [s.name for s in STAGES]
    return STAGES[:min(order.index(n) for n in names)]


def stages_named(names) -> tuple[Stage, ...]:
    """The rows for ``names``, in lifecycle order."""
    names = set(names)
    return tuple(s for s in STAGES if s.name in names)
