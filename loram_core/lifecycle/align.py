"""Stage align (optional): an aligner plugin trains the pruned model; the core saves the aligned weights.

The aligner's contract is ``loram_core.protocols.Aligner``: ``config`` is built from ``settings.aligner_options``,
``context`` is the ``AlignContext`` below.
"""

from __future__ import annotations

from typing import Any

import attrs

from loram_core import distributed, registry
from loram_core.atomic import atomic_dir
from loram_core.configs import build_config
from loram_core.lifecycle.pruned_folder import (META, finish_folder, load_pruned_model, mark_incomplete, read_meta,
                                                 save_pruned_model_weights)
from loram_core.lifecycle.resources import Resources
from loram_core.lifecycle.rundir import RunDir, stage_key


@attrs.frozen
class AlignContext:
    tokenizer: Any
    original_config: Any
    plan: Any
    seed: int
    progress: bool
    work_dir: Any  # RUN_DIR/checkpoints/align: for the aligner's own checkpoints
    model_path: str | None = None  # the original model (local folder or hub id): a distillation teacher
    device: str = "auto"  # where to train: "auto" (CUDA when visible), "cpu" or "cuda" (placement.py)


def run_align(run: RunDir, res: Resources) -> dict:
    s = res.settings
    key = stage_key("align", (run.record("prune") or {}).get("key"), s.aligner, s.aligner_options, s.seed)
    done = run.done("align", key, run.pruned / META)
    if done:
        return done
    aligner = registry.get("aligner", s.aligner)
    config = build_config(aligner.config_cls, dict(s.aligner_options), owner=f"aligner '{aligner.name}'")
    _start_from_unaligned(run, res)
    model, plan = load_pruned_model(run, res)
    context = AlignContext(res.tokenizer, res.config, plan, s.seed, res.progress, run.checkpoints / "align",
                           model_path=res.model_path, device=s.device)
    result = dict(aligner.align(model, config, context) or {})
    meta = read_meta(run.pruned)
    # Under accelerate launch every process runs the aligner (a distributed aligner synchronizes its own
    # updates, as train_lora does); the main process alone writes the result.
    if distributed.is_main_process():
        with atomic_dir(run.pruned) as tmp:  # same layout as prune wrote, weights replaced by the aligned ones
            save_pruned_model_weights(model, tmp)
            finish_folder(tmp, res.config, res.tokenizer, {**meta, "aligned_by": {"aligner": aligner.name, "key": key}})
    return run.finish("align", key, {"aligner": aligner.name, **result})


def _start_from_unaligned(run: RunDir, res: Resources) -> None:
    """pruned/ may hold weights an earlier alignment with other options wrote: aligning those again would
    compound the two. Start over from the pruner's weights (or, for a run from a published folder, from the
    publisher's, aligned or not: that is the base its user chose)."""
    previous = read_meta(run.pruned).get("aligned_by")
    published = (run.record("prune") or {}).get("published") or {}
    if previous and previous.get("key") != published.get("aligned_key"):
        from loram_core.lifecycle.prune import run_prune

        mark_incomplete(run.pruned)  # without its marker the prune stage writes pruned/ again
        run_prune(run, res)
