"""PEFT adapter folders written by LoRA training (the final adapter and each checkpoint's) and read back."""

from __future__ import annotations

import json
from pathlib import Path

from loram_core.adapters.files import CONFIG, WEIGHTS
from loram_core.atomic import atomic_dir, write_json
from loram_core.errors import AdapterError, LoramError


def write_adapter(model, folder: Path, state_dict=None) -> None:
    """``save_pretrained`` from ``state_dict`` (gathered from all processes) and a check of what was written:
    under FSDP / ZeRO-3 an ungathered save writes tensors of shape [0], a known PEFT pitfall."""
    from safetensors import safe_open

    model.save_pretrained(folder, safe_serialization=True, state_dict=state_dict)
    with safe_open(folder / WEIGHTS, framework="pt") as f:
        names = list(f.keys())
        empty = [n for n in names if 0 in f.get_slice(n).get_shape()]
    if not names or empty:
        what = f"tensor '{empty[0]}' is empty" if empty else "it holds no tensors"
        raise AdapterError(f"the adapter written to {folder} is incomplete: {what} (parameters not gathered?)")


def save_adapter(model, adapter_dir: Path, base_model_name_or_path: str | None, state_dict=None) -> None:
    """The trained adapter, atomically, naming ``base_model_name_or_path`` in its config when given."""
    with atomic_dir(adapter_dir) as tmp:
        write_adapter(model, tmp, state_dict)
        if base_model_name_or_path is not None:
            cfg_path = tmp / CONFIG
            config = json.loads(cfg_path.read_text())
            config["base_model_name_or_path"] = base_model_name_or_path
            write_json(cfg_path, config)


def read_adapter(model, folder: Path) -> None:
    """Load the adapter weights in ``folder`` into ``model`` (a ``PeftModel``); every LoRA weight must fit."""
    import peft
    from safetensors.torch import load_file

    weights = load_file(folder / WEIGHTS)
    result = peft.set_peft_model_state_dict(model, weights)
    lora_missing = [k for k in result.missing_keys if "lora_" in k]
    if result.unexpected_keys or lora_missing:
        example = (result.unexpected_keys or lora_missing)[0]
        raise LoramError(f"checkpoint {folder} does not fit the model (e.g. {example})")
