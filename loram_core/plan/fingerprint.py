"""Fingerprint of the base model a plan was made for, derived from its config alone (no weights)."""

from __future__ import annotations

import hashlib
import json

import attrs
import torch

# Keys that change between saves of the same model and say nothing about its weights' shapes.
_VOLATILE = {"_name_or_path", "transformers_version", "torch_dtype", "dtype", "quantization_config", "architectures"}


def config_hash(config) -> str:
    values = {k: v for k, v in config.to_dict().items() if k not in _VOLATILE}
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:16]


def meta_model(config):
    """The model built on the meta device: shapes without memory."""
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config)


def count_parameters(model) -> int:
    """Unique parameters (tied embeddings counted once)."""
    seen = {id(p): p.numel() for p in model.parameters()}
    return sum(seen.values())


def param_bytes(model) -> int:
    """Bytes held by unique parameters, at their actual storage dtype."""
    seen = {id(p): p.numel() * p.element_size() for p in model.parameters()}
    return sum(seen.values())


def linear_shapes(config) -> dict[str, tuple[int, int]]:
    """Full module name -> (out, in) of every Linear (or GPT-2 ``Conv1D``) in the original model."""
    from loram_core.plan.layout import is_prunable, out_in_shape

    model = meta_model(config)
    return {name: out_in_shape(module) for name, module in model.named_modules() if is_prunable(module)}


@attrs.frozen
class ModelFingerprint:
    architecture: str
    model_type: str
    config_hash: str
    num_parameters: int
    name_or_path: str = ""

    @classmethod
    def from_config(cls, config, name_or_path: str = "") -> ModelFingerprint:
        return cls(
            architecture=(getattr(config, "architectures", None) or [type(meta_model(config)).__name__])[0],
            model_type=config.model_type,
            config_hash=config_hash(config),
            num_parameters=count_parameters(meta_model(config)),
            name_or_path=name_or_path or getattr(config, "_name_or_path", "") or "",
        )

    def matches(self, other: ModelFingerprint) -> bool:
        """Same weights' layout; the name may differ (a local copy of a hub model)."""
        return (self.model_type, self.config_hash, self.num_parameters) == (
            other.model_type,
            other.config_hash,
            other.num_parameters,
        )
