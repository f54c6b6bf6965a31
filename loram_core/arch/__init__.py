"""Architecture adapters: which modules a model family exposes for pruning and how they couple."""

from loram_core.arch.groups import CouplingGroup, GroupMember, adapter_for

__all__ = ["CouplingGroup", "GroupMember", "adapter_for"]
