"""The one error the conformance suite raises: which plugin, on which tiny model, broke which rule."""

from __future__ import annotations


class ConformanceError(AssertionError):
    """A plugin breaks a contract of the core. An ``AssertionError``, so pytest reports it as a failed check."""


def fail(subject: str, message: str):
    raise ConformanceError(f"{subject}: {message}")


def subject_of(kind: str, plugin) -> str:
    return f"{kind} '{getattr(plugin, 'name', type(plugin).__name__)}'"


def fail_unless_satisfies(plugin, protocol, kind: str) -> None:
    """The first rule of every kind: ``plugin`` has each required member of its ``loram_core.protocols`` protocol."""
    from loram_core.protocols import missing_members

    missing = missing_members(plugin, protocol)
    if missing:
        fail(subject_of(kind, plugin), f"lacks {', '.join(missing)} of loram_core.protocols.{protocol.__name__}")
