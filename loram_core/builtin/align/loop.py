"""The full-parameter training loop of the aligners: accelerate-driven, deterministic per step, resumable.

Like the LoRA loop (``loram_core/train/loop.py``): an ``Accelerator`` prepares model, optimizer and
schedule; every process draws the whole global batch of a step from a generator seeded by (seed, step) and
trains on its slice (``loram_core.train.batches``); gradients are synchronized by accelerate; the main process
alone writes checkpoints (``loram_core.train.checkpoints``: ``WORK_DIR/step-N/`` with the trainable weights).

Frozen parameters get ``requires_grad=False`` and are never handed to the optimizer, so they come out
bit-identical. Mask entries of the plan (N:M, unstructured) keep their zeros: the masked gradients are
zeroed before each update and the masks re-applied to the weights after it.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any, Callable

import attrs
import torch

from loram_core.builtin.align.mixture import MixtureData
from loram_core.errors import LoramError
from loram_core.train import checkpoints
from loram_core.train.batches import ALIGN, rank_rows, seed_of
from loram_core.train.progress import step_progress_bar

# objective(model, batch) -> (loss to backpropagate, {name: detached scalar} to record per step)
Objective = Callable[[torch.nn.Module, torch.Tensor], "tuple[torch.Tensor, dict[str, torch.Tensor]]"]


@attrs.frozen(kw_only=True)
class AlignRun:
    steps: int
    tokens: int  # all steps of the run, resumed ones included (global)
    tokens_per_s: float  # tokens trained by this call / wall time of its loop (0.0 when nothing was left)
    history: dict  # "loss" and the objective's parts: one value per step
    frozen: tuple[str, ...]
    resumed_from: int | None


def freeze(model: torch.nn.Module, patterns: tuple[str, ...]) -> tuple[list[str], list[tuple[str, torch.nn.Parameter]]]:
    """Freeze every parameter one of whose names (tied weights have several) contains a pattern; the rest
    train. Returns (frozen names, trainable (name, parameter)); a pattern that matches nothing is an error."""
    names: dict[int, list[str]] = {}
    params: dict[int, torch.nn.Parameter] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        names.setdefault(id(p), []).append(name)
        params[id(p)] = p
    unmatched = [pat for pat in patterns if not any(pat in n for ns in names.values() for n in ns)]
    if unmatched:
        raise LoramError(f"frozen: no parameter name contains {', '.join(map(repr, unmatched))}")
    frozen: list[str] = []
    for key, p in params.items():
        is_frozen = any(pat in n for n in names[key] for pat in patterns)
        p.requires_grad_(not is_frozen)
        if is_frozen:
            frozen += names[key]
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not trainable:
        raise LoramError(f"frozen {list(patterns)} leaves no parameter to train")
    return sorted(frozen), trainable


def plan_masks(model: torch.nn.Module, plan) -> list[tuple[torch.nn.Parameter, torch.Tensor]]:
    """(weight, pruned positions) of each trainable weight under a mask entry of the plan."""
    out = []
    for name, entry in (getattr(plan, "entries", None) or {}).items():
        if getattr(entry, "kind", None) != "mask":
            continue
        weight = model.get_submodule(name).weight
        if tuple(entry.mask.shape) != tuple(weight.shape):
            raise LoramError(f"{name}: the plan's mask is {tuple(entry.mask.shape)}, the weight {tuple(weight.shape)}")
        if weight.requires_grad:
            out.append((weight, ~entry.mask.to(device=weight.device, dtype=torch.bool)))
    return out


def _optimizer(cfg, params):
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def effective_steps(cfg, processes: int = 1) -> int:
    """``steps``, capped by ``token_budget`` at whole steps of the global batch."""
    per_step = cfg.batch_size * processes * cfg.grad_accum * cfg.seq_len
    if cfg.token_budget is None:
        return cfg.steps
    if cfg.token_budget < per_step:
        raise LoramError(f"token_budget {cfg.token_budget} is less than one step ({per_step} tokens: batch_size "
                         f"{cfg.batch_size} x {processes} process(es) x grad_accum {cfg.grad_accum} "
                         f"x seq_len {cfg.seq_len})")
    return min(cfg.steps, cfg.token_budget // per_step)


def _weights_sample(p: torch.Tensor) -> bytes:
    """A strided sample of a tensor's values: tells one starting model from another without hashing GBs."""
    flat = p.detach().reshape(-1)
    return flat[:: max(1, flat.numel() // 4096)].float().cpu().numpy().tobytes()


def _fingerprint(config_dict: dict, *, aligner: str, seed: int, processes: int, model, plan, data_digest: str,
                trainable: list[tuple[str, torch.Tensor]]) -> str:
    """What must match for a checkpoint to be resumed: config (``batch_size`` counted globally, x processes),
    aligner, seed, model config, plan, data and starting weights (docs/alignment.md)."""
    from loram_core.plan import PrunePlan
    from loram_core.plan.serialize import plan_hash

    h = hashlib.sha256()
    settings = dict(config_dict)
    settings.pop("checkpoint_every", None)
    settings["batch_size"] = settings["batch_size"] * processes
    h.update(json.dumps({"aligner": aligner, "seed": seed, "config": settings}, sort_keys=True, default=str).encode())
    base_config = getattr(model, "config", None)
    if base_config is not None:
        h.update(base_config.to_json_string(use_diff=False).encode())
    h.update((plan_hash(plan) if isinstance(plan, PrunePlan) else repr(sorted(getattr(plan, "entries", {})))).encode())
    h.update(data_digest.encode())
    for name, p in model.state_dict().items():
        h.update(f"{name}:{tuple(p.shape)}:{p.dtype};".encode())
        h.update(_weights_sample(p))
    for name, _ in trainable:
        h.update(f"trainable:{name};".encode())
    return h.hexdigest()


def train_full(model: torch.nn.Module, cfg, context, data: MixtureData, objective: Objective, *,
               aligner: str, accelerator=None) -> AlignRun:
    """Train ``model``'s unfrozen parameters in place on windows of ``data`` with ``objective``.

    Resumes from the newest checkpoint under ``context.work_dir`` whose fingerprint matches. The model is
    left on the device and in the train/eval mode it came in, with its ``requires_grad`` flags restored.
    """
    from transformers import get_scheduler

    vocab = model.get_input_embeddings().num_embeddings
    for name, stream in zip(data.mixture.names, data.train):
        if int(stream.max()) >= vocab or int(stream.min()) < 0:
            raise LoramError(f"'{name}' holds token ids outside the model's vocabulary (size {vocab})")
    accelerator = accelerator or make_accelerator(cfg, context)
    if accelerator.distributed_type.value in ("FSDP", "DEEPSPEED"):
        raise LoramError("the built-in aligners train on one process or under DDP; FSDP / DeepSpeed shard the "
                         "weights they train in place (use accelerate launch with the multi-GPU / CPU backend)")
    world, rank = accelerator.num_processes, accelerator.process_index
    steps = effective_steps(cfg, world)
    first = next(model.parameters())
    home, was_training = first.device, model.training
    grad_flags = {id(p): p.requires_grad for p in model.parameters()}
    frozen, trainable = freeze(model, cfg.frozen)
    config_dict = {**cfg.to_dict(), "steps": steps}
    fp = _fingerprint(config_dict, aligner=aligner, seed=context.seed, processes=world, model=model,
                      plan=context.plan, data_digest=data.digest(), trainable=trainable)
    optimizer = _optimizer(cfg, [p for _, p in trainable])
    schedule = "constant_with_warmup" if cfg.schedule == "constant" else cfg.schedule
    scheduler = get_scheduler(schedule, optimizer, num_warmup_steps=cfg.warmup_steps, num_training_steps=steps)
    prepared, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    masks = plan_masks(model, context.plan)
    prepare_objective = getattr(objective, "prepare", None)
    if prepare_objective is not None:
        prepare_objective(accelerator.device, first.dtype)

    start, history, resumed_from = 0, {"loss": []}, None
    work_dir = Path(context.work_dir) if context.work_dir is not None and cfg.checkpoint_every else None
    if work_dir is not None:
        found = checkpoints.resumable(work_dir, fp, steps)
        if found is not None:
            state = checkpoints.load_checkpoint(found, lambda folder: checkpoints.read_parameters(folder, trainable),
                                                optimizer, scheduler)
            start = int(state["step"])
            history = {k: [float(x) for x in v] for k, v in state["history"].items()}
            resumed_from = start

    rows = cfg.grad_accum * cfg.batch_size * world
    tokens_per_step = rows * cfg.seq_len
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    show = bool(context.progress) and accelerator.is_main_process
    accelerator.wait_for_everyone()
    prepared.train()
    t0 = time.perf_counter()
    try:
        with torch.random.fork_rng(devices=devices), step_progress_bar(show, aligner) as bar:
            task = bar.add_task(aligner, total=steps, completed=start, loss="-", tps="-")
            for step in range(start, steps):
                # dropout, if any: the same masks whether or not the run was resumed
                torch.manual_seed(seed_of(ALIGN, context.seed, step, rank, 1))
                global_rows, _ = data.sample(rows, cfg.seq_len, context.seed, step)
                record: dict[str, float] = {}
                for micro in range(cfg.grad_accum):
                    batch = rank_rows(global_rows, micro, cfg.batch_size, world, rank).to(accelerator.device)
                    with accelerator.accumulate(prepared):
                        loss, parts = objective(prepared, batch)
                        accelerator.backward(loss)
                        if accelerator.sync_gradients:
                            _update(accelerator, cfg, trainable, masks, optimizer, scheduler)
                    for key, value in {"loss": loss.detach(), **parts}.items():
                        mean = accelerator.reduce(value.detach(), "mean").item()
                        record[key] = record.get(key, 0.0) + mean / cfg.grad_accum
                for key, value in record.items():
                    history.setdefault(key, []).append(value)
                done = step + 1
                elapsed = time.perf_counter() - t0
                tps = (done - start) * tokens_per_step / elapsed if elapsed > 0 else 0.0
                bar.update(task, completed=done, loss=f"{record['loss']:.4f}", tps=f"{tps:,.0f}")
                if work_dir is not None and done % cfg.checkpoint_every == 0:
                    if accelerator.is_main_process:
                        state = {"step": done, "history": history, "config": config_dict, "fingerprint": fp}
                        checkpoints.save_checkpoint(work_dir, state,
                                                    lambda folder: checkpoints.write_parameters(folder, trainable),
                                                    optimizer, scheduler)
                    accelerator.wait_for_everyone()
        elapsed = time.perf_counter() - t0
    finally:
        model.train(was_training)
        for p in model.parameters():
            p.requires_grad_(grad_flags.get(id(p), True))
    del prepared, optimizer, scheduler
    model.to(home)
    trained = (steps - start) * tokens_per_step
    accelerator.wait_for_everyone()
    return AlignRun(steps=steps, tokens=steps * tokens_per_step,
                    tokens_per_s=trained / elapsed if trained and elapsed > 0 else 0.0,
                    history=history, frozen=tuple(frozen), resumed_from=resumed_from)


def _update(accelerator, cfg, trainable, masks, optimizer, scheduler) -> None:
    """One optimizer update; pruned (masked) weights get no gradient and are zeroed again afterwards."""
    for weight, pruned in masks:
        if weight.grad is not None:
            weight.grad.masked_fill_(pruned, 0.0)
    if cfg.max_grad_norm > 0:
        accelerator.clip_grad_norm_([p for _, p in trainable], cfg.max_grad_norm)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    with torch.no_grad():
        for weight, pruned in masks:
            weight.masked_fill_(pruned, 0.0)


def make_accelerator(cfg, context):
    from accelerate import Accelerator

    from loram_core.placement import resolve_device

    return Accelerator(
        cpu=resolve_device(getattr(context, "device", "auto")) == "cpu",
        gradient_accumulation_steps=cfg.grad_accum,
        step_scheduler_with_optimizer=False,  # our steps are global
    )


def summary(run: AlignRun) -> dict[str, Any]:
    """The training part of an aligner's result."""
    losses = run.history.get("loss", [])
    out = {"steps": run.steps, "tokens": run.tokens, "tokens_per_s": run.tokens_per_s,
           "loss_first": losses[0] if losses else None, "loss_last": losses[-1] if losses else None,
           "losses": list(losses), "frozen": list(run.frozen), "resumed_from": run.resumed_from}
    for key, values in run.history.items():
        if key != "loss" and values:
            out[f"{key}_first"], out[f"{key}_last"] = values[0], values[-1]
    return out
