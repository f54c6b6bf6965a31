"""Progress over decoder layers (a bar, and one line per finished layer) and the final table, on stderr
so ``--json`` output on stdout stays clean."""

from __future__ import annotations

import contextlib

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table


class LayerProgress:
    def __init__(self, enabled: bool, total: int, title: str):
        self.enabled = enabled
        self.console = Console(stderr=True)
        self._bar = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[note]}"),
            TimeElapsedColumn(), console=self.console, disable=not enabled,
        )
        self._task = self._bar.add_task(title, total=total, note="")

    def note(self, text: str) -> None:
        self._bar.update(self._task, note=text)

    def layer_done(self, line: str) -> None:
        if self.enabled:
            self._bar.console.print(line)
        self._bar.update(self._task, advance=1, note="")


@contextlib.contextmanager
def layer_progress(enabled: bool, total: int, title: str):
    progress = LayerProgress(enabled, total, title)
    with progress._bar:
        yield progress


def print_layer_table(rows: list[dict], title: str, enabled: bool) -> None:
    """``rows``: dicts with layer, modules, sparsity, and optionally error, relative, seconds."""
    if not enabled or not rows:
        return
    table = Table(title=title)
    columns = [("layer", "layer", "d"), ("modules", "modules", "d"), ("sparsity", "sparsity", ".4f"),
               ("error", "‖WX − ŴX‖²", ".4g"), ("relative", "relative error", ".4g"), ("seconds", "seconds", ".1f")]
    shown = [c for c in columns if c[0] in rows[0]]
    for _, header, _ in shown:
        table.add_column(header, justify="right")
    for row in rows:
        table.add_row(*(format(row[key], spec) for key, _, spec in shown))
    Console(stderr=True).print(table)
