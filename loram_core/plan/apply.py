"""Apply a plan to a model in place, and materialize a pruned model from config + plan + pruned weights."""

from __future__ import annotations

import torch
from torch import nn

from loram_core.errors import PlanError
from loram_core.plan import layout
from loram_core.plan.entries import MaskEntry, SliceEntry
from loram_core.plan.experts import ExpertEntry
from loram_core.plan.plan import PrunePlan


def _sliced(tensor: torch.Tensor, entry: SliceEntry, is_bias: bool = False) -> torch.Tensor:
    if entry.keep_out is not None:
        tensor = tensor.index_select(0, entry.keep_out.to(tensor.device))
    if not is_bias and entry.keep_in is not None:
        tensor = tensor.index_select(1, entry.keep_in.to(tensor.device))
    return tensor


def _prunable(model, module: str) -> nn.Module:
    try:
        layer = model.get_submodule(module)
    except AttributeError:
        raise PlanError(f"plan names module '{module}', which this model does not have") from None
    if not layout.is_prunable(layer):
        raise PlanError(f"{module}: expected a Linear (or Conv1D) module, found {type(layer).__name__}")
    return layer


def pruned_tensor(module: str, param: str, tensor: torch.Tensor, entry, replacement: torch.Tensor | None = None,
                  transposed: bool = False):
    """One parameter of a planned module after the plan: ``param`` is "weight" or "bias".

    ``replacement`` is a pruner's reconstructed weight (see plan/weight_store.py), (out, in) like the entry,
    which still applies. ``transposed``: the weight is stored (in, out), as ``Conv1D`` stores it.
    """
    if isinstance(entry, ExpertEntry):
        return entry.apply(tensor)
    if param == "weight" and transposed:
        return pruned_tensor(module, param, tensor.t(), entry, replacement).t().contiguous()
    if param == "weight":
        if tuple(tensor.shape) != tuple(entry.shape):
            raise PlanError(f"{module}: plan expects weight shape {tuple(entry.shape)}, model has {tuple(tensor.shape)}")
        if replacement is not None:
            if tuple(replacement.shape) != tuple(entry.shape):
                raise PlanError(f"{module}: reconstructed weight has shape {tuple(replacement.shape)}, expected {tuple(entry.shape)}")
            tensor = replacement.to(tensor.dtype)
        if isinstance(entry, MaskEntry):
            return tensor * entry.mask.to(tensor.device, tensor.dtype)
        return _sliced(tensor, entry)
    if isinstance(entry, SliceEntry):
        return _sliced(tensor, entry, is_bias=True)
    return tensor  # a mask entry leaves the bias as it is


@torch.no_grad()
def apply_plan(model, plan: PrunePlan, replacements=None):
    """Slice entries replace the Linear by a smaller one; mask entries zero the masked weights.

    ``replacements`` (a WeightStore or None) supplies reconstructed weights for some modules.
    """
    for module, entry in plan.entries.items():
        if isinstance(entry, ExpertEntry):
            _set_parameter(model, module, entry.apply(_parameter(model, module).detach()))
            continue
        linear = _prunable(model, module)
        if layout.out_in_shape(linear) != tuple(entry.shape):
            raise PlanError(f"{module}: plan expects weight shape {tuple(entry.shape)}, model has {layout.out_in_shape(linear)}")
        replacement = replacements.get(module) if replacements is not None else None
        weight = pruned_tensor(module, "weight", linear.weight, entry, replacement, layout.is_transposed(linear))
        if isinstance(entry, MaskEntry):
            linear.weight.copy_(weight)
            continue
        new = layout.resized(linear, entry.pruned_shape)
        new.weight.copy_(weight)
        if linear.bias is not None:
            new.bias.copy_(_sliced(linear.bias, entry, is_bias=True))
        model.set_submodule(module, new)
    fit_pruned(model, plan)
    return model


def fit_pruned(model, plan: PrunePlan) -> None:
    """Set the attributes that the family's modules read from the config (head counts, split sizes) to the
    pruned widths (the adapter's optional ``pruned_attributes``; docs/plugins.md, "register_architectures")."""
    from loram_core.arch import adapter_for

    if not plan.structured:
        return  # masks keep every shape
    attributes = getattr(adapter_for(model.config), "pruned_attributes", None)
    if attributes is None:
        return
    for module, values in attributes(model.config, plan).items():
        target = model.get_submodule(module)
        for name, value in values.items():
            setattr(target, name, value)


def empty_model(config, dtype=torch.float32):
    """The original model with parameters on the meta device; buffers such as RoPE stay real, so a layer
    whose parameters are loaded (CheckpointReader.load_module) can run."""
    from accelerate import init_empty_weights
    from transformers import AutoModelForCausalLM

    with init_empty_weights(include_buffers=False):
        return AutoModelForCausalLM.from_config(config, dtype=dtype)


