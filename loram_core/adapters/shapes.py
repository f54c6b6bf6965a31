"""Check a PEFT LoRA adapter against a model's config before registering it: every tensor must fit the
Linear it targets (lora_A: (r, in), lora_B: (out, r)), with no model weights loaded (meta device)."""

from __future__ import annotations

import json
from pathlib import Path

from loram_core.adapters.record import CONFIG, WEIGHTS
from loram_core.checkpoint import check_safetensors
from loram_core.errors import AdapterError
from loram_core.plan.fingerprint import linear_shapes
from loram_core.recover import parse_lora_key


# An adapter folder given to 'loram adapters add' was trained elsewhere: a damaged file is the user's to restore.
USER_ADAPTER_REMEDY = "this file was not written by loram: restore it from where the adapter came from"


def tensor_shapes(weights: Path, remedy: str = USER_ADAPTER_REMEDY) -> dict[str, tuple[int, ...]]:
    """Shapes from the safetensors header alone (no tensor is read); a damaged file is ``check_safetensors``' line."""
    from safetensors import safe_open

    with safe_open(str(check_safetensors(weights, remedy)), framework="pt") as f:
        return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}


def check_adapter_fits(folder: str | Path, config) -> int:
    """Raise ``AdapterError`` naming the first tensor that does not fit; returns the number of adapted modules."""
    folder = Path(folder)
    for name in (CONFIG, WEIGHTS):
        if not (folder / name).is_file():
            raise AdapterError(f"{folder} is not a PEFT adapter folder: {name} is missing")
    try:
        adapter_config = json.loads((folder / CONFIG).read_text())
    except ValueError as exc:
        raise AdapterError(f"{folder / CONFIG} is unreadable ({exc})") from None
    if adapter_config.get("peft_type") != "LORA":
        raise AdapterError(f"{folder}: peft_type {adapter_config.get('peft_type')!r}; only LoRA adapters can be registered")
    linears = linear_shapes(config)
    rank = adapter_config.get("r")
    uses_patterns = bool(adapter_config.get("rank_pattern"))  # per-module ranks: then A and B must just agree
    factors: dict[str, dict[str, tuple[int, ...]]] = {}
    for key, shape in tensor_shapes(folder / WEIGHTS).items():
        parsed = parse_lora_key(key)
        if parsed is None:
            raise AdapterError(f"{folder}: tensor '{key}' is not a LoRA factor; only lora_A/lora_B adapters can be checked")
        module, factor = parsed
        if module not in linears:
            raise AdapterError(f"{folder}: '{key}' targets '{module}', which is not a Linear of the model")
        if len(shape) != 2 or 0 in shape:
            raise AdapterError(f"{folder}: '{key}' has shape {shape}; a LoRA factor is a non-empty matrix")
        factors.setdefault(module, {})[factor] = shape
    if not factors:
        raise AdapterError(f"{folder}: {WEIGHTS} holds no LoRA tensors")
    for module, pair in sorted(factors.items()):
        if set(pair) != {"lora_A", "lora_B"}:
            raise AdapterError(f"{folder}: '{module}' has {', '.join(sorted(pair))} but not both lora_A and lora_B")
        out_features, in_features = linears[module]
        r = pair["lora_A"][0]
        if not uses_patterns and r != rank:
            raise AdapterError(f"{folder}: '{module}' has rank {r}, adapter_config.json says r={rank}")
        expected = {"lora_A": (r, in_features), "lora_B": (out_features, r)}
        for factor, shape in pair.items():
            if shape != expected[factor]:
                raise AdapterError(f"{folder}: '{module}.{factor}' has shape {shape}; the model's Linear "
                                   f"({out_features} out, {in_features} in) needs {expected[factor]}")
    return len(factors)
