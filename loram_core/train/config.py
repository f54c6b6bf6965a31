"""Training hyper-parameters: ``TrainConfig``, the training fields of ``RunSettings`` as one frozen value.

It is derived from the one settings schema (``loram_core/lifecycle/settings.py``, ``TRAIN_FIELDS``), so it
has no defaults or validators of its own to drift from the CLI's.
"""

from __future__ import annotations

from loram_core.lifecycle.settings import TRAIN_FIELDS, TrainConfig

__all__ = ["TRAIN_FIELDS", "TrainConfig"]
