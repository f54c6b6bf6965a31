"""loram-plugin-bnb: QLoRAM's quantizers ``nf4`` (default of the paper), ``fp4`` and ``int8`` on bitsandbytes.

Registered through the ``loram`` entry point; the core applies a quantizer to the materialized pruned model
only, trains LoRA over it and merges the recovered adapter into the unquantized original.
"""

from __future__ import annotations

import attrs

from loram_core import hookimpl
from loram_plugin_bnb.accounting import describe, held_param_bytes
from loram_plugin_bnb.config import FP4Config, Int8Config, NF4Config
from loram_plugin_bnb.quantize import quantize_model

__version__ = "0.1.0"
__all__ = ["BnbQuantizer", "QUANTIZERS", "describe", "held_param_bytes", "quantize_model"]


@attrs.frozen
class BnbQuantizer:
    """``quantize(model, config) -> model`` (the core's contract), its streamed form, and ``describe`` for the
    report."""

    name: str
    config_cls: type
    description: str
    version: str = __version__

    @property
    def bits(self) -> int:
        return self.config_cls.bits

    def quantize(self, model, config):
        return quantize_model(model, config)

    def quantize_streamed(self, model, config, load):
        return quantize_model(model, config, load)

    def describe(self, model, config) -> dict:
        return describe(model, config)


QUANTIZERS = (
    BnbQuantizer("nf4", NF4Config, "4-bit NormalFloat with double quantization (QLoRA / QLoRAM), bitsandbytes"),
    BnbQuantizer("fp4", FP4Config, "4-bit float, bitsandbytes Linear4bit"),
    BnbQuantizer("int8", Int8Config, "LLM.int8() with outlier threshold, bitsandbytes Linear8bitLt"),
)


@hookimpl
def register_quantizers(register):
    for quantizer in QUANTIZERS:
        register(quantizer)
