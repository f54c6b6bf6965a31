"""Stage train: LoRA (PEFT) on the pruned model, optionally quantized first by a quantizer plugin."""

from __future__ import annotations

from loram_core.lifecycle.prune import load_pruned_model
from loram_core.lifecycle.quantize import quantize_pruned
from loram_core.lifecycle.resources import Resources
from loram_core.lifecycle.rundir import RunDir, stage_key
from loram_core.plan.fingerprint import count_parameters, param_bytes


def train_key(run: RunDir, settings) -> str:
    prune = run.record("prune") or {}
    align = run.record("align") or {}
    return stage_key("train", prune.get("key"), align.get("key"), settings.data, settings.quantizer, settings.quantizer_options,
                     settings.train_config().to_dict())


def run_train(run: RunDir, res: Resources) -> dict:
    from loram_core.train.loop import train_lora

    s = res.settings
    key = train_key(run, s)
    done = run.done("train", key, run.adapter_pruned / "adapter_model.safetensors")
    if done:
        return done
    model, _plan = load_pruned_model(run, res)
    model, quantized = quantize_pruned(model, s)
    base_bytes = param_bytes(model)
    result = train_lora(
        model,
        res.train_tokens,
        s.train_config(),
        adapter_dir=run.adapter_pruned,
        checkpoint_dir=run.checkpoints,
        base_model_name_or_path=str(run.pruned.resolve()),
        progress=res.progress,
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
            "params_train_base": count_parameters(model) - adapter_params,
            "adapter_params": adapter_params,
            "quantizer": quantized,
        },
    )
