"""``RUN_DIR/metrics.jsonl``: one line per training step (step, loss, lr, grad_norm, tokens, and val_loss every
``--eval-every`` steps), and with ``--report-to tensorboard`` the same scalars as TensorBoard event files in
``RUN_DIR/tensorboard`` (the ``tensorboard`` package's format, through ``torch.utils.tensorboard``).

A resumed run first drops the lines after the step it resumes from, so the file always describes the steps that
made the adapter; TensorBoard's ``purge_step`` does the same for the event files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from loram_core.atomic import write_bytes
from loram_core.errors import LoramError


class MetricsLog:
    def __init__(self, path: Path, tensorboard_dir: Path | None = None, start: int = 0):
        self.path = Path(path)
        kept = [line for line in _lines(self.path) if json.loads(line).get("step", 0) <= start]
        write_bytes(self.path, "".join(line + "\n" for line in kept).encode())  # atomically: never half a file
        self._file = open(self.path, "a", encoding="utf-8")
        self._board = None
        if tensorboard_dir is not None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise LoramError("--report-to tensorboard needs the tensorboard package: pip install tensorboard") from None
            self._board = SummaryWriter(str(tensorboard_dir), purge_step=start + 1 if start else None)

    def write(self, step: int, **values: Any) -> None:
        values = {k: v for k, v in values.items() if v is not None}
        self._file.write(json.dumps({"step": step, **values}) + "\n")
        self._file.flush()
        if self._board is not None:
            for key, value in values.items():
                self._board.add_scalar(f"train/{key}", value, step)

    def close(self) -> None:
        self._file.close()
        if self._board is not None:
            self._board.close()


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The lines of a ``metrics.jsonl`` (none when there is no file)."""
    return [json.loads(line) for line in _lines(Path(path))]


def _lines(path: Path) -> list[str]:
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            json.loads(line)
        except ValueError:  # the tail a killed writer left: the step it described is trained again
            continue
        out.append(line)
    return out
