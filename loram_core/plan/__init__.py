"""The mask/index protocol: what a pruner decides, what the core applies and recovers through."""

from loram_core.plan.entries import MaskEntry, SliceEntry
from loram_core.plan.experts import ExpertEntry
from loram_core.plan.fingerprint import ModelFingerprint
from loram_core.plan.plan import PrunePlan, PrunerInfo

__all__ = ["ExpertEntry", "MaskEntry", "ModelFingerprint", "PrunePlan", "PrunerInfo", "SliceEntry"]
