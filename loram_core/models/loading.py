"""Turn a model spec (registered alias, local folder, GGUF file, or hub id) into a model, tokenizer or config."""

from __future__ import annotations

from pathlib import Path

import torch

from loram_core.errors import LoramError, UnknownPluginError


_TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "tokenizer_config.json")


def _looks_like_path(spec: str) -> bool:
    # A hub id is "name" or "org/name"; anything with more slashes, ~, . or a drive is meant as a path.
    return spec.startswith((".", "/", "~")) or spec.count("/") > 1 or "\\" in spec or spec.endswith("/")


def resolve_model(spec: str | Path) -> Path | str:
    """A registered alias's local folder, an existing local folder, a GGUF file's converted folder, or the spec
    unchanged (a hub id)."""
    spec_str = str(spec)
    if not isinstance(spec, Path):
        from loram_core import registry

        try:
            alias = registry.get("model", spec_str)
        except UnknownPluginError:
            pass
        else:
            return Path(alias.resolve())
    path = Path(spec_str).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise LoramError(f"model folder {path} has no config.json")
        return path
    if path.is_file() and path.suffix.lower() == ".gguf":
        from loram_core.models.gguf import ensure_file

        return ensure_file(path)
    if path.exists():
        raise LoramError(f"model path {path} is a file; give the folder that holds config.json (or a .gguf file)")
    if isinstance(spec, Path) or _looks_like_path(spec_str):
        raise LoramError(f"model folder {path} does not exist")
    return _hub_model(spec_str)


def hub_id(spec: str | Path) -> str | None:
    """``spec`` when it names a hub model (not an alias, not a local path), else None."""
    if isinstance(spec, Path) or _looks_like_path(str(spec)) or Path(str(spec)).expanduser().exists():
        return None
    from loram_core import registry

    return None if str(spec) in registry.collect("model") else str(spec)


def _hub_model(repo_id: str) -> Path | str:
    """A hub id: its cached snapshot folder when there is one (then nothing touches the network); else the id,
    for transformers to download, but only when the hub can be reached: offline, the hub client would retry
    for half a minute before failing on what is usually a typo."""
    import os

    from huggingface_hub import constants, try_to_load_from_cache

    try:
        cached = try_to_load_from_cache(repo_id, "config.json")
    except Exception:  # noqa: BLE001 - an id the hub client rejects (bad characters) is simply not cached
        cached = None
    if isinstance(cached, str):
        return Path(cached).parent
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
    if offline or not _reachable(constants.ENDPOINT):
        why = "HF_HUB_OFFLINE is set" if offline else f"{constants.ENDPOINT} cannot be reached"
        raise LoramError(f"model '{repo_id}' is not a local folder, a model alias or in the Hugging Face cache, "
                         f"and {why} (aliases: {', '.join(_aliases()) or 'none'})")
    return repo_id


def _reachable(url: str, timeout: float = 3.0) -> bool:
    import socket
    from urllib.parse import urlparse

    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname, parsed.port or (443 if parsed.scheme == "https" else 80)), timeout):
            return True
    except OSError:
        return False


def _aliases() -> list[str]:
    from loram_core import registry

    return sorted(registry.collect("model"))


def load_model(spec: str | Path, dtype: torch.dtype = torch.float32, trust_remote_code: bool = False):
    """A ``*ForCausalLM`` in eval mode."""
    from transformers import AutoModelForCausalLM

    resolved = resolve_model(spec)
    try:
        model = AutoModelForCausalLM.from_pretrained(
            resolved, dtype=dtype, trust_remote_code=trust_remote_code
        )
    except ValueError as exc:
        raise _remote_code_refused(resolved, exc) or exc
    except OSError as exc:  # missing weights, or a hub id that cannot be fetched offline
        raise LoramError(f"cannot load model '{resolved}': {_first_line(exc)}") from exc
    return model.eval()


def load_tokenizer(spec: str | Path, trust_remote_code: bool = False):
    """The model's tokenizer, with a pad token (eos) when it has none, so batches can be padded."""
    from transformers import AutoTokenizer

    resolved = resolve_model(spec)
    if isinstance(resolved, Path) and not any((resolved / f).is_file() for f in _TOKENIZER_FILES):
        raise LoramError(f"model folder {resolved} has no tokenizer (none of {', '.join(_TOKENIZER_FILES)})")
    try:
        tokenizer = AutoTokenizer.from_pretrained(resolved, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, TypeError) as exc:
        raise _remote_code_refused(resolved, exc) or LoramError(
            f"cannot load a tokenizer from '{resolved}': {_first_line(exc)}") from exc
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _remote_code_refused(resolved, exc: BaseException) -> LoramError | None:
    """transformers' refusal to run a folder's own code (trust_remote_code off), as loram's flag names it."""
    if "custom code" in str(exc) and "trust_remote_code" in str(exc):
        return LoramError(f"'{resolved}' holds its own model code (an auto_map in its config); loram runs a model's "
                          f"code only when you pass --trust-remote-code (read the code first)")
    return None


def _flat(exc: BaseException) -> str:
    """The whole message on one line (transformers' validation errors span two)."""
    return " ".join(str(exc).split())


def load_config(spec: str | Path, trust_remote_code: bool = False):
    from transformers import AutoConfig

    from huggingface_hub.errors import StrictDataclassError

    resolved = resolve_model(spec)
    try:
        return AutoConfig.from_pretrained(resolved, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, TypeError, StrictDataclassError) as exc:  # TypeError, Strict...: a value of the wrong type
        raise _remote_code_refused(resolved, exc) or LoramError(
            f"cannot load the config of '{resolved}': {_flat(exc)}; fix its config.json") from exc


def config_from_file(path: str | Path, trust_remote_code: bool = False):
    """A config from a ``config.json`` path (or the folder holding one, or a GGUF's metadata), without any weights."""
    from transformers import AutoConfig

    path = Path(path).expanduser()
    if path.is_file() and path.suffix.lower() == ".gguf":
        from loram_core.models.gguf import read_config

        return read_config(path)
    if path.is_dir():
        path = path / "config.json"
    if not path.is_file():
        raise LoramError(f"config file {path} does not exist")
    try:
        return AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, TypeError) as exc:
        raise _remote_code_refused(path.parent, exc) or LoramError(
            f"cannot read config {path}: {_first_line(exc)}") from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
