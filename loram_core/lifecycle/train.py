"""Stage train: LoRA (PEFT) on the pruned model, optionally quantized first by a quantizer plugin."""

from __future__ import annotations

from loram_core import distributed, memory
from loram_core.adapters.files import WEIGHTS
from loram_core.lifecycle.quantize import load_trainable_pruned
from loram_core.lifecycle.resources import Resources
from loram_core.lifecycle.rundir import RunDir, stage_key
from loram_core.placement import Placement
from loram_core.plan.fingerprint import count_parameters, param_bytes


def train_key(run: RunDir, settings) -> str:
    prune = run.record("prune") or {}
    align = run.record("align") or {}
    train = settings.train_config().to_dict()
    # The global micro-batch, as the checkpoints count it: 2 processes x b is the run 1 process x 2b is.
    train["batch_size"] *= distributed.process_count()
    data = settings.data_settings()
    train["metrics"] = (settings.eval_every, settings.report_to)  # metrics.jsonl and the event files are train's too
    return stage_key("train", prune.get("key"), align.get("key"), data, settings.quantizer,
                     settings.quantizer_options, train, Placement.from_settings(settings).dtype_name)


def run_train(run: RunDir, res: Resources) -> dict:
    from loram_core.train.loop import train_lora

    s = res.settings
    key = train_key(run, s)
    done = run.done("train", key, run.adapter_pruned / WEIGHTS)
    if done:
        return done
    # The peak counts the resident (quantized) model plus training, measured from the RSS before the model is
    # loaded (docs/architecture.md, "Measuring memory"); load-time copies are freed before the loop resets
    # VmHWM. Data comes first, as it is the same for every configuration.
    import accelerate  # noqa: F401  (~150 MB of imports: imported before the baseline, not counted as training)
    import peft  # noqa: F401  (imports bitsandbytes too, where installed)

    tokens = res.train_data
    memory.release_freed_memory()
    rss_baseline = memory.current_rss_mb()
    placement = Placement.from_settings(s)
    # A quantizer gets fp32 weights and packs them; the rest of the base (or all of it) is held in the run's dtype
    # (LoRA weights stay fp32: PEFT upcasts adapters on half-precision bases). The plan is not kept: a mask
    # plan's masks (one byte per linear weight) would sit in the measured peak.
    model, quantized = load_trainable_pruned(run, res, placement.dtype)
    memory.release_freed_memory()  # the load's fp32 copies, before the loop resets VmHWM
    # a quantizer knows the bytes its state holds beside the packed weights
    base_bytes = (quantized or {}).get("param_bytes_base") or param_bytes(model)
    base_params = count_parameters(model)
    if quantized and "params_quantized" in quantized:  # packed tensors hold several weights per element
        base_params = quantized["params_quantized"] + quantized["params_kept"]
    result = train_lora(
        model,
        tokens,
        s.train_config(),
        adapter_dir=run.adapter_pruned,
        checkpoint_dir=run.checkpoints,
        base_model_name_or_path=str(run.pruned.resolve()),
        progress=res.progress,
        rss_baseline_mb=rss_baseline,
        device=s.device,
        metrics=run.root / "metrics.jsonl",
        tensorboard=run.root / "tensorboard" if s.report_to == "tensorboard" else None,
        validate=res.validation_loss if s.eval_every else None,
        eval_every=s.eval_every,
    )
    adapter_params = sum(p.numel() for n, p in model.named_parameters() if "lora_" in n)
    adapter_bytes = sum(p.numel() * p.element_size() for n, p in model.named_parameters() if "lora_" in n)
    return run.finish(
        "train",
        key,
        {
            **result.report(),
            "losses": list(result.losses),
            "resumed_from": result.resumed_from,
            "train_peak_rss_mb": result.train_peak_rss_mb,
            "param_bytes_train": base_bytes + adapter_bytes,
            "params_train_base": base_params,
            "adapter_params": adapter_params,
            "quantizer": quantized,
            "processes": result.processes,
            "global_batch": s.batch_size * result.processes * s.grad_accum,
            # what the examples were made of: records, examples, dropped, truncated, tokens, trained per split
            "data": {"name": res.data_name, "format": res.data_format, "packing": res.packing,
                     "counts": res.examples.counts if res.examples is not None else None},
            "device": placement.device,
            "dtype": placement.dtype_name,  # with a quantizer: of the modules it leaves unquantized
        },
    )
