"""Stage recover: the pruned adapter -> a stock PEFT adapter for the ORIGINAL model, plus provenance."""

from __future__ import annotations

import json

import torch
from safetensors.torch import load_file, save_file

from loram_core import __version__, registry
from loram_core.adapters.files import CONFIG, MODEL_CARD, SIDECAR, WEIGHTS
from loram_core.atomic import atomic_dir, write_json
from loram_core.errors import AdapterError
from loram_core.lifecycle.resources import Resources
from loram_core.lifecycle.rundir import RunDir, file_hash, stage_key
from loram_core.plan.fingerprint import linear_shapes
from loram_core.plan.serialize import load_plan, plan_hash
from loram_core.recover import recover_adapter


def expert_parameters(config, target_parameters) -> tuple[dict[str, str], dict[str, tuple[int, ...]]]:
    """PEFT's key modules for LoRA on 3-D parameters of the original, and those parameters' shapes."""
    if not target_parameters:
        return {}, {}
    from loram_core.plan.fingerprint import meta_model
    from loram_core.recover_experts import wrapped_parameters

    model = meta_model(config)
    shapes = {n: tuple(p.shape) for n, p in model.named_parameters()}
    parameters = wrapped_parameters(model, target_parameters)
    return parameters, {p: shapes[p] for p in parameters.values()}


def run_recover(run: RunDir, res: Resources) -> dict:
    s = res.settings
    source = run.adapter_pruned / WEIGHTS
    if not source.is_file():
        raise AdapterError(f"no trained adapter at {run.adapter_pruned}; run 'loram train {run.root}' first")
    source_hash = file_hash(run.readable(source, "train"))
    key = stage_key("recover", source_hash, (run.record("prune") or {}).get("key"), s.recoverer, s.seed)
    done = run.done("recover", key, run.adapter / WEIGHTS)
    if done:
        return done
    recoverer = registry.get("recoverer", s.recoverer)
    plan = load_plan(run.plan)
    state = load_file(source)
    generator = torch.Generator().manual_seed(s.seed)
    config = json.loads((run.adapter_pruned / CONFIG).read_text())
    parameters, parameter_shapes = expert_parameters(res.config, config.get("target_parameters"))
    recovered = recover_adapter(state, plan, linear_shapes(res.config), recoverer, generator=generator,
                                parameters=parameters, parameter_shapes=parameter_shapes)
    config["base_model_name_or_path"] = res.base_name_or_path  # the ORIGINAL model, so stock PEFT loading finds it
    sidecar = {
        "loram_version": __version__,
        "plan_hash": plan_hash(plan),
        "base": {"name_or_path": res.base_name_or_path, "config_hash": plan.base.config_hash,
                 "num_parameters": plan.base.num_parameters},
        "pruner": {"name": plan.pruner.name, "version": plan.pruner.version, "params": dict(plan.pruner.params)},
        "pattern": plan.pattern,
        "recoverer": {"name": recoverer.name, "version": registry.collect("recoverer")[recoverer.name].version},
        "source_adapter_sha256": source_hash,
    }
    with atomic_dir(run.adapter) as tmp:
        save_file({k: v.contiguous() for k, v in recovered.items()}, tmp / WEIGHTS, metadata={"format": "pt"})
        write_json(tmp / CONFIG, config)
        write_json(tmp / SIDECAR, sidecar)
        readme = run.adapter_pruned / MODEL_CARD
        if readme.is_file():
            (tmp / MODEL_CARD).write_text(readme.read_text())
    record = run.finish("recover", key, {"recoverer": recoverer.name, "tensors": len(recovered),
                                         "adapter_sha256": file_hash(run.adapter / WEIGHTS)})
    from loram_core.adapters.register import register_recovered  # every recovered adapter lands in the registry

    register_recovered(run, res)
    return record
