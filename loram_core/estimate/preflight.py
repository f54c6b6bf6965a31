"""The preflight: before a run trains, ``loram estimate``'s figure for its settings (from the config alone, before
any weight file is opened) against the memory this machine has, and the bytes its stages will write against the
free disk; a run that would not fit stops with one line naming the need and what would fit, before anything is
written (docs/scaling.md, "Larger than memory"). ``--no-preflight`` runs anyway: the estimates are first-order
models, the measured peak is the truth."""

from __future__ import annotations

import attrs

from loram_core.errors import LoramError
from loram_core.train.targets import target_leaves

GIB = 2**30


def available_bytes(device: str = "cpu") -> int | None:
    """Memory a new allocation can get now: the kernel's MemAvailable, or the CUDA device's free memory."""
    if device == "cuda":
        import torch

        return int(torch.cuda.mem_get_info()[0])
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def train_need(settings, config) -> int:
    """Bytes that training with ``settings`` needs above the process's start, by ``loram estimate``'s model."""
    return train_estimate(settings, config).total


def train_estimate(settings, config):
    """``loram estimate``'s ``MemoryEstimate`` for training with ``settings``."""
    from loram_core import registry
    from loram_core.arch import adapter_for
    from loram_core.configs import build_config
    from loram_core.estimate.memory import estimate_train_memory
    from loram_core.estimate.params import estimate_params
    from loram_core.lifecycle.prune import pruner_config as prune_config
    from loram_core.placement import Placement
    from loram_core.protocols import quantizer_bits

    arch = adapter_for(config)
    bits = None
    if settings.quantizer:
        quantizer = registry.get("quantizer", settings.quantizer)
        bits = quantizer_bits(quantizer, build_config(quantizer.config_cls, dict(settings.quantizer_options),
                                                      owner=f"quantizer '{settings.quantizer}'"))
    pruner = registry.get("pruner", settings.pruner)
    pruner_config = prune_config(pruner, settings, say=lambda _message: None)  # the prune stage says it
    params = estimate_params(config, arch, pruner, pruner_config, bits=bits)
    dtype_bytes = Placement.from_settings(settings).dtype.itemsize
    return estimate_train_memory(
        config, arch, params, ratio=getattr(pruner_config, "ratio", None), batch_size=settings.batch_size,
        seq_len=settings.seq_len, rank=settings.rank, dtype_bytes=dtype_bytes, targets=target_leaves(config, settings.target_modules),
        gradient_checkpointing=settings.gradient_checkpointing, loss_chunk=settings.loss_chunk,
        align_to=getattr(pruner_config, "align_to", 1))


def _what_fits(settings, config, available: int) -> list[str]:
    """The single changes to ``settings`` whose estimate fits, as the flags that make them."""
    from loram_core import registry

    tries = []
    if not settings.gradient_checkpointing:
        tries.append(("--gradient-checkpointing", {"gradient_checkpointing": True}))
    if not settings.quantizer and "nf4" in registry.collect("quantizer"):
        tries.append(("--quantizer nf4", {"quantizer": "nf4"}))
    tries += [(f"--ratio {r:g}", {"ratio": r}) for r in (0.65, 0.75, 0.85, 0.95) if r > settings.ratio]
    if settings.batch_size > 1:
        tries.append(("--batch-size 1", {"batch_size": 1}))
    fits = []
    for flag, change in tries:
        if train_need(attrs.evolve(settings, **change), config) <= available:
            fits.append(flag)
            if flag.startswith("--ratio"):
                tries = [t for t in tries if not t[0].startswith("--ratio")]  # the least aggressive ratio only
    return list(dict.fromkeys(fits))


def check_train_fits(settings, config) -> None:
    from loram_core.placement import resolve_device

    available = available_bytes(resolve_device(settings.device))
    if available is None:
        return  # no reading: nothing to compare with
    need = train_need(settings, config)
    if need <= available:
        return
    fits = _what_fits(settings, config, available)
    advice = f"each of these would fit: {', '.join(fits)}" if fits else "no single change of quantizer, ratio or savers fits"
    raise LoramError(f"training needs about {_size(need)} by loram estimate's model and this machine has "
                     f"{_size(available)} available; {advice}; --no-preflight trains anyway")


def _size(n: int) -> str:
    return f"{n / GIB:.1f} GiB" if n >= GIB else f"{n / 2**20:.0f} MiB"


def checkpoint_bytes(model_path: str) -> int:
    """Bytes of a model folder's safetensors files (0 for anything else)."""
    from pathlib import Path

    return sum(f.stat().st_size for f in Path(model_path).glob("*.safetensors")) if Path(model_path).is_dir() else 0


def write_need(settings, config, model_path: str, stages: set[str]) -> dict[str, int]:
    """Bytes each stage in ``stages`` writes: the pruned weights (a streaming pruner's copies keep the
    checkpoint's dtype, an in-memory pruner's model is fp32) and ``merged/`` (the original's size: its
    tensors keep their dtype)."""
    from loram_core import registry
    from loram_core.arch import adapter_for
    from loram_core.estimate.params import estimate_params
    from loram_core.lifecycle.prune import pruner_config as prune_config
    from loram_core.protocols import Pruner, optional_member

    need = {}
    if "prune" in stages and not settings.pruned:
        pruner = registry.get("pruner", settings.pruner)
        params = estimate_params(config, adapter_for(config), pruner, prune_config(pruner, settings, say=lambda _m: None))
        held = params.pruned if params.pattern == "structured" else params.original
        stored = checkpoint_bytes(model_path)
        streaming = optional_member(pruner, Pruner, "streaming")
        need["prune"] = int(held * (stored / params.original if streaming and stored else 4))
    if "merge" in stages and settings.merge:
        need["merge"] = checkpoint_bytes(model_path)
    return need


def check_disk_fits(settings, config, model_path: str, run_root, stages: set[str]) -> None:
    import shutil
    from pathlib import Path

    need = write_need(settings, config, model_path, stages)
    folder = Path(run_root).absolute()
    while not folder.exists():
        folder = folder.parent
    free = shutil.disk_usage(folder).free
    if sum(need.values()) > free:
        parts = ", ".join(f"{stage} {_size(n)}" for stage, n in need.items())
        raise LoramError(f"the run writes about {_size(sum(need.values()))} ({parts}) and {folder} has {_size(free)} "
                         f"free; free some space, choose another --out{', or --no-merge' if 'merge' in need else ''}; "
                         f"--no-preflight writes anyway")
