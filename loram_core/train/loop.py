"""The LoRA training loop: accelerate-driven, deterministic per step, resumable from checkpoints."""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from pathlib import Path
from typing import Any, Callable

import attrs
import torch

from loram_core import memory
from loram_core.errors import LoramError, warn
from loram_core.train import checkpoints
from loram_core.train.adapter_files import read_adapter, save_adapter, write_adapter
from loram_core.train.batches import log_starts, rank_rows, seed_of
from loram_core.train.config import TrainConfig
from loram_core.train.lora import attach_lora, trainable_parameters
from loram_core.train.loss import token_nll
from loram_core.train.metrics import MetricsLog
from loram_core.train.sources import ExampleRows, TokenStream
from loram_core.train.progress import step_progress_bar


@attrs.frozen(kw_only=True)
class TrainResult:
    steps: int
    tokens: int  # all steps of the run, resumed ones included
    tokens_per_s: float  # tokens trained by this call / wall time of its loop (0.0 when nothing was left)
    loss_first: float
    loss_last: float
    losses: tuple[float, ...] = attrs.field(converter=tuple)
    train_peak_rss_mb: float | None
    resumed_from: int | None
    processes: int = 1  # training processes (accelerate launch); each took batch_size rows per micro-step

    def report(self) -> dict[str, Any]:
        """The ``train`` block of ``report.json`` (docs/architecture.md)."""
        keys = ("steps", "tokens", "tokens_per_s", "loss_first", "loss_last")
        return {k: getattr(self, k) for k in keys}


def _source(model: torch.nn.Module, train_data, cfg: TrainConfig) -> TokenStream | ExampleRows:
    """A 1-D tensor of token ids is a ``TokenStream`` with every token trained."""
    source = train_data if isinstance(train_data, (TokenStream, ExampleRows)) else TokenStream(train_data)
    source.check(cfg, model.get_input_embeddings().num_embeddings)
    return source


def _fingerprint(cfg: TrainConfig, model: torch.nn.Module, source, processes: int = 1) -> str:
    """What must match for a checkpoint to be resumed: config (minus checkpoint cadence), adapter shapes,
    base config and the training tokens. Frozen base weights are not hashed (too costly at 7B).
    ``batch_size`` counts as the global micro-batch (per process x processes), so a run resumes on another
    number of processes when the global batch stays the same; with one process the hash is unchanged."""
    h = hashlib.sha256()
    settings = cfg.to_dict()
    settings.pop("checkpoint_every")
    settings["batch_size"] = cfg.batch_size * processes
    h.update(json.dumps(settings, sort_keys=True).encode())
    base_config = getattr(model, "config", None)
    if base_config is not None:
        h.update(base_config.to_json_string(use_diff=False).encode())
    for name, p in trainable_parameters(model):
        h.update(f"{name}:{tuple(p.shape)}:{p.dtype};".encode())
    h.update(source.digest())
    return h.hexdigest()


