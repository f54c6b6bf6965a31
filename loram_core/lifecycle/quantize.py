"""Quantize the pruned model with the run's quantizer plugin (QLoRAM); the original is never quantized."""

from __future__ import annotations

from loram_core import registry
from loram_core.configs import build_config
from loram_core.protocols import Quantizer, optional_member, quantizer_bits


def _quantizer(settings):
    quantizer = registry.get("quantizer", settings.quantizer)
    config = build_config(quantizer.config_cls, dict(settings.quantizer_options), owner=f"quantizer '{quantizer.name}'")
    return quantizer, config


def _info(quantizer, config, model) -> dict:
    info = {"name": quantizer.name, "bits": quantizer_bits(quantizer, config)}
    describe = optional_member(quantizer, Quantizer, "describe")
    if describe is not None:
        info.update(describe(model, config))
    return info


def quantize_pruned(model, settings):
    """Return ``(model, info)``; ``info`` is None without a quantizer, else its name and bits per weight, plus
    what its optional ``describe`` adds. The contract is ``loram_core.protocols.Quantizer``; ``config`` is built
    from ``settings.quantizer_options``.
    """
    if not settings.quantizer:
        return model, None
    quantizer, config = _quantizer(settings)
    model = quantizer.quantize(model, config)
    return model, _info(quantizer, config, model)


def load_trainable_pruned(run, res, dtype):
    """The pruned model as training holds it, and the quantizer's info (None without one): at ``dtype``, or
    quantized. A quantizer with ``quantize_streamed`` builds it from the pruned shards one module at a time,
    so the pruned model is never whole in fp32 (docs/scaling.md, "Larger than memory"), and the modules it
    leaves unquantized (embeddings, norms, skipped Linears) are held at ``dtype``; any other gets the
    materialized fp32 model."""
    from loram_core.lifecycle.pruned_folder import load_pruned_model

    settings = res.settings
    if not settings.quantizer:
        return load_pruned_model(run, res, dtype=dtype)[0], None  # [0]: a mask plan's masks are not kept
    quantizer, config = _quantizer(settings)
    streamed = optional_member(quantizer, Quantizer, "quantize_streamed")
    if streamed is None:
        return quantize_pruned(load_pruned_model(run, res)[0], settings)
    build = lambda skeleton, load: streamed(skeleton, config, load)  # noqa: E731
    model = load_pruned_model(run, res, dtype=dtype, build=build)[0]
    return model, _info(quantizer, config, model)
