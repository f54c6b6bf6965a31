"""The one error the conformance suite raises: which plugin, on which tiny model, broke which rule."""

from __future__ import annotations


class ConformanceError(AssertionError):
    """A plugin breaks a contract of the core. An ``AssertionError``, so pytest reports it as a failed check."""


def fail(subject: str, message: str):
    raise ConformanceError(f"{subject}: {message}")
