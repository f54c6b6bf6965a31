"""Any GGUF that transformers reads, converted once into an fp32 Hugging Face folder in loram's cache.

Loading a GGUF dequantizes every tensor, on every load (~30 s for 135M parameters); the converted folder then
loads like any stock checkpoint in about a second, and every stage (prune, train, merge) reads it the same way.
A marker written last inside the folder records the source file, so a replaced or edited GGUF converts again.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import re
from pathlib import Path

from loram_core.atomic import atomic_dir, write_json
from loram_core.errors import LoramError

MARKER = "loram_conversion.json"
GGUF_HINT = "pip install gguf"
_REASON_CHARS = 300


def cache_root() -> Path:
    """``$LORAM_CACHE`` or ``~/.cache/loram``: where converted models (and downloaded data) live."""
    return Path(os.environ.get("LORAM_CACHE") or Path.home() / ".cache" / "loram").expanduser()


def source_record(gguf: Path, name: str, **extra) -> dict:
    """What the marker must match: the file by resolved path, size and mtime (no hash: GGUFs run to tens of GB)."""
    gguf = gguf.resolve()
    stat = gguf.stat()
    return {"source": str(gguf), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "model": name, **extra}


def is_converted(folder: Path, record: dict) -> bool:
    """Whether ``folder`` is a finished conversion whose marker holds every field of ``record``."""
    try:
        marker = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(marker, dict) and all(marker.get(k) == v for k, v in record.items()) and (
        folder / "config.json").is_file()


def ensure_converted(gguf: Path, folder: Path, name: str, *, hint: str = GGUF_HINT, **extra) -> Path:
    """``folder``, converted from ``gguf`` unless its marker already names this very file.

    ``name`` is the loram model name recorded in the marker and the config; ``extra`` adds fields the marker
    must also match (an alias's package version); ``hint`` is the install command named when ``gguf`` is missing.
    """
    record = source_record(gguf, name, **extra)
    if is_converted(folder, record):
        return folder
    if importlib.util.find_spec("gguf") is None:
        raise LoramError(f"reading {gguf.name} needs the gguf package: {hint}")
    # atomic_dir: an interrupted conversion leaves no half folder that a later call would trust.
    with atomic_dir(folder) as tmp:
        convert(gguf, tmp, name)
        write_json(tmp / MARKER, record)
    return folder


def file_folder(gguf: Path) -> Path:
    """``cache_root()/models/gguf-<stem>-<hash>``: one folder per GGUF path, so two ``model.gguf`` never collide."""
    resolved = gguf.expanduser().resolve()
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", resolved.stem)
    digest = hashlib.sha256(str(resolved).encode()).hexdigest()[:10]
    return cache_root() / "models" / f"gguf-{stem}-{digest}"


def ensure_file(gguf: Path) -> Path:
    """The converted folder of a GGUF named on the command line (``--model FILE.gguf``)."""
    folder = file_folder(gguf)
    return ensure_converted(gguf.expanduser(), folder, folder.name)


def read_config(gguf: Path):
    """The config a GGUF describes, read from its metadata alone (no tensors): for ``loram estimate``."""
    from transformers import AutoConfig

    gguf = gguf.expanduser().resolve()
    config = _read(gguf, lambda: AutoConfig.from_pretrained(gguf.parent, gguf_file=gguf.name))
    _drop_quantization(config)
    return config


def convert(gguf: Path, out: Path, name: str) -> None:
    """Write ``gguf`` as an fp32 safetensors folder with its tokenizer into ``out``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = gguf.resolve()
    with _rich_tensor_progress(gguf.name), _no_transformers_bars():
        loaded = _read(gguf, lambda: AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, dtype=torch.float32))
    tokenizer = _read(gguf, lambda: AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name))
    # A model loaded from GGUF refuses save_pretrained ("quantized with gguf"), although its weights are
    # already dequantized fp32: they move into a fresh, unquantized model of the same config. Built on the
    # meta device and assigned the loaded tensors, it costs no second copy of a model that may be tens of GB.
    config = loaded.config
    _drop_quantization(config)
    config.name_or_path = name
    state = loaded.state_dict()
    del loaded
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    # lm_head may be absent from a tied checkpoint; anything else missing means a broken conversion.
    tied_head = config.tie_word_embeddings and missing == ["lm_head.weight"]
    if (missing and not tied_head) or unexpected:
        raise LoramError(f"converting {gguf}: missing weights {missing}, unexpected {unexpected}")
    model.tie_weights()
    left = [k for k, v in model.state_dict().items() if v.is_meta]
    if left:
        raise LoramError(f"converting {gguf}: weights left unset {left}")
    model.eval()
    with _no_transformers_bars():
        model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)


@contextlib.contextmanager
def _no_transformers_bars():
    """transformers' own tqdm bars (loading weights, writing shards) stay off: the conversion's one bar is rich."""
    from transformers.utils import logging as hf_logging

    was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_on:
            hf_logging.enable_progress_bar()


@contextlib.contextmanager
def _rich_tensor_progress(name: str):
    """transformers' GGUF reader shows a tqdm bar; loram's bars are rich, on a terminal only (docs/reliability.md)."""
    import sys

    import transformers.modeling_gguf_pytorch_utils as reader
    from rich.console import Console
    from rich.progress import track

    def bar(iterable, desc=None, **_):
        if not sys.stderr.isatty():
            return iterable
        return track(iterable, description=f"converting {name}", console=Console(stderr=True), transient=True)

    original = reader.tqdm
    reader.tqdm = bar
    try:
        yield
    finally:
        reader.tqdm = original


def _drop_quantization(config) -> None:
    if hasattr(config, "quantization_config"):
        del config.quantization_config


def _read(gguf: Path, load):
    """``load()``, with any failure to parse the file as one line naming it: a GGUF is outside input, and
    its parser fails on a bad file with whatever error the byte it tripped on caused."""
    try:
        return load()
    except ImportError as exc:
        raise LoramError(f"reading {gguf.name} needs the gguf package: {GGUF_HINT} ({_reason(exc)})") from exc
    except Exception as exc:  # noqa: BLE001 - see the docstring
        raise LoramError(f"cannot read GGUF {gguf}: {_reason(exc)}") from exc


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= _REASON_CHARS else text[:_REASON_CHARS] + "..."
