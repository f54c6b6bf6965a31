"""LoRA through PEFT only, so the adapters we write load with stock ``PeftModel.from_pretrained``."""

from __future__ import annotations

import torch

from loram_core.errors import LoramError
from loram_core.train.config import TrainConfig


def lora_config(cfg: TrainConfig, targets: tuple[str, ...] | None = None, fan_in_fan_out: bool = False):
    """``targets``: the leaf names resolved from ``cfg.target_modules`` (train/targets.py); ``fan_in_fan_out``
    when they are ``Conv1D`` (weights stored transposed), recorded so a merge transposes the delta as PEFT does."""
    import peft

    return peft.LoraConfig(
        r=cfg.rank,
        lora_alpha=cfg.alpha,
        lora_dropout=cfg.dropout,
        target_modules=list(targets or cfg.target_modules),
        target_parameters=list(cfg.target_parameters) or None,
        fan_in_fan_out=fan_in_fan_out,
        bias="none",
        task_type="CAUSAL_LM",
    )


def attach_lora(model: torch.nn.Module, cfg: TrainConfig):
    """Wrap ``model`` in a ``peft.PeftModel`` with fresh LoRA layers (the base modules are changed in place).

    The LoRA A matrices are drawn from a generator seeded with ``cfg.seed`` and the caller's global RNG
    state is left untouched, so the same seed gives the same starting adapter.
    """
    import peft

    if isinstance(model, peft.PeftModel):
        raise LoramError("attach_lora: the model already carries a PEFT adapter")
    from loram_core.plan.layout import is_transposed
    from loram_core.train.targets import target_leaves

    targets = target_leaves(model, cfg.target_modules)
    names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    missing = [m for m in targets if m not in names]
    if missing:
        raise LoramError(f"train config: target_modules {missing} not found in the model")
    params = [name for name, _ in model.named_parameters()]
    absent = [t for t in cfg.target_parameters if not any(n == t or n.endswith(f".{t}") for n in params)]
    if absent:
        raise LoramError(f"train config: target_parameters {absent} not found in the model")
    targeted = [m for name, m in model.named_modules() if name.rsplit(".", 1)[-1] in targets]
    transposed = {is_transposed(m) for m in targeted if hasattr(m, "weight")}
    if len(transposed) > 1:
        raise LoramError(f"train config: target_modules {list(targets)} mix Linear and Conv1D layers; adapt one kind")
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    was_training = model.training
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(cfg.seed)
        wrapped = peft.get_peft_model(model, lora_config(cfg, targets, transposed == {True}))
    # A fresh wrapper module reports training=True; keep the mode the caller's model was in.
    return wrapped.train(was_training)


def trainable_parameters(model: torch.nn.Module) -> list[tuple[str, torch.nn.Parameter]]:
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad]
