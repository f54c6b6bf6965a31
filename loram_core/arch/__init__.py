"""Architecture adapters: which modules a model family exposes for pruning and how they couple."""

from loram_core.arch.experts import ExpertGroup, is_mixture, layer_expert_groups
from loram_core.arch.groups import ATTENTION_UNITS, CouplingGroup, GroupMember, adapter_for, family_groups

__all__ = ["ATTENTION_UNITS", "CouplingGroup", "ExpertGroup", "GroupMember", "adapter_for", "family_groups", "is_mixture", "layer_expert_groups"]
