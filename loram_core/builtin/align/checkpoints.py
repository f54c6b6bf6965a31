"""Alignment checkpoints: ``WORK_DIR/step-N/`` with the trainable weights, optimizer, schedule and history.

Written atomically (``loram_core.atomic``) by the main process; read with safetensors and
``torch.load(weights_only=True)``: a checkpoint folder is data, never code. A checkpoint is resumed only
when its fingerprint (config, data, seed, model, plan, starting weights) matches the run's.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import torch

from loram_core.atomic import atomic_dir, write_json
from loram_core.errors import LoramError
from loram_core.train.loop import list_checkpoints  # the same step-N layout as LoRA training

KEEP_CHECKPOINTS = 2
WEIGHTS = "model.safetensors"


def _weights_sample(p: torch.Tensor) -> bytes:
    """A strided sample of a tensor's values: tells one starting model from another without hashing GBs."""
    flat = p.detach().reshape(-1)
    return flat[:: max(1, flat.numel() // 4096)].float().cpu().numpy().tobytes()


def fingerprint(config_dict: dict, *, aligner: str, seed: int, processes: int, model, plan, data_digest: str,
                trainable: list[tuple[str, torch.Tensor]]) -> str:
    """What must match for a checkpoint to be resumed. ``batch_size`` counts globally (x processes)."""
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


def save_checkpoint(folder: Path, step: int, trainable, optimizer, scheduler, history: dict[str, list[float]],
                    config_dict: dict, fp: str) -> None:
    from safetensors.torch import save_file

    with atomic_dir(folder / f"step-{step}") as tmp:
        save_file({n: p.detach().cpu().contiguous() for n, p in trainable}, str(tmp / WEIGHTS))
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
        write_json(tmp / "state.json", {"step": step, "history": history, "config": config_dict, "fingerprint": fp})
    found = list_checkpoints(folder)
    mine = [c for c in found if c[2] == fp]
    stale = [c for c in found if c[2] != fp]  # another config's checkpoints are stale for this run dir
    for _, path, _ in mine[:-KEEP_CHECKPOINTS] + stale:
        shutil.rmtree(path, ignore_errors=True)


def load_checkpoint(path: Path, trainable, optimizer, scheduler) -> tuple[int, dict[str, Any]]:
    """Copy the checkpoint's weights into ``trainable`` and restore optimizer and schedule; (step, history)."""
    from safetensors.torch import load_file

    state = json.loads((path / "state.json").read_text())
    weights = load_file(str(path / WEIGHTS))
    names = {n for n, _ in trainable}
    if set(weights) != names:
        odd = sorted(set(weights) ^ names)[0]
        raise LoramError(f"alignment checkpoint {path} does not fit the model (e.g. {odd})")
    with torch.no_grad():
        for name, p in trainable:
            if weights[name].shape != p.shape:
                raise LoramError(f"alignment checkpoint {path}: {name} is {tuple(weights[name].shape)}, "
                                 f"the model's is {tuple(p.shape)}")
            p.copy_(weights[name])
    optimizer.load_state_dict(torch.load(path / "optimizer.pt", map_location="cpu", weights_only=True))
    scheduler.load_state_dict(torch.load(path / "scheduler.pt", map_location="cpu", weights_only=True))
    return int(state["step"]), {k: [float(x) for x in v] for k, v in state["history"].items()}
