"""The ``pruned/`` folder of a run (and of a published model): its one reader and writer.

It holds the pruned (and aligned) weights as safetensors, the ORIGINAL config and tokenizer (shapes come from
config + plan), and ``loram_pruned.json``, written last: its presence means the folder is whole. Weights are
written from memory, or streamed tensor by tensor: the streamed path reads the original checkpoint one
tensor at a time, applies the plan (and a pruner's reconstructed weights) and writes HF-style shards in the
checkpoint's own dtype, so pruning a model never needs it whole in memory.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from safetensors.torch import save_file

from loram_core.atomic import write_json
from loram_core.checkpoint import CheckpointReader, ShardWriter, load_weights
from loram_core.errors import PlanError
from loram_core.plan.apply import pruned_state_dict, pruned_tensor
from loram_core.plan.plan import PrunePlan

SINGLE = "model.safetensors"
META = "loram_pruned.json"


def is_whole(folder: Path) -> bool:
    return (Path(folder) / META).is_file()


def read_meta(folder: Path) -> dict[str, Any]:
    """``{"plan_hash", "base", "plan", "aligned_by"?}``."""
    return json.loads((Path(folder) / META).read_text())


def finish_folder(tmp: Path, config, tokenizer, meta: dict[str, Any]) -> None:
    """Complete a folder whose weights are written: the original config and tokenizer, then the marker."""
    config.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    write_json(tmp / META, meta)


def mark_incomplete(folder: Path) -> None:
    """Drop the marker: the prune stage then writes the folder again (e.g. to align from unaligned weights)."""
    (Path(folder) / META).unlink()


def save_pruned_model_weights(model, folder: Path) -> None:
    save_file(pruned_state_dict(model), folder / SINGLE, metadata={"format": "pt"})


def stream_pruned_weights(reader: CheckpointReader, plan: PrunePlan, skeleton, folder: Path,
                          replacements=None) -> int:
    """Write the pruned weights into ``folder``; returns the number of parameters written. ``skeleton`` is
    the original model on the meta device: which names are parameters, which weights are stored transposed."""
    from loram_core.plan.layout import is_transposed

    parameter_names = {n for n, _ in skeleton.named_parameters()}
    transposed = {n for n, m in skeleton.named_modules() if is_transposed(m)}
    writer = ShardWriter(folder)
    written = 0
    for name in reader.names:
        module, _, param = name.rpartition(".")
        # in the checkpoint's dtype: a copy loses nothing, and a bf16 original's pruned shards are half fp32's
        tensor = reader.get(name, dtype=None).clone()  # a copy: a view would keep its shard mapped
        entry = plan.entries.get(module) or plan.entries.get(name)  # an ExpertEntry is keyed by its parameter
        if entry is not None:
            replacement = replacements.get(module) if (replacements is not None and param == "weight") else None
            if replacement is not None:  # a pruner computed it in fp32: kept so, not rounded to the checkpoint's
                tensor = tensor.float()
            tensor = pruned_tensor(module, param, tensor, entry, replacement, module in transposed)
        writer.add(name, tensor)
        if name in parameter_names:
            written += tensor.numel()
    writer.close()
    return written


def load_pruned_weights(folder: Path, remedy: str = "delete it and re-run the stage that wrote it"):
    return load_weights(folder, remedy)


def load_pruned_model(run, res, dtype=None, build=None):
    """Materialize the pruned model from the original config + plan + pruned weights (fp32 unless ``dtype``);
    returns ``(model, plan)``. ``run`` is the RunDir, ``res`` the run's Resources. With ``build(model, load)``
    the model is built module by module from the shards instead (``plan.apply.stream_pruned``), what ``build``
    leaves loaded in ``dtype``."""
    import torch

    from loram_core.plan.apply import materialize_pruned, stream_pruned
    from loram_core.plan.serialize import load_plan, plan_hash
    from loram_core.plan.validate import validate_plan

    plan = load_plan(run.plan)
    if read_meta(run.pruned).get("plan_hash") != plan_hash(plan):
        raise PlanError(f"{run.pruned} was written for another plan than {run.plan}; re-run 'loram prune'")
    validate_plan(plan, res.config)  # the original named now must be the one the plan was made for
    remedy = f"delete {run.pruned} and re-run 'loram prune {run.root}'"
    if build is not None:
        reader = CheckpointReader.open(run.pruned, remedy)
        return stream_pruned(res.config, plan, reader, build, dtype or torch.float32), plan
    state = load_pruned_weights(run.pruned, remedy)
    return materialize_pruned(res.config, plan, state, dtype or torch.float32), plan
