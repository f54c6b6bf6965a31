"""On the real SmolLM2-135M (slow; CI runs it): Taylor importance beats weight magnitude by far at ratio 0.5."""

import copy

import pytest

from llmpruner_helpers import real_model_context
from loram_core.builtin.magnitude import MagnitudePruner
from loram_core.evaluate import perplexity
from loram_core.plan.apply import apply_plan
from loram_core.plan.validate import validate_plan
from loram_core.structured import StructuredConfig
from loram_plugin_llmpruner import LLMPruner, LLMPrunerConfig

pytestmark = pytest.mark.slow


def test_taylor_pruned_smollm2_has_far_lower_perplexity_than_magnitude_pruned():
    res, model, ctx = real_model_context(calibration_samples=8, seq_len=64)
    tokens = res.test_tokens[:2048]
    ppl = {}
    for name, pruner, cfg in (
        ("magnitude", MagnitudePruner(), StructuredConfig(ratio=0.5)),
        ("llmpruner", LLMPruner(), LLMPrunerConfig(ratio=0.5)),
    ):
        plan = pruner.plan(model, cfg, ctx)
        validate_plan(plan, res.config)
        ppl[name] = perplexity(apply_plan(copy.deepcopy(model), plan), tokens, seq_len=256, progress=False).ppl
    assert ppl["llmpruner"] * 2 < ppl["magnitude"], ppl
