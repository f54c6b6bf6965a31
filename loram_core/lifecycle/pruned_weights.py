"""The pruned model's weights in RUN_DIR/pruned: written from memory, or streamed tensor by tensor.

The streamed path reads the original checkpoint one tensor at a time, applies the plan (and a pruner's
reconstructed weights) and writes HF-style shards, so pruning a model never needs it whole in memory.
"""

from __future__ import annotations

from pathlib import Path

from safetensors.torch import save_file

from loram_core.checkpoint import CheckpointReader, ShardWriter, load_weights
from loram_core.plan.apply import pruned_state_dict, pruned_tensor
from loram_core.plan.plan import PrunePlan

SINGLE = "model.safetensors"


def save_pruned_model_weights(model, folder: Path) -> None:
    save_file(pruned_state_dict(model), folder / SINGLE, metadata={"format": "pt"})


def stream_pruned_weights(reader: CheckpointReader, plan: PrunePlan, parameter_names: set[str], folder: Path,
                          replacements=None) -> int:
    """Write the pruned weights into ``folder``; returns the number of parameters written."""
    writer = ShardWriter(folder)
    written = 0
    for name in reader.names:
        module, _, param = name.rpartition(".")
        tensor = reader.get(name)
        entry = plan.entries.get(module)
        if entry is not None:
            replacement = replacements.get(module) if (replacements is not None and param == "weight") else None
            tensor = pruned_tensor(module, param, tensor, entry, replacement)
        writer.add(name, tensor)
        if name in parameter_names:
            written += tensor.numel()
    writer.close()
    return written


def load_pruned_weights(folder: Path):
    return load_weights(folder)
