"""Replace the Linear modules of an already-materialized model by bitsandbytes' quantized ones, weights and all.

transformers' ``replace_with_bnb_linear`` only builds empty modules on the meta device and leaves the weights
to its checkpoint loader; loram's pruned model is materialized from the run directory instead, so the real
weights are handed to ``Params4bit`` / ``Int8Params`` here and quantized where they lie. One module at a
time, so at most one fp32 weight is held twice.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from loram_core.errors import LoramError
from loram_plugin_bnb.config import FourBitConfig, Int8Config, resolve_compute_dtype


def matches(name: str, pattern: str) -> bool:
    """``pattern`` is a dotted sub-path of ``name``: "lm_head", "mlp.down_proj", "model.layers.3"."""
    return f".{pattern}." in f".{name}."


def tied_parameters(model: nn.Module) -> set[int]:
    """ids of parameters whose storage another parameter shares (tied embeddings and lm_head). On the meta
    device (the streamed path) every tensor has address 0: there a tie is one Parameter under two names."""
    by_storage: dict[object, list[nn.Parameter]] = {}
    for _, p in model.named_parameters(remove_duplicate=False):
        key = ("same", id(p)) if p.is_meta else (p.untyped_storage().data_ptr(), p.storage_offset())
        by_storage.setdefault(key, []).append(p)
    return {id(p) for group in by_storage.values() if len(group) > 1 for p in group}


def plan_linears(model: nn.Module, skip_modules: Iterable[str]) -> tuple[list[str], dict[str, str]]:
    """(Linear modules to quantize, {Linear kept: why}). A tied Linear is kept: quantizing it would untie it."""
    skip_modules = tuple(skip_modules)
    tied = tied_parameters(model)
    quantize, kept = [], {}
    used = set()
    for name, module in model.named_modules():
        if type(module) is not nn.Linear:  # exact type: quantized or LoRA-wrapped Linears are not ours to touch
            continue
        hit = next((p for p in skip_modules if matches(name, p)), None)
        if hit is not None:
            used.add(hit)
            kept[name] = f"skip_modules: {hit}"
        elif id(module.weight) in tied:
            kept[name] = "weight tied to another parameter"
        else:
            quantize.append(name)
    unused = [p for p in skip_modules if p not in used]
    if unused:
        raise LoramError(f"quantizer option skip_modules: {', '.join(unused)} matches no Linear module of the model")
    return quantize, kept


def _check_model(model: nn.Module) -> None:
    import bitsandbytes as bnb

    if hasattr(model, "peft_config"):
        raise LoramError("quantize the base model before attaching LoRA, not a PeftModel")
    if any(isinstance(m, (bnb.nn.Linear4bit, bnb.nn.Linear8bitLt)) for m in model.modules()):
        raise LoramError("the model is already quantized")
    from loram_core.arch import is_mixture
    from loram_core.plan.layout import is_transposed

    if is_mixture(model.config):  # its experts would stay fp32 while the report counted them as quantized
        raise LoramError(f"{model.config.model_type}: its experts are 3-D parameters, which bitsandbytes' "
                         "Linear4bit / Linear8bitLt do not replace; train without --quantizer")
    conv = next((name for name, m in model.named_modules() if is_transposed(m)), None)
    if conv is not None:  # would stay fp32 while the report counted it as quantized
        raise LoramError(f"{model.config.model_type} models keep their projections in transformers' Conv1D ({conv}), "
                         "which bitsandbytes' Linear4bit / Linear8bitLt do not replace; train without --quantizer")


def _four_bit(linear: nn.Linear, config: FourBitConfig, compute_dtype: torch.dtype) -> nn.Module:
    import bitsandbytes as bnb

    from loram_plugin_bnb.layers import LoramLinear4bit

    device = linear.weight.device
    # meta: the module's own random init would allocate and fill an fp32 weight only to throw it away
    new = LoramLinear4bit(
        linear.in_features, linear.out_features, bias=linear.bias is not None, compute_dtype=compute_dtype,
        compress_statistics=config.double_quant, quant_type=config.quant_type, device="meta",
    )
    # .to(device) is where bitsandbytes quantizes (packed uint8 data + quant_state)
    new.weight = bnb.nn.Params4bit(
        linear.weight.data, requires_grad=False, blocksize=config.blocksize, compress_statistics=config.double_quant,
        quant_type=config.quant_type, module=new,
    ).to(device)
    # Dequantize straight to the compute dtype, as transformers' loader does (it quantizes weights read in its
    # dtype=): from the fp32 weights quantized here, bitsandbytes would dequantize each weight to fp32 and then
    # cast it, holding both copies in every forward and backward (+6 % on the 13B training loop's peak).
    new.weight.quant_state.dtype = compute_dtype
    if linear.bias is not None:
        new.bias = nn.Parameter(linear.bias.data, requires_grad=False)
    return new


def _eight_bit(linear: nn.Linear, config: Int8Config) -> nn.Module:
    import warnings

    import bitsandbytes as bnb

    from loram_plugin_bnb.layers import LoramLinear8bitLt

    # bitsandbytes warns on every int8 matmul of fp32 inputs (cast to fp16 inside): documented, not actionable
    warnings.filterwarnings("ignore", message="MatMul8bitLt: inputs will be cast from")

    device = linear.weight.device
    new = LoramLinear8bitLt(
        linear.in_features, linear.out_features, bias=linear.bias is not None, has_fp16_weights=False,
        threshold=float(config.threshold), device="meta",
    )
    new.weight = bnb.nn.Int8Params(linear.weight.data, requires_grad=False, has_fp16_weights=False).to(device)
    if linear.bias is not None:
        new.bias = nn.Parameter(linear.bias.data, requires_grad=False)
    return new


def _own_memory(model: nn.Module) -> None:
    """Copy the parameters left unquantized (embedding, norms, kept Linears) into memory of their own.

    A model loaded with safetensors' default mmap backend holds views of the whole weights file: while the
    embedding still points into the mapping, every page the quantizer read to pack a weight stays resident
    beside its packed copy (measured on a 6-layer SmolLM2-shaped model: +88 MB RSS, the fp32 decoder weights).
    """
    for param in {id(p): p for p in model.parameters()}.values():
        if param.dtype.is_floating_point:  # packed uint8 / int8 weights are bitsandbytes' own allocations
            param.data = param.data.clone()


@torch.no_grad()
def quantize_model(model: nn.Module, config: FourBitConfig | Int8Config, load=None) -> nn.Module:
    """Quantize ``model``'s Linear weights in place (except ``config.skip_modules`` and tied ones); return it.

    With ``load(name)`` (the core's streamed path) the model arrives on the meta device: each Linear is
    loaded just before it is quantized, so one fp32 weight is held at a time; the core loads the rest.

    Modules whose pruned shape bitsandbytes' packed AVX512-BF16 CPU path cannot take stay on its general
    path (``layers.py``). Sets ``is_loaded_in_4bit`` / ``is_loaded_in_8bit`` as transformers' loader does: PEFT reads them to wrap
    the quantized modules in its bitsandbytes LoRA layers.
    """
    _check_model(model)
    names, _kept = plan_linears(model, config.skip_modules)
    if not names:
        raise LoramError("quantizer: no Linear module left to quantize (check skip_modules)")
    four_bit = config.bits == 4
    compute_dtype = resolve_compute_dtype(config.compute_dtype) if four_bit else None
    for name in names:
        if load is not None:
            load(name)
        linear = model.get_submodule(name)
        new = _four_bit(linear, config, compute_dtype) if four_bit else _eight_bit(linear, config)
        new.requires_grad_(False)
        new.train(linear.training)
        new.loram_name = name
        model.set_submodule(name, new)
        del linear  # the fp32 weight goes with the last reference to the old module
    if load is None:  # streamed tensors are read as copies of their own
        _own_memory(model)
    if four_bit:
        from loram_plugin_bnb.layers import keep_unfit_modules_on_general_path

        keep_unfit_modules_on_general_path(model, all_modules=not config.cpu_packed)
        model.is_loaded_in_4bit = True
    else:
        model.is_loaded_in_8bit = True
    return model
