"""Stage prune: the pruner decides a plan, the core validates it, applies it and saves the pruned weights."""

from __future__ import annotations

import shutil

import attrs

from loram_core import registry
from loram_core.arch import adapter_for
from loram_core.atomic import atomic_dir
from loram_core.checkpoint import CheckpointReader
from loram_core.configs import build_config
from loram_core.errors import LoramError, warn
from loram_core.lifecycle.pruned_folder import META, finish_folder, save_pruned_model_weights, stream_pruned_weights
from loram_core.lifecycle.resources import Resources
from loram_core.lifecycle.rundir import RunDir, stage_key
from loram_core.plan import ModelFingerprint
from loram_core.plan.apply import apply_plan, empty_model
from loram_core.plan.fingerprint import count_parameters, param_bytes
from loram_core.plan.serialize import plan_hash, save_plan
from loram_core.plan.weight_store import WeightStore
from loram_core.plan.validate import validate_plan
from loram_core.protocols import Pruner, optional_member, pruner_refusal
from loram_core.prune_context import PruneContext



def pruner_config(pruner, settings, say=warn):
    """The pruner's attrs config from the run's ratio/layers and its free-form options (``say``: warnings)."""
    fields = {f.name for f in attrs.fields(pruner.config_cls)}
    options = dict(settings.pruner_options)
    if "ratio" in fields:
        options.setdefault("ratio", settings.ratio)
    if settings.layers is not None:
        if "layers" in fields:
            options.setdefault("layers", settings.layers)
        else:  # e.g. `none` in a bench grid whose cells share --layers: nothing to restrict, say so and go on
            say(f"pruner '{pruner.name}' takes no layer range; --layers ignored")
    return build_config(pruner.config_cls, options, owner=f"pruner '{pruner.name}'")


def prune_key(settings) -> str:
    s = settings
    return stage_key("prune", s.model, s.pruner, s.ratio, s.layers, s.pruner_options, s.seed, s.data_settings(),
                     s.calibration_samples, s.seq_len)


def streaming_skeleton(pruner, config, model_path: str):
    """The original on the meta device when ``pruner`` streams (it loads what it needs layer by layer) and the
    checkpoint stores every parameter under its own name (``CheckpointReader.holds_parameters_of``); else None:
    the pruner gets the model loaded in memory."""
    if not optional_member(pruner, Pruner, "streaming"):
        return None
    skeleton = empty_model(config)
    return skeleton if CheckpointReader.open(model_path).holds_parameters_of(skeleton) else None


def run_prune(run: RunDir, res: Resources, console=None) -> dict:
    s = res.settings
    if s.pruned:
        from loram_core.lifecycle.publish import use_published

        return use_published(run, s, res.config, res.model_path)
    key = prune_key(s)
    done = run.done("prune", key, run.plan / "plan.json", run.pruned / META)
    if done:
        return done
    pruner = registry.get("pruner", s.pruner)
    cfg = pruner_config(pruner, s)
    refusal = pruner_refusal(pruner, res.config)
    if refusal:
        raise LoramError(refusal)
    skeleton = streaming_skeleton(pruner, res.config, res.model_path)
    streaming = skeleton is not None
    fingerprint = ModelFingerprint.from_config(res.config, name_or_path=s.model)
    if streaming:
        model = skeleton
        original_bytes = fingerprint.num_parameters * 4  # fp32, as the in-memory path loads it
    else:
        model = res.original_model()
        original_bytes = param_bytes(model)
    store_dir = run.root / ".prune-weights"
    shutil.rmtree(store_dir, ignore_errors=True)  # leftovers of a killed run belong to no plan
    store = WeightStore(store_dir)
    calibrated = []

    def calibration(*args, **kwargs):
        calibrated.append(True)
        return res.calibration(*args, **kwargs)

    context = PruneContext(
        model_config=res.config,
        arch=adapter_for(res.config),
        fingerprint=fingerprint,
        seed=s.seed,
        calibration=calibration,
        progress=res.progress,
        tokenizer=res.tokenizer,
        model_path=res.model_path,
        weights=store,
    )
    plan = pruner.plan(model, cfg, context)
    validate_plan(plan, res.config)
    if not plan.entries and getattr(cfg, "ratio", 0):
        layers = plan.pruner.params.get("layers")
        warn(f"pruner '{pruner.name}' at ratio {cfg.ratio} pruned nothing"
             + (f" (layers {layers[0]}:{layers[1]} of {res.config.num_hidden_layers})" if layers else "")
             + "; pass --layers START:END to choose the decoder layers to prune")
    with atomic_dir(run.plan) as tmp:
        save_plan(plan, tmp)
    digest = plan_hash(plan)
    with atomic_dir(run.pruned) as tmp:
        if streaming:
            pruned_params = stream_pruned_weights(CheckpointReader.open(res.model_path), plan, model, tmp, store)
            del model
        else:
            apply_plan(model, plan, store)
            pruned_params = count_parameters(model)
            save_pruned_model_weights(model, tmp)
            del model
        finish_folder(tmp, res.config, res.tokenizer,
                      {"plan_hash": digest, "base": attrs.asdict(fingerprint), "plan": "../plan"})
    shutil.rmtree(store_dir, ignore_errors=True)
    if not plan.structured:  # masks keep shapes: count the zeros as removed, as the paper's ▲ ratios do
        pruned_params -= sum(plan.removed_parameters({m: e.shape for m, e in plan.entries.items()}).values())
    return run.finish(
        "prune",
        key,
        {
            "pruner": {"name": pruner.name, "version": plan.pruner.version, "params": dict(plan.pruner.params)},
            "pattern": plan.pattern,
            "plan_hash": digest,
            "modules": len(plan.entries),
            "streamed": streaming,
            # whether the pruner read calibration data: if not, its plan does not depend on seq_len / data
            "calibrated": bool(calibrated),
            "params_original": fingerprint.num_parameters,
            "params_pruned": pruned_params,
            "param_bytes_original": original_bytes,
        },
    )
