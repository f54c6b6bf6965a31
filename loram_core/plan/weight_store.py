"""Reconstructed weights a pruner hands to the core, kept on disk until the pruned model is written.

Some pruners do more than decide a mask: SparseGPT updates the weights it keeps to compensate for the ones
it removes (the OBS update). The plan stays the contract (the core still applies the mask, so a stored
weight can never bring back a pruned position); the store only carries the better values for the kept ones.
Weights go to disk at once so a layer-by-layer pruner never holds the whole model.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from loram_core.errors import PlanError


class WeightStore:
    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    def _path(self, module: str) -> Path:
        return self.folder / f"{module}.safetensors"

    def put(self, module: str, weight: torch.Tensor) -> None:
        """Store the new full-shape weight of ``module`` (the original's shape, fp32)."""
        if weight.dim() != 2:
            raise PlanError(f"{module}: a stored weight must be 2-D, got shape {tuple(weight.shape)}")
        tmp = self.folder / f".{module}.tmp"
        save_file({"weight": weight.detach().to("cpu", torch.float32).contiguous()}, tmp)
        os.replace(tmp, self._path(module))

    def get(self, module: str) -> torch.Tensor | None:
        path = self._path(module)
        return load_file(path)["weight"] if path.is_file() else None

    def __contains__(self, module: str) -> bool:
        return self._path(module).is_file()

    def modules(self) -> list[str]:
        return sorted(p.name[: -len(".safetensors")] for p in self.folder.glob("*.safetensors"))
