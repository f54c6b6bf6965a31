"""lm-eval, datasets and transformers print logs, warnings and tqdm bars, and lm-eval runs ``git`` (whose
error goes straight to file descriptor 2). loram prints only its own bars, and nothing in a pipe: while the
libraries run, descriptors 1 and 2 and ``sys.stdout``/``sys.stderr`` point at a log file in the run directory. loram's task bars write to their
own handle of the terminal, opened before (docs/tasks.md, "Output")."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def library_output_to(log: Path | None) -> Iterator[None]:
    log_path = Path(log) if log is not None else Path(os.devnull)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved_out, saved_err = os.dup(1), os.dup(2)
    streams = sys.stdout, sys.stderr
    with open(log_path, "a", buffering=1) as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        # and Python's own streams, which need not be descriptors 1 and 2 (a test's capture, a notebook)
        sys.stdout = sys.stderr = sink
        try:
            yield
        finally:
            sys.stdout, sys.stderr = streams
            os.dup2(saved_out, 1)
            os.dup2(saved_err, 2)
            os.close(saved_out)
            os.close(saved_err)
