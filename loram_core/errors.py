"""Error types. A ``LoramError`` is the user's to fix: the CLI prints it on one line and exits 2."""

from __future__ import annotations

import difflib
import sys


class LoramError(Exception):
    """Bad input: a message for the user, no traceback."""


class UnknownPluginError(LoramError, KeyError):
    """A plugin name that nothing registered."""

    def __init__(self, kind: str, name: str, installed: list[str]):
        self.kind, self.name, self.installed = kind, name, sorted(installed)
        near = difflib.get_close_matches(name, self.installed, n=1, cutoff=0.4)
        hint = f"; did you mean '{near[0]}'?" if near else ""
        listing = ", ".join(self.installed) or "none"
        super().__init__(f"unknown {kind} '{name}'{hint} (installed: {listing})")

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


class PlanError(LoramError):
    """A prune plan that is malformed or does not fit the model."""


class AdapterError(LoramError):
    """An adapter that does not fit the model or plan."""


def warn(message: str) -> None:
    """A warning for the user: one line on stderr, never wrapped at a console width (logs and pipes grep it)."""
    print(f"loram: warning: {message}", file=sys.stderr, flush=True)
