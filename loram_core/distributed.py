"""Several processes under ``accelerate launch`` / ``torchrun``: who writes, and waiting for the writer.

Every process runs the same ``loram`` command. Training (and aligning) is collective; everything that
writes to RUN_DIR (stage records, run.json, the report, the prune/recover/merge/eval stages) happens on
the main process only, and the others wait at a barrier before reading what it wrote. With one process
(the usual ``loram ...``) every function here is a no-op and no process group is ever created.
"""

from __future__ import annotations

import os
from typing import Callable, TypeVar

from loram_core.errors import warn

T = TypeVar("T")

# The launchers' variables, as accelerate reads them (torchrun sets WORLD_SIZE/RANK; MPI the others).
_SIZE = ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")
_RANK = ("RANK", "PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK")


def _env_int(names: tuple[str, ...], default: int) -> int:
    for name in names:
        value = os.environ.get(name)
        if value not in (None, ""):
            return int(value)
    return default


def process_count() -> int:
    return _env_int(_SIZE, 1)


def process_index() -> int:
    return _env_int(_RANK, 0)


def is_main_process() -> bool:
    return process_index() == 0


def state(cpu: bool | None = None):
    """accelerate's process state (creates the process group, gloo on CPU / nccl on GPU, on first use).

    ``cpu`` must agree with the ``Accelerator`` the training loop creates later in the same process.
    """
    import torch
    from accelerate import PartialState

    if cpu is None:
        cpu = not torch.cuda.is_available()
    return PartialState(cpu=cpu)


def barrier(cpu: bool | None = None) -> None:
    """Wait for every process; nothing to wait for with one."""
    if process_count() > 1:
        state(cpu).wait_for_everyone()


def on_main(fn: Callable[[], T], cpu: bool | None = None) -> T | None:
    """Run ``fn`` on the main process only; every process returns once it has finished."""
    result = fn() if is_main_process() else None
    barrier(cpu)
    return result


def warn_single_cpu_launch() -> None:
    """``accelerate launch --cpu --num_processes N`` starts ONE process without an MPI hostfile (accelerate
    1.x); the run would silently train on 1/N of the global batch. Say so, with the launcher that works."""
    asked = os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes") and "MASTER_ADDR" in os.environ
    if asked and process_count() == 1:
        warn("accelerate started a single CPU process; for N CPU processes use the torchrun launcher: "
             "'accelerate launch --multi_gpu --num_processes N ...' (gloo when no GPU is visible), or "
             "'torchrun --nproc_per_node N -m loram_core.cli ...'")


def run_stage(fn: Callable[..., T], *args, collective: bool, device: str = "auto") -> T | None:
    """Run one lifecycle stage under the rules above (``collective``: every process takes part, as the stage
    table says of train and align); returns once every process may go on."""
    if process_count() == 1:
        return fn(*args)
    from loram_core.placement import resolve_device

    cpu = resolve_device(device) == "cpu"  # must match the training loop's Accelerator(cpu=...)
    if collective:
        barrier(cpu)  # the main process may have just written what this stage reads
        result = fn(*args)
        barrier(cpu)
        return result
    return on_main(lambda: fn(*args), cpu)
