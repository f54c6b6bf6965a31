"""Records (dicts) from local data files or the local ``datasets`` cache, through Hugging Face ``datasets``, with
train / validation / test splits: the source's own when it has them, else assigned per record by a hash.

``--data`` takes a ``.jsonl``, ``.json``, ``.parquet``, ``.csv`` or ``.arrow`` file, a folder of them (files named
``train*``, ``validation*`` / ``valid*`` / ``dev*`` and ``test*`` are those splits), a folder written by
``save_to_disk``, or the name of a dataset in the ``datasets`` cache. Nothing is fetched: ``HF_DATASETS_OFFLINE`` is set for the call (docs/data.md).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any, Iterator

import attrs

from loram_core.data.splits import SPLITS, assign_splits
from loram_core.errors import LoramError

BUILDERS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv", ".arrow": "arrow"}
# Split names of data files as `datasets` and the hub spell them.
SPLIT_PREFIXES = {"train": ("train",), "validation": ("validation", "valid", "val", "dev"), "test": ("test",)}


@attrs.frozen
class RecordSplits:
    """Each split's ``(number, record)`` pairs; ``number`` counts from 1 in the source (a JSONL file's line,
    without blank lines), so a message about a record points at it."""

    name: str
    train: tuple[tuple[int, dict], ...] = attrs.field(converter=tuple)
    validation: tuple[tuple[int, dict], ...] = attrs.field(converter=tuple)
    test: tuple[tuple[int, dict], ...] = attrs.field(converter=tuple)
    own_splits: bool = False  # the source's splits, not hashed ones

    def split(self, which: str) -> tuple[dict, ...]:
        return tuple(record for _, record in getattr(self, which))

    def numbered(self, which: str) -> tuple[tuple[int, dict], ...]:
        return getattr(self, which)


def is_record_file(path: Path) -> bool:
    return path.suffix.lower() in BUILDERS


def data_files(path: Path) -> tuple[str, dict[str, list[str]]]:
    """``(builder, {split: files})`` of a file or a folder of files of one kind; one split means "split it"."""
    if path.is_file():
        files = [path]
    else:
        files = sorted(p for p in path.iterdir()
                       if p.is_file() and p.suffix.lower() in BUILDERS and not p.name.startswith("."))
        if not files:
            raise LoramError(f"data folder {path} holds no {', '.join(BUILDERS)} files")
    builders = {BUILDERS[p.suffix.lower()] for p in files}
    if len(builders) > 1:
        raise LoramError(f"data folder {path} mixes file kinds ({', '.join(sorted(builders))}); keep one kind per folder")
    by_split: dict[str, list[str]] = {}
    for p in files:
        split = next((s for s, prefixes in SPLIT_PREFIXES.items() if p.stem.lower().startswith(prefixes)), None)
        by_split.setdefault(split or "train", []).append(str(p))
    if path.is_dir() and len(by_split) > 1 and not all(
            any(Path(f).stem.lower().startswith(SPLIT_PREFIXES[s]) for f in fs) for s, fs in by_split.items()):
        raise LoramError(f"data folder {path}: name every file by its split (train*, validation*, test*) or none")
    return builders.pop(), by_split


@contextlib.contextmanager
def _quiet_offline() -> Iterator[None]:
    """``datasets`` offline, without its progress bars and log lines (its errors come back as exceptions). Both
    libraries read their offline switch when imported, so the switch is set on them, not only in the environment."""
    import datasets
    import huggingface_hub.constants as hub

    saved = (os.environ.get("HF_DATASETS_OFFLINE"), datasets.config.HF_HUB_OFFLINE, hub.HF_HUB_OFFLINE)
    os.environ["HF_DATASETS_OFFLINE"] = "1"
    datasets.config.HF_HUB_OFFLINE = hub.HF_HUB_OFFLINE = True
    logger = logging.getLogger("datasets")
    level = logger.level
    datasets.disable_progress_bars()
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)
        datasets.enable_progress_bars()
        datasets.config.HF_HUB_OFFLINE, hub.HF_HUB_OFFLINE = saved[1], saved[2]
        if saved[0] is None:
            os.environ.pop("HF_DATASETS_OFFLINE", None)
        else:
            os.environ["HF_DATASETS_OFFLINE"] = saved[0]


def _first_line(exc: BaseException) -> str:
    cause = exc.__cause__ or exc.__context__ or exc
    text = str(cause).strip() or type(cause).__name__
    return text.splitlines()[0]


def load_files(path: Path, cache_dir: Path) -> RecordSplits:
    import datasets

    if path.is_dir() and ((path / "dataset_dict.json").is_file() or (path / "state.json").is_file()):
        with _quiet_offline():  # a folder written by save_to_disk
            try:
                loaded = datasets.load_from_disk(str(path))
            except Exception as exc:  # noqa: BLE001 - the user's folder
                raise LoramError(f"data {path}: not readable as a saved dataset ({_first_line(exc)})") from None
        parts = {s: loaded[s] for s in loaded} if isinstance(loaded, datasets.DatasetDict) else {"train": loaded}
        return _splits(path.name, parts)
    builder, by_split = data_files(path)

    with _quiet_offline():
        try:
            loaded = datasets.load_dataset(builder, data_files=by_split, cache_dir=str(cache_dir))
        except Exception as exc:  # noqa: BLE001 - pyarrow / datasets errors: the user's file
            raise LoramError(f"data {path}: not readable as {builder} ({_first_line(exc)})") from None
    return _splits(path.name, {name: loaded[name] for name in loaded})


def load_cached(name: str) -> RecordSplits | None:
    """A dataset in the local ``datasets`` / hub cache by name, or None when there is none by that name."""
    import datasets

    with _quiet_offline():
        try:
            loaded = datasets.load_dataset(name)
        except Exception:  # noqa: BLE001 - not cached (or not a dataset): the caller says what was tried
            return None
    return _splits(name, {split: loaded[split] for split in loaded})


def one_split(records: RecordSplits, split: str) -> RecordSplits:
    """Only ``split`` of ``records``, split again by hash (a source's ``split = "train"``)."""
    if split not in SPLITS:
        raise LoramError(f"data {records.name}: split '{split}' is not one of {', '.join(SPLITS)}")
    return _splits(f"{records.name}[{split}]", {"train": records.split(split)})


def _splits(name: str, parts: dict[str, Any]) -> RecordSplits:
    named = {("validation" if s in SPLIT_PREFIXES["validation"] else s): rows for s, rows in parts.items()}
    if set(named) - set(SPLITS):
        raise LoramError(f"data {name}: splits {', '.join(sorted(named))}; loram reads train, validation and test")
    if len(named) > 1:  # the source's own splits; a missing one stays empty
        return RecordSplits(name, *[[(n, dict(r)) for n, r in enumerate(named.get(s, ()), 1)] for s in SPLITS],
                            own_splits=True)
    records = [dict(r) for r in next(iter(named.values()))]
    if len(records) < 3:
        raise LoramError(f"data {name} holds {len(records)} records; need at least 3 to split off validation and test")
    keys = [f"{i}:{hashlib.sha256(json.dumps(r, sort_keys=True, default=str).encode()).hexdigest()[:16]}"
            for i, r in enumerate(records)]
    groups: list[list[tuple[int, dict]]] = [[], [], []]
    for n, (record, split) in enumerate(zip(records, assign_splits(keys)), 1):
        groups[split].append((n, record))
    return RecordSplits(name, *groups)
