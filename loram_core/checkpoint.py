"""Tensor-at-a-time access to safetensors checkpoints, so pruning never needs the whole model in memory.

``CheckpointReader`` reads single tensors or one module's parameters from the original's safetensors
files (one file or HF shards with an index). Files are opened per read and closed again: safetensors maps
the file, and a handle kept open would leave every page ever touched in the process's resident set.
``ShardWriter`` writes tensors into HF-style shards as they come, keeping at most one shard in memory;
``write_like`` rewrites a checkpoint tensor by tensor into the same files, holding one tensor.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Iterable

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from loram_core.errors import LoramError

INDEX = "model.safetensors.index.json"
SINGLE = "model.safetensors"


def _local_folder(model_path: str | os.PathLike) -> Path:
    path = Path(model_path).expanduser()
    if path.is_dir():
        return path
    try:  # a hub id: only what is already in the local cache (no network at run time)
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(str(model_path), local_files_only=True))
    except Exception as exc:  # noqa: BLE001 - any failure means "not available locally"
        raise LoramError(f"cannot find a local copy of '{model_path}' to stream weights from: {exc}") from None


# A damaged file of a model the user gave is theirs to restore; only a file loram wrote may be rebuilt by a stage.
USER_FILE_REMEDY = "this file was not written by loram: restore it from where the model came from"


def _corrupt(file: Path, exc: BaseException, remedy: str = USER_FILE_REMEDY) -> LoramError:
    return LoramError(f"{file} is not a readable safetensors file (corrupt or truncated?): {exc}; {remedy}")


def _open(file: Path, remedy: str = USER_FILE_REMEDY):
    if not Path(file).is_file():
        raise LoramError(f"{file} is missing (named by the checkpoint's index); {remedy}")
    try:
        return safe_open(file, framework="pt")
    except Exception as exc:  # noqa: BLE001 - SafetensorError, OSError
        raise _corrupt(file, exc, remedy) from None


def check_safetensors(file: str | os.PathLike, remedy: str = USER_FILE_REMEDY) -> Path:
    """``file`` if it is a whole safetensors file (its header parses and covers the file's length), else one line."""
    with _open(Path(file), remedy):
        return Path(file)


class CheckpointReader:
    """Which file holds each tensor, and reads on demand (always as a new CPU tensor)."""

    def __init__(self, files: dict[str, Path], remedy: str = USER_FILE_REMEDY):
        self.files = files
        self.remedy = remedy  # what to do about a damaged file: restore the user's, rebuild loram's

    @classmethod
    def open(cls, model_path: str | os.PathLike, remedy: str = USER_FILE_REMEDY) -> CheckpointReader:
        folder = _local_folder(model_path)
        if (folder / INDEX).is_file():
            try:
                weight_map = json.loads((folder / INDEX).read_text())["weight_map"]
            except (ValueError, KeyError) as exc:
                raise LoramError(f"{folder / INDEX} is not a valid safetensors index: {exc}; {remedy}") from None
            return cls({name: folder / file for name, file in weight_map.items()}, remedy)
        if (folder / SINGLE).is_file():
            with _open(folder / SINGLE, remedy) as f:
                return cls({name: folder / SINGLE for name in f.keys()}, remedy)
        raise LoramError(f"{folder} has no safetensors weights ({SINGLE} or {INDEX}); layer streaming needs them")

    @property
    def names(self) -> list[str]:
        return list(self.files)

    def __contains__(self, name: str) -> bool:
        return name in self.files

    def holds_parameters_of(self, skeleton) -> bool:
        """Whether every parameter of ``skeleton`` is stored under its own name (a tied head aside). Mixtures
        of experts saved in transformers' original per-expert format are not: transformers fuses their
        experts when it loads them, so loram reads such a checkpoint through ``from_pretrained`` instead."""
        tied = bool(getattr(skeleton.config, "tie_word_embeddings", False))
        names = {name for name, _ in skeleton.named_parameters(remove_duplicate=False)}
        return all(name in self.files for name in names if not (tied and name == "lm_head.weight"))

    def get_many(self, names: Iterable[str], dtype: torch.dtype | None = torch.float32) -> dict[str, torch.Tensor]:
        by_file: dict[Path, list[str]] = {}
        for name in names:
            if name not in self.files:
                raise LoramError(f"tensor '{name}' is not in the checkpoint")
            by_file.setdefault(self.files[name], []).append(name)
        out = {}
        for file, wanted in by_file.items():
            with _open(file, self.remedy) as f:
                for name in wanted:
                    try:
                        t = f.get_tensor(name)
                    except Exception as exc:  # noqa: BLE001 - safetensors' own error types
                        raise _corrupt(file, exc, self.remedy) from None
                    # In its stored dtype a tensor is a view that keeps its whole file mapped: copy it, or each
                    # tensor held (e.g. in a ShardWriter's buffer) pins its own mapping of a full shard.
                    out[name] = t if dtype is None else t.to(dtype) if t.dtype != dtype else t.clone()
        return out

    def get(self, name: str, dtype: torch.dtype | None = torch.float32) -> torch.Tensor:
        return self.get_many([name], dtype)[name]

    def load_module(self, module: torch.nn.Module, prefix: str, dtype: torch.dtype = torch.float32) -> torch.nn.Module:
        """Give ``module``'s (meta) parameters their checkpoint values, in place; ``prefix`` is its full name."""
        names = {f"{prefix}.{n}": n for n, _ in module.named_parameters()}
        tensors = self.get_many(names, dtype)
        module.load_state_dict({names[k]: v for k, v in tensors.items()}, strict=False, assign=True)
        return module


def release_module(module: torch.nn.Module) -> torch.nn.Module:
    """Send a module's parameters back to the meta device, freeing their memory."""
    return module.to("meta")


class ShardWriter:
    """Writes tensors to ``model-0000i-of-0000n.safetensors`` shards of about ``shard_bytes`` plus an index."""

    def __init__(self, folder: str | os.PathLike, shard_bytes: int = 64 * 2**20):
        self.folder = Path(folder)
        self.shard_bytes = shard_bytes
        self._buffer: dict[str, torch.Tensor] = {}
        self._size = 0
        self._shards: list[list[str]] = []
        self.total_bytes = 0
        self.total_numel = 0

    def add(self, name: str, tensor: torch.Tensor) -> None:
        self._buffer[name] = tensor.contiguous()
        nbytes = tensor.numel() * tensor.element_size()
        self._size += nbytes
        self.total_bytes += nbytes
        self.total_numel += tensor.numel()
        if self._size >= self.shard_bytes:
            self._flush()

    def _flush(self) -> None:
        if not self._buffer:
            return
        save_file(self._buffer, self.folder / f".shard-{len(self._shards)}.safetensors", metadata={"format": "pt"})
        self._shards.append(list(self._buffer))
        self._buffer, self._size = {}, 0

    def close(self) -> None:
        """Flush, give the shards their final HF names and write the index."""
        self._flush()
        n = len(self._shards)
        weight_map = {}
        for i, names in enumerate(self._shards):
            final = f"model-{i + 1:05d}-of-{n:05d}.safetensors"
            os.replace(self.folder / f".shard-{i}.safetensors", self.folder / final)
            weight_map.update({name: final for name in names})
        index = {"metadata": {"total_size": self.total_bytes}, "weight_map": weight_map}
        (self.folder / INDEX).write_text(json.dumps(index, indent=2) + "\n")


def _header(file: Path, remedy: str) -> tuple[bytes, dict]:
    """A safetensors file's header: its raw bytes (length prefix included) and the parsed JSON."""
    with open(file, "rb") as f:
        size = int.from_bytes(f.read(8), "little")
        raw = f.read(size)
    try:
        return size.to_bytes(8, "little") + raw, json.loads(raw)
    except ValueError as exc:
        raise _corrupt(file, exc, remedy) from None


def write_like(reader: CheckpointReader, folder: str | os.PathLike, transform) -> None:
    """Write into ``folder`` the files of ``reader``'s checkpoint, each tensor passed through
    ``transform(name, tensor) -> tensor`` (same shape and dtype), one tensor in memory at a time.

    The source's headers are copied byte for byte and each tensor's bytes written at the offset they name,
    so a file is never buffered (a ``ShardWriter`` holds a whole shard) and the output keeps the source's
    shard layout and index.
    """
    folder = Path(folder)
    sources = list(dict.fromkeys(reader.files.values()))
    for source in sources:
        raw, header = _header(source, reader.remedy)
        entries = sorted(((k, v) for k, v in header.items() if k != "__metadata__"), key=lambda kv: kv[1]["data_offsets"][0])
        with open(folder / source.name, "wb") as out:
            out.write(raw)
            for name, entry in entries:
                begin, end = entry["data_offsets"]
                tensor = transform(name, reader.get(name, dtype=None)).contiguous()
                if tensor.numel() * tensor.element_size() != end - begin or out.tell() != len(raw) + begin:
                    raise LoramError(f"{name}: the written tensor does not fill its place in {source.name}")
                out.write(tensor.reshape(-1).view(torch.uint8).numpy().data if tensor.numel() else b"")
                del tensor
    index = sources[0].parent / INDEX
    if index.is_file():
        shutil.copyfile(index, folder / INDEX)


def load_weights(folder: str | os.PathLike, remedy: str = USER_FILE_REMEDY) -> dict[str, torch.Tensor]:
    """All tensors of a safetensors folder (single file or shards), as a state dict."""
    reader = CheckpointReader.open(folder, remedy)
    return reader.get_many(reader.names, dtype=None)