def train_lora(
    model: torch.nn.Module,
    train_data: torch.Tensor | TokenStream | ExampleRows,
    cfg: TrainConfig,
    *,
    adapter_dir: Path,
    checkpoint_dir: Path | None = None,
    base_model_name_or_path: str | None = None,
    progress: bool = True,
    rss_baseline_mb: float | None = None,
    device: str = "auto",
    metrics: Path | None = None,
    tensorboard: Path | None = None,
    validate: Callable[[torch.nn.Module], float] | None = None,
    eval_every: int = 0,
) -> TrainResult:
    """Train LoRA on ``model`` (a ``PeftModel``, or a plain model that gets ``attach_lora(model, cfg)``
    in place) over random windows of ``train_tokens``; write the PEFT adapter to ``adapter_dir``.

    Resumes from the newest checkpoint in ``checkpoint_dir`` made with the same config and data.
    The model is left in the train/eval mode it came in.
    ``train_peak_rss_mb`` is the resident-set peak of the loop (VmHWM, reset just before it) minus
    ``rss_baseline_mb``; without one, minus the RSS at the loop's start (the training overhead alone).

    Under ``accelerate launch`` (DDP, FSDP, DeepSpeed) every process calls this: ``batch_size`` is per
    process, the global batch of a step is ``batch_size x processes x grad_accum`` windows drawn alike on
    every process, of which each trains on its slice; gradients are synchronized by accelerate, the loss is
    averaged across processes, and only the main process writes checkpoints and the adapter (gathered from
    all processes first). ``device``: "auto" (CUDA when visible), "cpu" or "cuda".

    ``metrics``: a ``metrics.jsonl`` to log each step to (``tensorboard``: also event files there);
    ``validate(model) -> loss`` runs every ``eval_every`` steps and after the last (its time is not training's).
    """
    import peft
    from accelerate import Accelerator
    from transformers import get_scheduler

    from loram_core import distributed
    from loram_core.placement import resolve_device

    source = _source(model, train_data, cfg)
    if cfg.gradient_checkpointing:
        # Non-reentrant: works with frozen inputs (no enable_input_require_grads) and restores the RNG, so
        # LoRA dropout draws the same masks when a layer is recomputed.
        kwargs = {"use_reentrant": False}
        if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.x renamed it
            model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    if not isinstance(model, peft.PeftModel):
        model = attach_lora(model, cfg)
    accelerator = Accelerator(
        cpu=resolve_device(device) == "cpu",
        gradient_accumulation_steps=cfg.grad_accum,
        # accelerate would step the schedule once per process per update; our steps are global
        step_scheduler_with_optimizer=False,
    )
    world, rank = accelerator.num_processes, accelerator.process_index
    if accelerator.is_main_process:
        distributed.warn_single_cpu_launch()
    # FSDP and DeepSpeed shard the optimizer state, which our checkpoint format (one optimizer.pt) cannot
    # hold; the adapter itself is gathered and saved whatever the backend.
    sharded = accelerator.distributed_type.value in ("FSDP", "DEEPSPEED")
    params = [p for _, p in trainable_parameters(model)]
    if not params:
        raise LoramError("the model has no trainable parameters")
    fingerprint = _fingerprint(cfg, model, source, world)
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    schedule = "constant_with_warmup" if cfg.schedule == "constant" else cfg.schedule
    scheduler = get_scheduler(
        schedule, optimizer, num_warmup_steps=cfg.warmup_steps, num_training_steps=cfg.steps
    )
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    unwrapped = accelerator.unwrap_model(model)

    start, losses, resumed_from = 0, [], None
    if checkpoint_dir is not None and sharded:
        if accelerator.is_main_process:
            warn("no training checkpoints under FSDP/DeepSpeed (sharded optimizer state); an interrupted run starts over")
        checkpoint_dir = None
    if checkpoint_dir is not None:
        checkpoint_dir = Path(checkpoint_dir)
        found = checkpoints.resumable(checkpoint_dir, fingerprint, cfg.steps)
        if found is not None:
            state = checkpoints.load_checkpoint(found, lambda folder: read_adapter(unwrapped, folder), optimizer,
                                                scheduler)
            start, losses = int(state["step"]), [float(x) for x in state["losses"]]
            resumed_from = start

    was_training = model.training
    model.train()  # LoRA dropout on
    # global tokens (padding not counted) of the steps before this call's first, so the total counts them too
    earlier_tokens = sum(source.global_batch(s, cfg, world).tokens for s in range(start))
    trained = 0  # tokens this call trained on
    debug_batches = os.environ.get("LORAM_DEBUG_BATCHES")  # which windows each process trained on (tests)
    show = progress and accelerator.is_main_process
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    accelerator.wait_for_everyone()
    peak_reset = memory.reset_peak_rss()
    rss_start = memory.current_rss_mb()
    t0 = time.perf_counter()
    log = MetricsLog(metrics, tensorboard, start) if metrics is not None and accelerator.is_main_process else None
    paused = 0.0  # seconds spent validating, left out of tokens/s
    try:
        with torch.random.fork_rng(devices=devices), step_progress_bar(show) as bar:
            task = bar.add_task("train", total=cfg.steps, completed=start, loss="-", tps="-")
            for step in range(start, cfg.steps):
                # Dropout masks from (seed, step, rank): identical whether or not the run was resumed.
                torch.manual_seed(seed_of(cfg.seed, step, rank, 1))
                rows = source.global_batch(step, cfg, world)
                trained += rows.tokens
                # the step's loss is the mean over the global batch's trained tokens: each micro-batch's sum is
                # scaled so that accelerate's 1/grad_accum and DDP's mean over processes leave exactly that
                scale = world * cfg.grad_accum / max(rows.trained, 1)
                step_loss, grad_norm = 0.0, None
                lr = optimizer.param_groups[0]["lr"]  # the rate this step's update uses
                for micro in range(cfg.grad_accum):
                    first = (micro * world + rank) * cfg.batch_size
                    batch = rows.rows(first, first + cfg.batch_size).to(accelerator.device)
                    if debug_batches:
                        mine = rank_rows(source.starts(step, cfg, world), micro, cfg.batch_size, world, rank)
                        log_starts(debug_batches, rank, step, micro, mine)
                    with accelerator.accumulate(model):
                        nll = token_nll(model, batch, cfg.loss_chunk)
                        accelerator.backward(nll * scale)
                        if accelerator.sync_gradients:
                            # the norm before clipping (inf: measured, not clipped)
                            grad_norm = float(accelerator.clip_grad_norm_(params, cfg.max_grad_norm or math.inf))
                            optimizer.step()
                            scheduler.step()
                            optimizer.zero_grad(set_to_none=True)
                    step_loss += accelerator.reduce(nll.detach(), "sum").item() / max(rows.trained, 1)
                losses.append(step_loss)
                done = step + 1
                if not math.isfinite(step_loss):  # the same on every process: the loss is reduced
                    raise LoramError(
                        f"training diverged: the loss at step {done} is {step_loss}; lower --lr (now {cfg.lr:g}), "
                        f"keep --max-grad-norm above 0 (now {cfg.max_grad_norm:g}) or train in float32, and re-run "
                        f"with --overwrite; no adapter was written")
                val_loss = None
                if validate is not None and eval_every and (done % eval_every == 0 or done == cfg.steps):
                    began = time.perf_counter()
                    val_loss = _validate(model, validate)
                    paused += time.perf_counter() - began
                if log is not None:
                    log.write(done, loss=step_loss, lr=lr, grad_norm=grad_norm, tokens=rows.tokens, val_loss=val_loss)
                elapsed = time.perf_counter() - t0 - paused
                tps = trained / elapsed if elapsed > 0 else 0.0
                bar.update(task, completed=done, loss=f"{step_loss:.4f}", tps=f"{tps:,.0f}")
                if checkpoint_dir is not None and cfg.checkpoint_every and done % cfg.checkpoint_every == 0:
                    if accelerator.is_main_process:
                        _save_checkpoint(checkpoint_dir, done, unwrapped, optimizer, scheduler, losses, cfg,
                                         fingerprint, world)
                    accelerator.wait_for_everyone()
        elapsed = time.perf_counter() - t0 - paused
        peak = memory.peak_rss_mb()
    finally:
        model.train(was_training)
        if log is not None:
            log.close()

    train_peak = None
    base = rss_baseline_mb if rss_baseline_mb is not None else rss_start
    if peak_reset and peak is not None and base is not None:
        train_peak = max(0.0, peak - base)
    # Under FSDP / ZeRO-3 every process takes part in gathering the sharded parameters onto the main one;
    # otherwise each process holds them all and PEFT reads them from the model.
    full_state = accelerator.get_state_dict(model) if sharded else None
    if accelerator.is_main_process:
        save_adapter(unwrapped, Path(adapter_dir), base_model_name_or_path, full_state)
    del full_state
    accelerator.wait_for_everyone()
    return TrainResult(
        steps=cfg.steps,
        tokens=earlier_tokens + trained,
        tokens_per_s=trained / elapsed if trained and elapsed > 0 else 0.0,
        loss_first=losses[0],
        loss_last=losses[-1],
        losses=losses,
        train_peak_rss_mb=train_peak,
        resumed_from=resumed_from,
        processes=world,
    )


def _validate(model, validate) -> float:
    model.eval()  # no dropout
    try:
        with torch.no_grad():
            return float(validate(model))
    finally:
        model.train()


def _save_checkpoint(checkpoint_dir: Path, step: int, model, optimizer, scheduler, losses: list[float],
                     cfg: TrainConfig, fingerprint: str, processes: int) -> None:
    # The global step and config are all the batch generator needs (its seed is (seed, step)), so the
    # checkpoint holds no per-process state and resumes on any number of processes.
    state = {"step": step, "losses": losses, "config": cfg.to_dict(), "fingerprint": fingerprint,
             "processes": processes, "global_batch": cfg.batch_size * processes * cfg.grad_accum}
    checkpoints.save_checkpoint(checkpoint_dir, state, lambda folder: write_adapter(model, folder), optimizer,
                                scheduler)
