"""LoRA training on the (pruned) model: config, PEFT attachment and the accelerate-driven loop."""

from loram_core.train.config import TrainConfig
from loram_core.train.lora import attach_lora
from loram_core.train.loop import TrainResult, train_lora

__all__ = ["TrainConfig", "TrainResult", "attach_lora", "train_lora"]
