"""Stage prune: the pruner decides a plan, the core validates it, applies it and saves the pruned weights."""

from __future__ import annotations

import json

import attrs
from safetensors.torch import load_file, save_file

from loram_core import registry
from loram_core.arch import adapter_for
from loram_core.atomic import atomic_dir, write_json
from loram_core.configs import build_config
from loram_core.lifecycle.resources import Resources
from loram_core.lifecycle.rundir import RunDir, stage_key
from loram_core.plan import ModelFingerprint
from loram_core.plan.apply import apply_plan, materialize_pruned, pruned_state_dict
from loram_core.plan.fingerprint import count_parameters, param_bytes
from loram_core.plan.serialize import load_plan, plan_hash, save_plan
from loram_core.plan.validate import validate_plan
from loram_core.structured import PruneContext

PRUNED_WEIGHTS, PRUNED_META = "model.safetensors", "loram_pruned.json"


def pruner_config(pruner, settings):
    """The pruner's attrs config from the run's ratio/layers and its free-form options."""
    fields = {f.name for f in attrs.fields(pruner.config_cls)}
    options = dict(settings.pruner_options)
    if "ratio" in fields:
        options.setdefault("ratio", settings.ratio)
    if settings.layers is not None:
        options.setdefault("layers", settings.layers)
    return build_config(pruner.config_cls, options, owner=f"pruner '{pruner.name}'")


def prune_key(settings) -> str:
    s = settings
    return stage_key("prune", s.model, s.pruner, s.ratio, s.layers, s.pruner_options, s.seed, s.data, s.calibration_samples, s.seq_len)


def run_prune(run: RunDir, res: Resources, console=None) -> dict:
    s = res.settings
    key = prune_key(s)
    done = run.done("prune", key, run.plan / "plan.json", run.pruned / PRUNED_WEIGHTS)
    if done:
        return done
    pruner = registry.get("pruner", s.pruner)
    cfg = pruner_config(pruner, s)
    model = res.original_model()
    original_bytes = param_bytes(model)
    fingerprint = ModelFingerprint.from_config(res.config, name_or_path=s.model)
    context = PruneContext(
        model_config=res.config,
        arch=adapter_for(res.config),
        fingerprint=fingerprint,
        seed=s.seed,
        calibration=res.calibration,
        progress=res.progress,
        tokenizer=res.tokenizer,
        model_path=res.model_path,
    )
    plan = pruner.plan(model, cfg, context)
    validate_plan(plan, res.config)
    with atomic_dir(run.plan) as tmp:
        save_plan(plan, tmp)
    apply_plan(model, plan)
    pruned_params = count_parameters(model)
    if not plan.structured:  # masks keep shapes: count the zeros as removed, as the paper's ▲ ratios do
        pruned_params -= sum(plan.removed_parameters({m: e.shape for m, e in plan.entries.items()}).values())
    digest = plan_hash(plan)
    with atomic_dir(run.pruned) as tmp:
        save_file(pruned_state_dict(model), tmp / PRUNED_WEIGHTS, metadata={"format": "pt"})
        res.config.save_pretrained(tmp)  # the ORIGINAL config: shapes come from config + plan
        res.tokenizer.save_pretrained(tmp)
        write_json(tmp / PRUNED_META, {"plan_hash": digest, "base": attrs.asdict(fingerprint), "plan": "../plan"})
    return run.finish(
        "prune",
        key,
        {
            "pruner": {"name": pruner.name, "version": plan.pruner.version, "params": dict(plan.pruner.params)},
            "pattern": plan.pattern,
            "plan_hash": digest,
            "modules": len(plan.entries),
            "params_original": fingerprint.num_parameters,
            "params_pruned": pruned_params,
            "param_bytes_original": original_bytes,
        },
    )


def load_pruned_model(run: RunDir, res: Resources):
    """Materialize the pruned model from the original config + plan + pruned weights."""
    plan = load_plan(run.plan)
    meta = json.loads((run.pruned / PRUNED_META).read_text())
    if meta.get("plan_hash") != plan_hash(plan):
        from loram_core.errors import PlanError

        raise PlanError(f"{run.pruned} was written for another plan than {run.plan}; re-run 'loram prune'")
    state = load_file(run.pruned / PRUNED_WEIGHTS)
    return materialize_pruned(res.config, plan, state), plan
