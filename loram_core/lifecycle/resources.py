"""Lazily loaded inputs shared by the stages of one process: the original model's config, tokenizer, data."""

from __future__ import annotations

import functools

import torch

from loram_core.errors import LoramError
from loram_core.lifecycle.settings import RunSettings


class Resources:
    def __init__(self, settings: RunSettings, progress: bool = True):
        self.settings = settings
        self.progress = progress

    @functools.cached_property
    def model_path(self) -> str:
        """The original model as a local folder or hub id (an alias resolves to its local folder)."""
        from loram_core.models.loading import resolve_model

        return str(resolve_model(self.settings.model))

    @functools.cached_property
    def base_name_or_path(self) -> str:
        """What a recovered adapter names as its base: a hub id stays a hub id (stock PEFT fetches it, where a
        cache path would not travel to another machine); anything else is the local folder."""
        from loram_core.models.loading import hub_id

        return hub_id(self.settings.model) or self.model_path

    @functools.cached_property
    def config(self):
        from loram_core.models.loading import load_config

        return load_config(self.model_path, trust_remote_code=self.settings.trust_remote_code)

    @functools.cached_property
    def tokenizer(self):
        from loram_core.models.loading import load_tokenizer

        return load_tokenizer(self.model_path, trust_remote_code=self.settings.trust_remote_code)

    def preflight(self, needs_data: bool = True) -> None:
        """Fail on a bad model or data spec before any stage starts (no half-done run for a typo)."""
        _ = self.config
        if needs_data:
            _ = self.examples if self.examples is not None else self.splits

    def original_model(self, dtype: torch.dtype = torch.float32):
        from loram_core.models.loading import load_model

        return load_model(self.model_path, dtype=dtype, trust_remote_code=self.settings.trust_remote_code)

    # --- data (docs/data.md): text as token streams, or encoded examples with labels ---------------------------

    @property
    def data_name(self) -> str:
        return self.examples.name if self.settings.data_sources else self.settings.data

    @functools.cached_property
    def source(self):
        """``RecordSplits`` (data files, folders, record aliases, the datasets cache), a text alias's
        ``TextSplits``, or None for a text file: read once per process."""
        from loram_core.data.examples import read_source
        from loram_core.models.smollm2 import cache_root

        return read_source(self.settings.data, cache_root() / "datasets")

    @property
    def records(self):
        from loram_core.data.records import RecordSplits

        return self.source if isinstance(self.source, RecordSplits) else None

    @functools.cached_property
    def data_format(self) -> str:
        from loram_core.data.examples import record_format

        if self.settings.data_sources:
            return self.examples.format
        if self.records is None:
            if self.settings.data_format not in ("auto", "text"):
                raise LoramError(f"--data-format {self.settings.data_format} needs records (a .jsonl, .json, .parquet, "
                                 f".csv or .arrow file, a folder of them or a cached dataset); {self.settings.data} "
                                 f"is read as text")
            return "text"
        return record_format(self.records, self.settings)

    @functools.cached_property
    def packing(self) -> str:
        packing = self.settings.packing
        return ("wrapped" if self.data_format == "text" else "none") if packing == "auto" else packing

    @functools.cached_property
    def examples(self):
        """``ExampleSplits`` when the run trains on examples (every format but text in wrapped windows), else None."""
        from loram_core.data.examples import encode_records, encode_sources
        from loram_core.models.smollm2 import cache_root

        if self.settings.data_sources:
            return encode_sources(self.settings, self.tokenizer, cache_root() / "datasets")
        if self.data_format == "text" and (self.packing == "wrapped" or self.records is None):
            if self.packing != "wrapped":
                raise LoramError(f"--packing {self.packing} needs records; {self.settings.data} is read as one text")
            return None
        return encode_records(self.records, self.data_format, self.settings, self.tokenizer, self.settings.model)

    @functools.cached_property
    def splits(self):
        """The text documents of each split (text data only)."""
        from loram_core.data import load_dataset
        from loram_core.data.examples import fields_of
        from loram_core.data.formats import convert
        from loram_core.data.splits import SPLITS, TextSplits

        if self.records is None:
            return self.source if isinstance(self.source, TextSplits) else load_dataset(self.settings.data)
        fields = fields_of(self.settings)
        docs = {s: [convert(r, "text", fields, self.records.name, n) for n, r in self.records.numbered(s)]
                for s in SPLITS}
        return TextSplits(self.records.name, docs["train"], docs["validation"], docs["test"])

    @functools.cached_property
    def train_tokens(self) -> torch.Tensor:
        """The training split as one token stream (calibration, alignment, wrapped training)."""
        from loram_core.data import tokenize_documents
        from loram_core.data.packing import to_stream

        if self.examples is not None:
            return to_stream(self.examples.train)[0]
        return tokenize_documents(self.tokenizer, self.splits.train)

    @functools.cached_property
    def train_data(self):
        """What the training loop draws batches from (train/sources.py)."""
        from loram_core.data.packing import to_rows, to_stream
        from loram_core.train.sources import ExampleRows, TokenStream

        if self.examples is None:
            return TokenStream(self.train_tokens)
        if self.packing == "wrapped":
            return TokenStream(*to_stream(self.examples.train))
        return ExampleRows(to_rows(self.examples.train, self.packing, self.settings.seq_len), self.tokenizer.pad_token_id)

    @functools.cached_property
    def validation_set(self):
        """What ``--eval-every`` scores, made once: the validation responses (records), or its text's tokens, as
        far as --eval-tokens reaches."""
        from loram_core.data import tokenize_documents
        from loram_core.evaluate import up_to

        if self.examples is not None:
            return up_to(self.examples.validation or self.examples.test, self.settings.eval_tokens)
        return tokenize_documents(self.tokenizer, self.splits.validation or self.splits.test,
                                  max_tokens=self.settings.eval_tokens)

    def validation_loss(self, model) -> float:
        """Mean loss on ``validation_set``: over its responses, or windows of --eval-seq-len of its text."""
        from loram_core.evaluate import perplexity, response_perplexity

        held_out = self.validation_set
        if self.examples is not None:
            return response_perplexity(model, held_out, progress=False).nll
        return perplexity(model, held_out, seq_len=min(self.settings.eval_seq_len, held_out.numel()), progress=False).nll

    @functools.cached_property
    def test_tokens(self) -> torch.Tensor:
        from loram_core.data import tokenize_documents

        return tokenize_documents(self.tokenizer, self.splits.test, max_tokens=self.settings.eval_tokens)

    def calibration(self, samples: int | None = None, seq_len: int | None = None, data: str | None = None) -> torch.Tensor:
        """Seeded ``[samples, seq_len]`` windows for data-driven pruners.

        Defaults: the run's ``calibration_samples`` and ``seq_len`` from the training split; ``data`` names
        another dataset alias or file, whose training split is then used.
        """
        from loram_core.data import load_dataset, random_blocks, tokenize_documents

        s = self.settings
        samples = samples or s.calibration_samples
        seq_len = seq_len or s.seq_len
        if data is None or data == s.data:
            tokens = self.train_tokens
        else:
            # Enough text for the windows, with room for them to land at different offsets.
            tokens = tokenize_documents(self.tokenizer, load_dataset(data).train, max_tokens=max(samples * seq_len * 4, seq_len))
        gen = torch.Generator().manual_seed(s.seed)
        return random_blocks(tokens, seq_len, samples, gen)
