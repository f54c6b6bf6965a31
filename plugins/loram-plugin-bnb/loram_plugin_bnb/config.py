"""Quantizer configs (attrs, frozen), built by the core from ``--quantizer-opt KEY=VALUE`` / ``[quantizer_options]``.

``bits`` and ``quant_type`` are class attributes, not options: they are what the quantizer's name means.
"""

from __future__ import annotations

import attrs
import torch

from loram_core.configs import to_names
from loram_core.fields import boolean

COMPUTE_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
BLOCKSIZES = (32, 64, 128, 256, 512, 1024, 2048, 4096)  # what bitsandbytes' blockwise kernels accept


def _check_names(_inst, attribute, value) -> None:
    if not isinstance(value, tuple) or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"{attribute.name} must be a list of module names, got {value!r}")


def _check_compute_dtype(_inst, attribute, value) -> None:
    if value != "auto" and value not in COMPUTE_DTYPES:
        raise ValueError(f"{attribute.name} must be auto or one of {', '.join(COMPUTE_DTYPES)}, got {value!r}")


def _check_blocksize(_inst, attribute, value) -> None:
    if isinstance(value, bool) or value not in BLOCKSIZES:
        raise ValueError(f"{attribute.name} must be one of {', '.join(map(str, BLOCKSIZES))}, got {value!r}")


def _check_threshold(_inst, attribute, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"{attribute.name} must be a number >= 0, got {value!r}")


def resolve_compute_dtype(name: str) -> torch.dtype:
    """``auto``: float32 on CPU (no bf16 instructions on common CPUs: bf16 is ~3.5x slower), bfloat16 on CUDA."""
    if name == "auto":
        return torch.bfloat16 if torch.cuda.is_available() else torch.float32
    return COMPUTE_DTYPES[name]


@attrs.frozen(kw_only=True)
class FourBitConfig:
    """4-bit blockwise quantization of the pruned model's Linear weights (``bitsandbytes.nn.Linear4bit``)."""

    bits = 4
    quant_type = "nf4"

    compute_dtype: str = attrs.field(default="auto", validator=_check_compute_dtype)
    # QLoRA's double quantization: the fp32 absmax of each block is itself quantized to 8 bits
    double_quant: bool = attrs.field(default=True, validator=boolean)
    blocksize: int = attrs.field(default=64, validator=_check_blocksize)
    # Linear modules kept in full precision, matched as dotted sub-paths of the module name.
    # Embeddings and norms are not Linear modules: they are never quantized.
    skip_modules: tuple[str, ...] = attrs.field(default=("lm_head",), converter=to_names, validator=_check_names)
    # bitsandbytes' AVX512-BF16 CPU kernel for no-grad eval forwards, on modules whose shape it takes
    # (layers.py). Off by default: measured 0.58x the general path's eval tokens/s on a 2-core Xeon with AMX
    # (docs/results.md, "Aligned widths"), and it computes in bf16 where training computes in fp32.
    cpu_packed: bool = attrs.field(default=False, validator=boolean)

    def as_bitsandbytes_config(self):
        """The same quantization as a transformers ``BitsAndBytesConfig`` (to load a hub model as QLoRA does).

        transformers has no blocksize option: it always uses bitsandbytes' default, 64.
        """
        from transformers import BitsAndBytesConfig

        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type=self.quant_type,
            bnb_4bit_use_double_quant=self.double_quant,
            bnb_4bit_compute_dtype=resolve_compute_dtype(self.compute_dtype),
            llm_int8_skip_modules=list(self.skip_modules),
        )


@attrs.frozen(kw_only=True)
class NF4Config(FourBitConfig):
    """NormalFloat-4: 16 levels at the quantiles of a normal distribution (QLoRA's choice, QLoRAM's default)."""

    quant_type = "nf4"


@attrs.frozen(kw_only=True)
class FP4Config(FourBitConfig):
    """A 4-bit float (1 sign, 2 exponent, 1 mantissa bits)."""

    quant_type = "fp4"


@attrs.frozen(kw_only=True)
class Int8Config:
    """LLM.int8(): rows scaled to int8; input columns with outliers above ``threshold`` run in float."""

    bits = 8
    quant_type = "int8"

    threshold: float = attrs.field(default=6.0, validator=_check_threshold)
    skip_modules: tuple[str, ...] = attrs.field(default=("lm_head",), converter=to_names, validator=_check_names)

    def as_bitsandbytes_config(self):
        from transformers import BitsAndBytesConfig

        return BitsAndBytesConfig(
            load_in_8bit=True, llm_int8_threshold=float(self.threshold), llm_int8_skip_modules=list(self.skip_modules)
        )
