"""Stage merge: the recovered adapter merged into the dense ORIGINAL model, saved as a stock HF folder.

Streamed: the original is read one tensor at a time from its safetensors shards, each adapted weight gets
``scaling x B @ A`` (computed in fp32, as PEFT's ``merge_and_unload`` does on CPU, and stored back in the
weight's own dtype), and ``merged/`` is written shard by shard, so the original is never in memory whole
(docs/scaling.md, "Larger than memory"). For an fp32 original the result equals PEFT's merge bit for bit.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import torch

from loram_core.adapters.files import CONFIG, WEIGHTS
from loram_core.atomic import atomic_dir
from loram_core.errors import AdapterError
from loram_core.lifecycle.resources import Resources
from loram_core.lifecycle.rundir import RunDir, stage_key

PREFIX = "base_model.model."  # PEFT's name for the wrapped model in an adapter's keys


def lora_deltas(adapter: Path) -> tuple[dict[str, tuple[torch.Tensor, torch.Tensor]], float]:
    """``({weight name: (lora_A, lora_B)}, scaling)`` of a PEFT LoRA adapter folder."""
    import json

    from safetensors.torch import load_file

    config = json.loads((adapter / CONFIG).read_text())
    if config.get("rank_pattern") or config.get("alpha_pattern") or config.get("use_dora"):
        raise AdapterError(f"{adapter}: per-module ranks, alphas or DoRA are not merged by loram (it writes none)")
    rank, alpha = config["r"], config["lora_alpha"]
    scaling = alpha / (math.sqrt(rank) if config.get("use_rslora") else rank)
    factors: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in load_file(adapter / WEIGHTS).items():
        module, _, factor = key.removeprefix(PREFIX).rpartition(".lora_")
        factors.setdefault(f"{module}.weight", {})[factor.split(".")[0]] = tensor
    return {name: (f["A"], f["B"]) for name, f in factors.items()}, scaling


def write_merged(model_path: str, adapter: Path, out: Path, config) -> bool:
    """``out`` (a new folder) = the original's weights with the adapter's deltas added, tensor by tensor, in
    the original's files and shard layout (``checkpoint.write_like``: one tensor in memory at a time).
    ``config`` is the original's: its meta skeleton says which weights are stored (in, out) (``Conv1D``)."""
    from loram_core.checkpoint import CheckpointReader, write_like
    from loram_core.plan.apply import empty_model
    from loram_core.plan.layout import is_transposed

    import json

    from loram_core.recover_experts import wrapped_parameters

    deltas, scaling = lora_deltas(adapter)
    skeleton = empty_model(config)
    transposed = {f"{n}.weight" for n, m in skeleton.named_modules() if is_transposed(m)}
    # LoRA on 3-D expert parameters: PEFT's key modules name wrappers, not the parameters they adapt
    targets = json.loads((adapter / CONFIG).read_text()).get("target_parameters")
    for module, param in wrapped_parameters(skeleton, targets).items():
        if f"{module}.weight" in deltas:
            deltas[param] = deltas.pop(f"{module}.weight")
    reader = CheckpointReader.open(model_path)
    if not reader.holds_parameters_of(skeleton):  # experts in transformers' per-expert format
        merge_in_memory(model_path, adapter, out)
        return False
    missing = sorted(set(deltas) - set(reader.names))
    if missing:
        raise AdapterError(f"{adapter} adapts {missing[0]}, which {model_path} does not have")
    out.mkdir(parents=True, exist_ok=True)

    def merged(name, weight):
        if name not in deltas:
            return weight
        lora_a, lora_b = deltas[name]
        if weight.dim() == 3:  # experts: A [(E r), in], B [out, (r E)]; expert e's delta is B[:, :, e] @ A[e]
            experts = weight.shape[0]
            a = lora_a.float().reshape(experts, -1, lora_a.shape[1])
            b = lora_b.float().reshape(lora_b.shape[0], -1, experts)
            return (weight.float() + torch.einsum("ore,eri->eoi", b, a) * scaling).to(weight.dtype)
        delta = lora_b.float() @ lora_a.float()
        return (weight.float() + (delta.t() if name in transposed else delta) * scaling).to(weight.dtype)

    write_like(reader, out, merged)
    source = Path(model_path)
    for extra in ("config.json", "generation_config.json"):
        if (source / extra).is_file():
            shutil.copyfile(source / extra, out / extra)
    return True


def merge_in_memory(model_path: str, adapter: Path, out: Path) -> None:
    """PEFT's own merge on the loaded original, saved by transformers in the original's format: for checkpoints
    whose tensors transformers renames and fuses on load (mixtures of experts saved per expert)."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    original = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    stored = original.config.dtype
    merged = PeftModel.from_pretrained(original, str(adapter)).merge_and_unload()
    if isinstance(stored, torch.dtype) and stored != torch.float32:
        merged = merged.to(stored)
    out.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(out, safe_serialization=True)


def run_merge(run: RunDir, res: Resources) -> dict:
    recover = run.record("recover")
    if recover is None or not (run.adapter / WEIGHTS).is_file():
        raise AdapterError(f"no recovered adapter at {run.adapter}; run 'loram recover {run.root}' first")
    key = stage_key("merge", recover["key"], res.model_path)
    done = run.done("merge", key, run.merged / "config.json")
    if done:
        return done
    run.readable(run.adapter / WEIGHTS, "recover")
    with atomic_dir(run.merged) as tmp:
        streamed = write_merged(res.model_path, run.adapter, Path(tmp), res.config)
        res.tokenizer.save_pretrained(tmp)
    return run.finish("merge", key, {"path": str(run.merged), "streamed": streamed})
