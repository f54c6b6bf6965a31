"""Recovery: a LoRA adapter trained on the pruned model -> an adapter for the ORIGINAL model
(docs/architecture.md, "Recovery").

Pure function over state dicts. Sliced outputs scatter rows of lora_B, sliced inputs scatter columns of
lora_A (``index_copy_``, vectorized); mask entries and unpruned modules are copied unchanged.
"""

from __future__ import annotations

import re
from typing import Mapping

import torch

from loram_core.errors import AdapterError
from loram_core.plan import PrunePlan, SliceEntry

# PEFT keys: "base_model.model.<module>.lora_A.weight" (saved) or "...lora_A.<adapter>.weight" (in memory).
_LORA_KEY = re.compile(r"^(?:base_model\.model\.)?(?P<module>.+)\.(?P<factor>lora_A|lora_B)(?:\.[^.]+)?\.weight$")


def parse_lora_key(key: str) -> tuple[str, str] | None:
    m = _LORA_KEY.match(key)
    return (m.group("module"), m.group("factor")) if m else None


def recover_adapter(
    state: Mapping[str, torch.Tensor],
    plan: PrunePlan,
    shapes: Mapping[str, tuple[int, int]],
    recoverer,
    *,
    generator: torch.Generator | None = None,
    parameters: Mapping[str, str] | None = None,
    parameter_shapes: Mapping[str, tuple[int, ...]] | None = None,
) -> dict[str, torch.Tensor]:
    """Return the adapter state for the original model whose Linear shapes are ``shapes`` (module -> (out, in)).

    ``parameters`` maps the key modules of LoRA on 3-D expert parameters (PEFT ``target_parameters``) to
    their parameters (``recover_experts.wrapped_parameters``), ``parameter_shapes`` gives those parameters'
    original shapes."""
    sliced_modules = {m for m, e in plan.entries.items() if isinstance(e, SliceEntry)}
    out: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        parsed = parse_lora_key(key)
        if parsed is not None and parameters and parsed[0] in parameters:
            out[key] = _recover_parameter_factor(parameters[parsed[0]], parsed[1], tensor, plan,
                                                 parameter_shapes or {}, recoverer, generator)
            continue
        if parsed is None:
            module = next((m for m in sliced_modules if f".{m}." in f".{key}"), None)
            if module is not None:  # e.g. DoRA magnitudes: shapes follow the pruned module, no rule to recover them
                raise AdapterError(f"{module}: adapter tensor '{key}' of a sliced module cannot be recovered")
            out[key] = tensor
            continue
        module, factor = parsed
        if tensor.numel() == 0:
            raise AdapterError(f"{module}: {factor} is empty (shape {tuple(tensor.shape)}); was it saved under ZeRO-3/FSDP without gathering?")
        if module not in shapes:
            raise AdapterError(f"adapter targets '{module}', which the original model does not have")
        target_out, target_in = shapes[module]
        entry = plan.entries.get(module)
        if isinstance(entry, SliceEntry):
            tensor = _scatter(module, factor, tensor, entry, (target_out, target_in), recoverer, generator)
        rank = tensor.shape[1] if factor == "lora_B" else tensor.shape[0]
        expected = (target_out, rank) if factor == "lora_B" else (rank, target_in)
        if tuple(tensor.shape) != expected:
            raise AdapterError(f"{module}: recovered {factor} has shape {tuple(tensor.shape)}, the original model needs {expected}")
        out[key] = tensor
    return out


def _scatter(module, factor, tensor, entry: SliceEntry, shape, recoverer, generator):
    if factor == "lora_B" and entry.keep_out is not None:
        rows = entry.keep_out
        if tensor.shape[0] != len(rows):
            raise AdapterError(f"{module}: lora_B has {tensor.shape[0]} rows, the plan keeps {len(rows)}")
        full = recoverer.fill((shape[0], tensor.shape[1]), factor=factor, dtype=tensor.dtype, generator=generator)
        return full.index_copy_(0, rows, tensor)
    if factor == "lora_A" and entry.keep_in is not None:
        cols = entry.keep_in
        if tensor.shape[1] != len(cols):
            raise AdapterError(f"{module}: lora_A has {tensor.shape[1]} columns, the plan keeps {len(cols)}")
        full = recoverer.fill((tensor.shape[0], shape[1]), factor=factor, dtype=tensor.dtype, generator=generator)
        return full.index_copy_(1, cols, tensor)
    return tensor


def _recover_parameter_factor(name, factor, tensor, plan, shapes, recoverer, generator):
    from loram_core.plan.experts import ExpertEntry
    from loram_core.recover_experts import recover_expert_factor

    entry = plan.entries.get(name)
    if isinstance(entry, ExpertEntry):
        tensor = recover_expert_factor(name, factor, tensor, entry, recoverer, generator)
    shape = shapes.get(name)
    if shape is not None and len(shape) == 3:  # the factors of an unpruned (or now recovered) expert stack
        experts, out, inp = shape
        rank = tensor.shape[0] // experts if factor == "lora_A" else tensor.shape[1] // experts
        expected = (experts * rank, inp) if factor == "lora_A" else (out, rank * experts)
        if tuple(tensor.shape) != expected:
            raise AdapterError(f"{name}: recovered {factor} has shape {tuple(tensor.shape)}, the original needs {expected}")
    return tensor
