"""Inference on the ORIGINAL model with registered adapters, attached unmerged and switched without reloading."""

from loram_core.infer.generate import Generation, GenerationSettings, generate
from loram_core.infer.session import ORIGINAL, InferenceSession

__all__ = ["ORIGINAL", "Generation", "GenerationSettings", "InferenceSession", "generate"]
