"""What is printed besides results: progress bars and status lines go to a terminal only, so a pipe or a log
file gets the results (tables or JSON), warnings and errors, and nothing else."""

from __future__ import annotations

import sys

from rich.console import Console


def wants_progress(no_progress: bool = False) -> bool:
    """Whether to show progress; when not, the dependencies' own bars (transformers' weight loading) are off too."""
    on = not no_progress and sys.stderr.isatty()
    if not on:
        import transformers

        transformers.utils.logging.disable_progress_bar()
    return on


def status_console(on: bool) -> Console:
    """stderr for status lines ("loading MODEL"): silent unless ``on``; no file:line column (log_path off)."""
    return Console(stderr=True, quiet=not on, log_path=False)
