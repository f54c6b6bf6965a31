"""Lazily loaded inputs shared by the stages of one process: the original model's config, tokenizer, data."""

from __future__ import annotations

import functools
import torch

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
            _ = self.splits

    def original_model(self, dtype: torch.dtype = torch.float32):
        from loram_core.models.loading import load_model

        return load_model(self.model_path, dtype=dtype, trust_remote_code=self.settings.trust_remote_code)

    @functools.cached_property
    def splits(self):
        from loram_core.data import load_dataset

        return load_dataset(self.settings.data)

    @functools.cached_property
    def train_tokens(self) -> torch.Tensor:
        from loram_core.data import tokenize_documents

        return tokenize_documents(self.tokenizer, self.splits.train)

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
