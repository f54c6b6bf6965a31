"""What a quantized model holds: bytes of packed weights + quantization state + unquantized parts.

``numel * element_size`` of a ``Params4bit`` counts only its packed uint8 data; the per-block absmax (8-bit
with double quantization, fp32 without), the nested fp32 absmax, the code books and the int8 row scales
(``SCB``) live beside the parameter and are counted here too. Every tensor is counted once by storage.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import torch
from torch import nn


def _state_tensors(param: torch.Tensor) -> list[torch.Tensor]:
    """Tensors held beside a quantized weight (none for a plain parameter)."""
    out = []
    state = getattr(param, "quant_state", None)  # Params4bit
    while state is not None:
        out += [t for t in (state.absmax, state.code, state.offset) if isinstance(t, torch.Tensor)]
        state = state.state2 if state.nested else None
    scb = getattr(param, "SCB", None)  # Int8Params: one fp32 scale per row
    if isinstance(scb, torch.Tensor):
        out.append(scb)
    return out


def held_param_bytes(model: nn.Module) -> int:
    """Bytes held by the model's parameters at their storage dtype, quantization state included."""
    seen: dict[tuple[int, int], int] = {}
    for p in model.parameters():
        for t in (p, *_state_tensors(p)):
            seen[(t.untyped_storage().data_ptr(), t.storage_offset())] = t.numel() * t.element_size()
    return sum(seen.values())


def logical_numel(param: torch.Tensor) -> int:
    """Weights a parameter represents: a packed 4-bit tensor holds two per byte, its quant_state knows the shape."""
    shape = getattr(getattr(param, "quant_state", None), "shape", None)
    return int(torch.Size(shape).numel()) if shape is not None else param.numel()


def describe(model: nn.Module, config) -> dict[str, Any]:
    """The report's ``quantizer`` block: settings, and which modules were quantized and which were kept."""
    import bitsandbytes as bnb

    from loram_plugin_bnb.config import resolve_compute_dtype

    quantized: Counter[str] = Counter()
    kept_linear: list[str] = []
    kept_other: Counter[str] = Counter()
    params_quantized = params_kept = 0
    seen: set[int] = set()  # a tied weight is counted once, where it is first seen
    for name, module in model.named_modules():
        own = [p for p in module.parameters(recurse=False) if id(p) not in seen]
        seen.update(id(p) for p in own)
        if isinstance(module, (bnb.nn.Linear4bit, bnb.nn.Linear8bitLt)):
            quantized[name.rsplit(".", 1)[-1]] += 1
            params_quantized += logical_numel(module.weight)
            params_kept += sum(p.numel() for p in own if p is not module.weight)  # the bias stays as it was
            continue
        if type(module) is nn.Linear:
            kept_linear.append(name)
        elif own:
            kept_other[type(module).__name__] += 1
        params_kept += sum(p.numel() for p in own)
    block: dict[str, Any] = {"quant_type": config.quant_type, "bits": config.bits}
    if config.bits == 4:
        from loram_plugin_bnb.layers import fits_cpu_packed_layout

        fit = [fits_cpu_packed_layout(m.out_features, m.in_features, config.blocksize)
               for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
        block.update(
            double_quant=config.double_quant,
            blocksize=config.blocksize,
            compute_dtype=str(resolve_compute_dtype(config.compute_dtype)).removeprefix("torch."),
            # modules whose shape bitsandbytes' AVX512-BF16 CPU layout holds (used only with cpu_packed)
            cpu_packed=config.cpu_packed,
            cpu_packed_layout={"fit": sum(fit), "unfit": len(fit) - sum(fit)},
        )
    else:
        block.update(threshold=float(config.threshold))
    block.update(
        skip_modules=list(config.skip_modules),
        modules_quantized=dict(sorted(quantized.items())),
        modules_kept={"linear": kept_linear, "other": dict(sorted(kept_other.items()))},
        params_quantized=params_quantized,
        params_kept=params_kept,
        param_bytes_base=held_param_bytes(model),
    )
    return block
