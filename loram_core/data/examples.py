"""A run's data as encoded examples: records read (records.py), their format found or named (formats.py),
rendered and tokenized with labels (encode.py), truncated to ``max_length``; with counts for reports and
``loram data inspect``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs

from loram_core.data.chat_template import resolve_chat_template
from loram_core.data.encode import Encoder, Example, truncate
from loram_core.data.formats import Conversation, Fields, convert, detect
from loram_core.data.records import RecordSplits, is_record_file, load_cached, load_files
from loram_core.data.splits import SPLITS
from loram_core.errors import LoramError


@attrs.frozen
class ExampleSplits:
    name: str
    format: str
    train: tuple[Example, ...] = attrs.field(converter=tuple)
    validation: tuple[Example, ...] = attrs.field(converter=tuple)
    test: tuple[Example, ...] = attrs.field(converter=tuple)
    counts: dict[str, dict[str, int]] = attrs.field(factory=dict)  # per split: records, tokens, trained, truncated

    def split(self, which: str) -> tuple[Example, ...]:
        return getattr(self, which)


def fields_of(settings) -> Fields:
    names = {f.name: getattr(settings, f"field_{f.name}") for f in attrs.fields(Fields) if f.name != "roles"}
    return Fields(**names, roles=dict(settings.roles))


def read_records(data: str, cache_dir: Path) -> RecordSplits | None:
    """The records of ``data`` when it is a data file, a folder of them, a dataset alias of records or a cached
    ``datasets`` dataset; None when it is text (a text file or a text alias)."""
    source = read_source(data, cache_dir)
    return source if isinstance(source, RecordSplits) else None


def read_source(data: str, cache_dir: Path):
    """``RecordSplits``, the ``TextSplits`` of a text alias (loaded once), or None for a text file."""
    from loram_core import registry

    alias = registry.collect("dataset").get(data)
    if alias is not None:
        return alias.obj.load()
    path = Path(data).expanduser()
    if path.is_dir() or (path.is_file() and is_record_file(path)):
        return load_files(path, cache_dir)
    if not path.exists() and "/" in data and not path.suffix:  # owner/name: the datasets cache
        return load_cached(data)
    return None


def record_format(records: RecordSplits, settings) -> str:
    fmt = settings.data_format
    first = next((r for s in SPLITS for r in records.split(s)), None)
    if first is None:
        raise LoramError(f"data {records.name} holds no records")
    return detect(first, fields_of(settings), records.name) if fmt == "auto" else fmt


def encode_records(records: RecordSplits, fmt: str, settings, tokenizer, model: str) -> ExampleSplits:
    fields = fields_of(settings)
    converted = {s: [convert(r, fmt, fields, records.name, n) for n, r in records.numbered(s)] for s in SPLITS}
    numbers = {s: [n for n, _ in records.numbered(s)] for s in SPLITS}
    chat = any(isinstance(item, Conversation) for items in converted.values() for item in items)
    template = resolve_chat_template(tokenizer, settings.chat_template, model, records.name) if chat else None
    encoder = Encoder(tokenizer, template, train_on_inputs=settings.train_on_inputs or fmt == "text")
    limit = settings.max_length or settings.seq_len
    splits: dict[str, list[Example]] = {}
    counts: dict[str, dict[str, Any]] = {}
    for s in SPLITS:
        examples, cut = [], 0
        for n, item in zip(numbers[s], converted[s]):
            example, was_cut = truncate(encoder(item, records.name, n), limit)
            cut += was_cut
            if example.trained:  # a prompt longer than max_length leaves nothing to train: dropped, counted
                examples.append(example)
        splits[s] = examples
        counts[s] = {"records": len(converted[s]), "examples": len(examples), "dropped": len(converted[s]) - len(examples),
                     "truncated": cut, "tokens": sum(map(len, examples)), "trained": sum(e.trained for e in examples)}
    if not splits["train"]:
        raise LoramError(f"data {records.name}: no training example keeps a trained token within --max-length {limit}")
    return ExampleSplits(records.name, fmt, splits["train"], splits["validation"], splits["test"], counts)


def encode_sources(settings, tokenizer, cache_dir: Path) -> ExampleSplits:
    """``--data-source`` entries, each read, split, found or named in format and encoded with its own field
    names, then joined split by split (docs/data.md, "Several sources")."""
    from loram_core.data.records import one_split

    parts = []
    for entry in settings.data_sources:
        own = attrs.evolve(settings, data=entry["path"], data_sources=(),
                           **{k: v for k, v in entry.items() if k not in ("path", "split")})
        records = read_records(own.data, cache_dir)
        if records is None:
            raise LoramError(f"data source {own.data} is text, not records; give text as --data alone")
        if "split" in entry:
            records = one_split(records, entry["split"])
        parts.append(encode_records(records, record_format(records, own), own, tokenizer, settings.model))
    formats = sorted({p.format for p in parts})
    counts = {s: {k: sum(p.counts[s][k] for p in parts) for k in parts[0].counts[s]} for s in SPLITS}
    return ExampleSplits(" + ".join(p.name for p in parts), formats[0] if len(formats) == 1 else "mixed",
                         *[[e for p in parts for e in p.split(s)] for s in SPLITS], counts=counts)
