"""LoRA through PEFT only, so the adapters we write load with stock ``PeftModel.from_pretrained``."""

from __future__ import annotations

import torch

from loram_core.errors import LoramError
from loram_core.train.config import TrainConfig


def lora_config(cfg: TrainConfig):
    import peft

    return peft.LoraConfig(
        r=cfg.rank,
        lora_alpha=cfg.alpha,
        lora_dropout=cfg.dropout,
        target_modules=list(cfg.target_modules),
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
    names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    missing = [m for m in cfg.target_modules if m not in names]
    if missing:
        raise LoramError(f"train config: target_modules {missing} not found in the model")
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    was_training = model.training
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(cfg.seed)
        wrapped = peft.get_peft_model(model, lora_config(cfg))
    # A fresh wrapper module reports training=True; keep the mode the caller's model was in.
    return wrapped.train(was_training)


def trainable_parameters(model: torch.nn.Module) -> list[tuple[str, torch.nn.Parameter]]:
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad]
