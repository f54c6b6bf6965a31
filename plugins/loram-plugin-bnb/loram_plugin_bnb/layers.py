"""bitsandbytes' quantized Linear modules, made safe for any pruned width on any CPU.

bitsandbytes 0.50 has a second CPU path for ``Linear4bit``: on a CPU with AVX512-BF16 (recent Xeons), an
eval-mode forward without gradients repacks the weight once into a blocked layout for its bf16 kernel
(``_convert_weight_packed_for_cpu``). That layout needs ``out_features`` to be a multiple of 32 and
``in_features`` a multiple of the quantization blocksize, and it asserts or fails a reshape otherwise. A
pruned model's widths are whatever the pruner kept (LLaMA-2-13B at the paper's ratio 0.65 keeps 4,838 MLP
channels), so every module whose shape the layout cannot take is kept on the general path, which takes
any shape. With the quantizer option ``cpu_packed = true`` the modules that fit keep the packed path;
by default every module takes the general path (measured faster here, docs/results.md); ``--pruner-opt
align_to=32`` makes every kept width fit.

A kernel that fails anyway (a constraint of a future bitsandbytes release, say) is reported as one line
naming the module, its shape and the constraint, not as a traceback from deep inside bitsandbytes.
"""

from __future__ import annotations

import bitsandbytes as bnb
import torch
from torch import nn

from loram_core.errors import LoramError

# ``_convert_weight_packed_for_cpu``'s default block of output rows
CPU_PACKED_BLOCK_N = 32


def fits_cpu_packed_layout(out_features: int, in_features: int, blocksize: int) -> bool:
    """Whether bitsandbytes' AVX512-BF16 packed layout can hold a weight of this shape."""
    return out_features % CPU_PACKED_BLOCK_N == 0 and in_features % blocksize == 0 and in_features % 2 == 0


def cpu_packed_constraint(blocksize: int) -> str:
    return (f"bitsandbytes' AVX512-BF16 CPU layout needs out_features % {CPU_PACKED_BLOCK_N} == 0 "
            f"and in_features % blocksize ({blocksize}) == 0")


def keep_unfit_modules_on_general_path(model: nn.Module, *, all_modules: bool = False) -> list[str]:
    """Turn bitsandbytes' packed CPU path off for each ``Linear4bit`` whose shape it cannot take (every one
    with ``all_modules``, the quantizer's default: ``cpu_packed = false``).

    Works on any model holding ``Linear4bit`` modules (ours, or transformers' ``BitsAndBytesConfig`` loader's);
    returns the names of the modules switched to the general path.
    """
    switched = []
    for name, module in model.named_modules():
        if not isinstance(module, bnb.nn.Linear4bit):
            continue
        blocksize = module.weight.quant_state.blocksize
        if all_modules or not fits_cpu_packed_layout(module.out_features, module.in_features, blocksize):
            module.support_avx512bf16_for_cpu = False  # read by Linear4bit.forward before it repacks
            switched.append(name)
    return switched


class _ReportsKernelErrors:
    """Mixin: a failing bitsandbytes forward becomes a ``LoramError`` naming this module and its shape."""

    loram_name: str = "?"  # set by the quantizer: the module's dotted name in the model

    def _constraint(self) -> str:
        return ""

    def forward(self, x: torch.Tensor, *args, **kwargs):
        try:
            return super().forward(x, *args, **kwargs)
        except (RuntimeError, AssertionError, ValueError) as exc:
            constraint = self._constraint()
            raise LoramError(
                f"quantized module {self.loram_name} ({self.out_features}x{self.in_features}) failed in "
                f"bitsandbytes: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
                + (f"; {constraint}" if constraint else "")
            ) from exc


class LoramLinear4bit(_ReportsKernelErrors, bnb.nn.Linear4bit):
    """``bnb.nn.Linear4bit`` that reports kernel failures as one line (PEFT wraps it like its base class).

    It also undoes the packed layout before a forward that trains: bitsandbytes' packed kernel has no
    backward (torch warns "an autograd kernel was not registered ... silently incorrect"), so a model
    evaluated and then trained, as a benchmark or a user's loop may do, would otherwise get no gradient
    through its frozen weights. bitsandbytes' inverse re-quantizes the absmax from its bf16 copy.
    """

    def forward(self, x: torch.Tensor, *args, **kwargs):
        state = getattr(self.weight, "quant_state", None)
        if getattr(state, "packing_format_for_cpu", False) and (self.training or x.requires_grad):
            from bitsandbytes.functional import _convert_weight_packed_for_cpu_inverse

            self.weight.data, self.weight.quant_state = _convert_weight_packed_for_cpu_inverse(self.weight.data, state)
        return super().forward(x, *args, **kwargs)

    def _constraint(self) -> str:
        state = getattr(self.weight, "quant_state", None)
        if state is None or not getattr(self, "support_avx512bf16_for_cpu", False):
            return ""
        return cpu_packed_constraint(state.blocksize)


class LoramLinear8bitLt(_ReportsKernelErrors, bnb.nn.Linear8bitLt):
    """``bnb.nn.Linear8bitLt`` that reports kernel failures as one line."""
