"""Where the model computes and in which dtype: ``--device cpu|cuda|auto`` and ``--dtype auto|fp32|bf16|fp16``.

``auto`` picks CUDA when there is a GPU, and bf16 on GPUs that support it, fp32 everywhere else: on a CPU without
bf16 instructions fp32 is ~3.5x faster (docs/architecture.md, "Running offline and on CPUs"), so CPU defaults stay
exactly as before. Under ``accelerate launch`` each process's GPU comes from accelerate (``LOCAL_RANK``), not from
here. Pruning is not placed: plans are decided in fp32 on the CPU, so they do not depend on the machine.
"""

from __future__ import annotations

import attrs
import torch

from loram_core.errors import LoramError

DEVICES = ("auto", "cpu", "cuda")
DTYPES = {"auto": None, "fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def check_device(_inst, attribute, value) -> None:
    """attrs validator for settings."""
    if value not in DEVICES:
        raise ValueError(f"{attribute.name} must be one of {', '.join(DEVICES)}, got {value!r}")


def check_dtype(_inst, attribute, value) -> None:
    if value not in DTYPES:
        raise ValueError(f"{attribute.name} must be one of {', '.join(DTYPES)}, got {value!r}")


def resolve_device(device: str = "auto") -> str:
    """"cpu" or "cuda"; asking for CUDA where there is none is the user's error."""
    if device not in DEVICES:
        raise LoramError(f"--device must be one of {', '.join(DEVICES)}, got {device!r}")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise LoramError("--device cuda: no CUDA GPU is visible to torch (use --device cpu or auto)")
    return device


def resolve_dtype(dtype: str, device: str) -> torch.dtype:
    """``auto``: bf16 on a CUDA GPU that supports it, else fp32; a named dtype is taken as given."""
    if dtype not in DTYPES:
        raise LoramError(f"--dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    if dtype != "auto":
        return DTYPES[dtype]
    if device == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


@attrs.frozen
class Placement:
    device: str  # "cpu" | "cuda" (the process's current CUDA device)
    dtype: torch.dtype

    @classmethod
    def from_settings(cls, settings) -> Placement:
        device = resolve_device(getattr(settings, "device", "auto"))
        return cls(device, resolve_dtype(getattr(settings, "dtype", "auto"), device))

    @property
    def dtype_name(self) -> str:
        return {v: k for k, v in DTYPES.items() if v is not None}[self.dtype]

    def place(self, model: torch.nn.Module, *, cast: bool = True) -> torch.nn.Module:
        """Move ``model`` to the device, and to the dtype when ``cast`` (not for a quantized model, whose
        packed weights a dtype cast would break: its quantizer chose their dtypes)."""
        if cast:
            model = model.to(dtype=self.dtype)
        return model.to(self.device)
