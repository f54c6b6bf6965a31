"""Step checkpoints for resume, shared by LoRA training and alignment: ``DIR/step-N/``.

A checkpoint holds the trained weights (a PEFT adapter for LoRA training, ``model.safetensors`` of the
trainable parameters for alignment), ``optimizer.pt``, ``scheduler.pt`` and ``state.json`` (step, losses,
config, fingerprint). It is written atomically (``loram_core.atomic``) by the main process alone and read
with safetensors and ``torch.load(weights_only=True)``: a checkpoint folder is data, never code. A run
resumes only from a checkpoint whose fingerprint matches its own (docs/reliability.md, docs/alignment.md).
"""

from __future__ import annotations

import errno
import json
import re
import shutil
from pathlib import Path
from typing import Any, Callable

import torch

from loram_core.atomic import atomic_dir, write_json
from loram_core.errors import LoramError

KEEP_CHECKPOINTS = 2
PARAMETERS = "model.safetensors"  # the trainable parameters of an alignment checkpoint
_STEP_DIR = re.compile(r"^step-(\d+)$")


def list_checkpoints(checkpoint_dir: Path) -> list[tuple[int, Path, str | None]]:
    """(step, folder, fingerprint or None when unreadable), oldest first."""
    found = []
    if checkpoint_dir.is_dir():
        for path in checkpoint_dir.iterdir():
            m = _STEP_DIR.match(path.name)
            if not m or not path.is_dir():
                continue
            try:
                fp = json.loads((path / "state.json").read_text())["fingerprint"]
            except (OSError, ValueError, KeyError, TypeError):
                fp = None
            found.append((int(m.group(1)), path, fp))
    return sorted(found)


def resumable(checkpoint_dir: Path, fingerprint: str, steps: int) -> Path | None:
    """The newest checkpoint of this run (same fingerprint, at most ``steps``), or None."""
    usable = [c for c in list_checkpoints(checkpoint_dir) if c[2] == fingerprint and c[0] <= steps]
    return usable[-1][1] if usable else None


def save_checkpoint(checkpoint_dir: Path, state: dict[str, Any], write_weights: Callable[[Path], None],
                    optimizer, scheduler) -> None:
    """Write ``step-{state['step']}`` (``state`` becomes its ``state.json`` and holds the ``fingerprint``)
    and keep the newest ``KEEP_CHECKPOINTS`` of this fingerprint."""
    with atomic_dir(checkpoint_dir / f"step-{state['step']}") as tmp:
        write_weights(tmp)
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
        write_json(tmp / "state.json", state)
    # Checkpoints of another config are stale for this run dir.
    found = list_checkpoints(checkpoint_dir)
    mine = [c for c in found if c[2] == state["fingerprint"]]
    stale = [c for c in found if c[2] != state["fingerprint"]]
    for _, path, _ in mine[:-KEEP_CHECKPOINTS] + stale:
        shutil.rmtree(path, ignore_errors=True)


def load_checkpoint(path: Path, read_weights: Callable[[Path], None], optimizer, scheduler) -> dict[str, Any]:
    """Restore weights (``read_weights(path)``), optimizer and schedule; returns ``state.json``.

    A damaged checkpoint (a truncated file: checkpoints are written atomically, so a disk or a copy damaged
    it) is one line naming the file and what to do; training never starts from half a state."""
    try:
        state = json.loads((path / "state.json").read_text())
        read_weights(path)
        optimizer.load_state_dict(torch.load(path / "optimizer.pt", map_location="cpu", weights_only=True))
        scheduler.load_state_dict(torch.load(path / "scheduler.pt", map_location="cpu", weights_only=True))
    except LoramError:
        raise
    except (OSError, ValueError, RuntimeError, EOFError, KeyError) as exc:
        if isinstance(exc, OSError) and exc.errno is not None and exc.errno not in (errno.ENOENT, errno.EIO):
            raise
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise LoramError(f"checkpoint {path} is damaged ({reason}); delete that folder and re-run to resume from "
                         f"the one before it (or from the start)") from None
    return state


def write_parameters(folder: Path, named: list[tuple[str, torch.Tensor]]) -> None:
    """The (name, parameter) pairs of an alignment checkpoint, to ``PARAMETERS``."""
    from safetensors.torch import save_file

    save_file({n: p.detach().cpu().contiguous() for n, p in named}, str(folder / PARAMETERS))


def read_parameters(folder: Path, named: list[tuple[str, torch.Tensor]]) -> None:
    """Copy ``PARAMETERS`` into the (name, parameter) pairs; every name must be there with its shape."""
    from safetensors.torch import load_file

    weights = load_file(str(folder / PARAMETERS))
    names = {n for n, _ in named}
    if set(weights) != names:
        odd = sorted(set(weights) ^ names)[0]
        raise LoramError(f"alignment checkpoint {folder} does not fit the model (e.g. {odd})")
    with torch.no_grad():
        for name, p in named:
            if weights[name].shape != p.shape:
                raise LoramError(f"alignment checkpoint {folder}: {name} is {tuple(weights[name].shape)}, "
                                 f"the model's is {tuple(p.shape)}")
            p.copy_(weights[name])