def pruned_skeleton(config, plan: PrunePlan, dtype=torch.float32):
    """The model with pruned shapes, parameters on the meta device (buffers such as RoPE stay real)."""
    model = empty_model(config, dtype)
    for module, entry in plan.entries.items():
        if isinstance(entry, SliceEntry):
            linear = _prunable(model, module)
            model.set_submodule(module, layout.resized(linear, entry.pruned_shape, device="meta"))
        elif isinstance(entry, ExpertEntry):
            param = _parameter(model, module)
            _set_parameter(model, module, torch.empty(entry.pruned_shape, dtype=param.dtype, device="meta"))
    fit_pruned(model, plan)
    return model


def _parameter(model, name: str) -> nn.Parameter:
    owner, _, attr = name.rpartition(".")
    try:
        param = getattr(model.get_submodule(owner), attr)
    except AttributeError:
        raise PlanError(f"plan names parameter '{name}', which this model does not have") from None
    if not isinstance(param, nn.Parameter):
        raise PlanError(f"{name}: expected a parameter, found {type(param).__name__}")
    return param


def _set_parameter(model, name: str, tensor: torch.Tensor) -> None:
    owner, _, attr = name.rpartition(".")
    setattr(model.get_submodule(owner), attr, nn.Parameter(tensor))


def materialize_pruned(config, plan: PrunePlan, state_dict: dict[str, torch.Tensor], dtype=torch.float32):
    """Build the pruned model from the ORIGINAL config, the plan and the pruned weights (no forked modeling)."""
    model = pruned_skeleton(config, plan, dtype)
    expected = model.state_dict()
    _check_names(config, expected, state_dict)
    for key, tensor in state_dict.items():
        if tuple(tensor.shape) != tuple(expected[key].shape):
            raise PlanError(f"{key}: pruned weights have shape {tuple(tensor.shape)}, the plan gives {tuple(expected[key].shape)}")
    model.load_state_dict({k: v.to(dtype) for k, v in state_dict.items()}, strict=False, assign=True)
    model.tie_weights()
    still_meta = [n for n, p in model.named_parameters() if p.is_meta]
    if still_meta:
        raise PlanError(f"pruned weights leave parameters unset: {still_meta[:3]}")
    return model.eval()


def stream_pruned(config, plan: PrunePlan, reader, build, dtype=torch.float32):
    """Build the pruned model module by module from the pruned shards in ``reader``: ``build(model, load)`` gets
    the skeleton on the meta device and ``load(name)``, which gives module ``name``'s own parameters their
    fp32 values; what ``build`` leaves on meta (embeddings, norms, the Linears a quantizer skips) is loaded
    afterwards in ``dtype``, as transformers' ``dtype=`` holds them beside 4-bit weights. A quantizer so holds
    one fp32 Linear at a time, never the pruned model whole (docs/scaling.md, "Larger than memory")."""
    model = pruned_skeleton(config, plan, torch.float32)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    stored = set(reader.names)
    _check_names(config, expected, stored)

    def load(name: str, dtype: torch.dtype = torch.float32) -> None:
        module = model.get_submodule(name)
        prefix = f"{name}." if name else ""
        wanted = {prefix + n: n for n, p in module.named_parameters(recurse=False) if p.is_meta and prefix + n in stored}
        tensors = reader.get_many(wanted, dtype)
        for key, tensor in tensors.items():
            if tuple(tensor.shape) != expected[key]:
                raise PlanError(f"{key}: pruned weights have shape {tuple(tensor.shape)}, the plan gives {expected[key]}")
        module.load_state_dict({wanted[k]: v for k, v in tensors.items()}, strict=False, assign=True)

    model = build(model, load)
    for name, module in list(model.named_modules()):
        if any(p.is_meta for p in module.parameters(recurse=False)):
            load(name, dtype)
    model.tie_weights()
    still_meta = [n for n, p in model.named_parameters() if p.is_meta]
    if still_meta:
        raise PlanError(f"pruned weights leave parameters unset: {still_meta[:3]}")
    return model.eval()


def _check_names(config, expected, stored) -> None:
    """The pruned weights name every parameter of the skeleton (a tied head aside) and nothing else."""
    tied = {k for k in expected if k not in stored and _is_tied(config, k)}
    missing = [k for k in expected if k not in stored and k not in tied]
    unexpected = [k for k in stored if k not in expected]
    if missing or unexpected:
        raise PlanError(f"pruned weights do not fit the plan: missing {missing[:3]}, unexpected {unexpected[:3]}")


def _is_tied(config, key: str) -> bool:
    return bool(getattr(config, "tie_word_embeddings", False)) and key == "lm_head.weight"


def pruned_state_dict(model) -> dict[str, torch.Tensor]:
    """Weights to save: tied duplicates dropped (safetensors refuses shared tensors)."""
    seen, out = set(), {}
    for key, tensor in model.state_dict().items():
        ptr = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape))
        if ptr in seen:
            continue
        seen.add(ptr)
        out[key] = tensor.contiguous()
    return out
