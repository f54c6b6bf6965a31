"""Recovery of LoRA on 3-D expert parameters (PEFT's ``target_parameters``, docs/architecture.md "Recovery").

PEFT keeps one factor pair per targeted parameter: ``lora_A`` [experts x r, in] (expert-major rows) and
``lora_B`` [out, r x experts] (expert-minor columns), so expert e's delta is ``B[:, :, e] @ A[e]``. Several
targeted parameters of one module nest: the first in the module's own order sits deepest, as
``<module>.base_layer.lora_A``, the last as ``<module>.lora_A``. Recovery scatters every kept expert's rows of
``lora_B`` and columns of ``lora_A`` to that expert's kept channels and places the kept experts at their
original positions; a removed expert's factors are the recoverer's fill (zeros for ``lora_B`` in both built-in
recoverers), so its recovered delta is zero.
"""

from __future__ import annotations

import torch

from loram_core.errors import AdapterError
from loram_core.plan.experts import ExpertEntry


def wrapped_parameters(model, target_parameters) -> dict[str, str]:
    """PEFT's key module for each targeted parameter of ``model`` (a meta skeleton will do): {"…experts.base_layer":
    "…experts.gate_up_proj", "…experts": "…experts.down_proj"}."""
    targets = tuple(target_parameters or ())
    out = {}
    for name, module in model.named_modules():
        hits = [f"{name}.{p}" for p, _ in module.named_parameters(recurse=False)
                if any(f"{name}.{p}" == t or f"{name}.{p}".endswith(f".{t}") for t in targets)]
        for depth, param in enumerate(reversed(hits)):
            out[name + ".base_layer" * depth] = param
    return out


def recover_expert_factor(name: str, factor: str, tensor: torch.Tensor, entry: ExpertEntry, recoverer,
                          generator=None) -> torch.Tensor:
    """The factor of parameter ``name`` for the original's shape ``entry.shape`` (experts, out, in)."""
    experts, out, inp = entry.shape
    kept = entry.experts
    if factor == "lora_A":
        if tensor.shape[0] % kept:
            raise AdapterError(f"{name}: lora_A has {tensor.shape[0]} rows, not a multiple of the {kept} kept experts")
        rank = tensor.shape[0] // kept
        pruned = tensor.reshape(kept, rank, tensor.shape[1])
        full = recoverer.fill((experts * rank, inp), factor=factor, dtype=tensor.dtype, generator=generator)
        full = full.reshape(experts, rank, inp)
        placed = full.index_select(0, _experts(entry)).clone()
        if entry.keep_in is not None:
            if pruned.shape[2] != entry.keep_in.shape[1]:
                raise AdapterError(f"{name}: lora_A has {pruned.shape[2]} columns, the plan keeps {entry.keep_in.shape[1]}")
            placed.scatter_(2, entry.keep_in[:, None, :].expand(-1, rank, -1), pruned)
        else:
            placed = pruned
        return full.index_copy_(0, _experts(entry), placed).reshape(experts * rank, inp)
    if tensor.shape[1] % kept:
        raise AdapterError(f"{name}: lora_B has {tensor.shape[1]} columns, not a multiple of the {kept} kept experts")
    rank = tensor.shape[1] // kept
    pruned = tensor.reshape(tensor.shape[0], rank, kept).permute(2, 0, 1)  # (kept, out', r)
    full = recoverer.fill((out, rank * experts), factor=factor, dtype=tensor.dtype, generator=generator)
    full = full.reshape(out, rank, experts).permute(2, 0, 1).contiguous()  # (experts, out, r)
    placed = full.index_select(0, _experts(entry)).clone()
    if entry.keep_out is not None:
        if pruned.shape[1] != entry.keep_out.shape[1]:
            raise AdapterError(f"{name}: lora_B has {pruned.shape[1]} rows, the plan keeps {entry.keep_out.shape[1]}")
        placed.scatter_(1, entry.keep_out[:, :, None].expand(-1, -1, rank), pruned)
    else:
        placed = pruned
    full.index_copy_(0, _experts(entry), placed)
    return full.permute(1, 2, 0).reshape(out, rank * experts).contiguous()


def _experts(entry: ExpertEntry) -> torch.Tensor:
    return entry.keep_experts if entry.keep_experts is not None else torch.arange(entry.shape[0])
