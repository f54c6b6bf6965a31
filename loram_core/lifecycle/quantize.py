"""Quantize the pruned model with the run's quantizer plugin (QLoRAM); the original is never quantized."""

from __future__ import annotations

from loram_core import registry
from loram_core.configs import build_config


def quantize_pruned(model, settings):
    """Return ``(model, info)``; ``info`` is None without a quantizer, else its name and bits per weight.

    Contract: ``quantizer.quantize(model, config) -> model`` where ``config`` is built from
    ``settings.quantizer_options``; its ``bits`` field (or the quantizer's ``bits``) feeds the report's formula.
    An optional ``quantizer.describe(model, config) -> dict`` adds to ``info`` (settings, modules quantized and
    kept; ``param_bytes_base``: bytes the quantized model holds, quantization state included).
    """
    if not settings.quantizer:
        return model, None
    quantizer = registry.get("quantizer", settings.quantizer)
    config = build_config(quantizer.config_cls, dict(settings.quantizer_options), owner=f"quantizer '{quantizer.name}'")
    model = quantizer.quantize(model, config)
    bits = getattr(config, "bits", None) or getattr(quantizer, "bits", None)
    info = {"name": quantizer.name, "bits": bits}
    if hasattr(quantizer, "describe"):
        info.update(quantizer.describe(model, config))
    return model, info
