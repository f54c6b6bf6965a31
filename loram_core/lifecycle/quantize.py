"""Quantize the pruned model with the run's quantizer plugin (QLoRAM); the original is never quantized."""

from __future__ import annotations

from loram_core import registry
from loram_core.configs import build_config
from loram_core.protocols import Quantizer, optional_member, quantizer_bits


def quantize_pruned(model, settings):
    """Return ``(model, info)``; ``info`` is None without a quantizer, else its name and bits per weight, plus
    what its optional ``describe`` adds. The contract is ``loram_core.protocols.Quantizer``; ``config`` is built
    from ``settings.quantizer_options``.
    """
    if not settings.quantizer:
        return model, None
    quantizer = registry.get("quantizer", settings.quantizer)
    config = build_config(quantizer.config_cls, dict(settings.quantizer_options), owner=f"quantizer '{quantizer.name}'")
    model = quantizer.quantize(model, config)
    info = {"name": quantizer.name, "bits": quantizer_bits(quantizer, config)}
    describe = optional_member(quantizer, Quantizer, "describe")
    if describe is not None:
        info.update(describe(model, config))
    return model, info
