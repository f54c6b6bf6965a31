"""Built-in aligners (docs/alignment.md): ``continual-pretrain`` and ``distill``.

- ``mixture``: data mixtures of dataset aliases / files with weights, packed into seeded windows;
- ``config``: the aligners' attrs configs;
- ``loop``: the full-parameter training loop (accelerate, frozen set, plan masks kept, resume by fingerprint),
  on the batch sampling and checkpoints it shares with LoRA training (``loram_core.train``);
- ``continual_pretrain`` / ``distill``: the two aligners.
"""

from __future__ import annotations

from loram_core import hookimpl


@hookimpl
def register_aligners(register):
    # Imported here so registering the names costs nothing until an aligner is used.
    from loram_core.builtin.align.continual_pretrain import ContinualPretrain
    from loram_core.builtin.align.distill import Distill

    register(ContinualPretrain())
    register(Distill())
