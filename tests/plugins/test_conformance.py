"""The conformance suite: the core's own plugins pass it, deliberately broken ones fail it with the rule named."""

import attrs
import pytest
import torch

from loram_core import hookimpl, registry
from loram_core.builtin.magnitude import MagnitudePruner
from loram_core.plan import PrunePlan, PrunerInfo
from loram_core.structured import StructuredConfig, structured_plan
from loram_core.testing.conformance import (
    FAMILIES,
    PRUNER_CHECKS,
    ConformanceError,
    check_aligner,
    check_pruner,
    check_pruner_outcome,
    check_quantizer,
    check_recoverer,
    pruner_cases,
    resolve,
    run_pruner,
)
from loram_core.testing.conformance.cases import case_fits
from loram_core.testing.conformance.harness import family
from loram_test_helpers import TESTS, BrokenCouplingPruner, FakeQuantizer, MissesRatioPruner

pytest_plugins = ["pytester"]


@pytest.mark.parametrize("name", ["magnitude", "random", "none"])
def test_core_pruners_keep_every_rule_on_every_tiny_model(name, tmp_path):
    pruner = registry.get("pruner", name)
    passed = check_pruner(pruner, workdir=tmp_path)
    runs = [(f, c) for f in FAMILIES for c in pruner_cases(pruner) if case_fits(f.config(), c)]
    assert len(passed) == len(runs) * len(PRUNER_CHECKS)
    assert not [line for line in passed if "refused" in line]


@pytest.mark.parametrize("name", ["zero", "normal"])
def test_core_recoverers_conform(name, tmp_path):
    check_recoverer(registry.get("recoverer", name), workdir=tmp_path)


# --- deliberately broken pruners (two more in loram_test_helpers.py, which a pytester conftest imports) ---


@attrs.frozen
class MutatingPruner:
    """Zeroes what it prunes itself: the core must be the one that applies a plan."""

    name: str = "mutating"
    config_cls: type = StructuredConfig
    pattern: str = "structured"

    def plan(self, model, config, context):
        plan = attrs.evolve(MagnitudePruner().plan(model, config, context), pruner=PrunerInfo(self.name, "0"))
        with torch.no_grad():
            model.model.layers[4].mlp.up_proj.weight.zero_()
        return plan


@attrs.frozen
class UnseededPruner:
    """Draws from the global RNG instead of the context's seed."""

    name: str = "unseeded"
    config_cls: type = StructuredConfig
    pattern: str = "structured"

    def plan(self, model, config, context):
        return structured_plan(model, config, context, PrunerInfo(self.name, "0"), lambda group: torch.rand(group.units))


def outcome_of(pruner, tmp_path, options=None):
    return run_pruner(pruner, family("llama-gqa"), options or {"ratio": 0.5}, tmp_path)


def test_a_broken_coupling_fails_validation_with_the_module_named(tmp_path):
    outcome = outcome_of(BrokenCouplingPruner(), tmp_path)
    with pytest.raises(ConformanceError, match=r"model\.layers\.4\.self_attn\.k_proj: breaks the coupling"):
        check_pruner_outcome(outcome, "validates", tmp_path)
    with pytest.raises(ConformanceError, match="broken-coupling"):
        check_pruner(BrokenCouplingPruner(), families=FAMILIES[:1], workdir=tmp_path)


def test_a_missed_ratio_fails_with_the_counts(tmp_path):
    outcome = outcome_of(MissesRatioPruner(), tmp_path)
    check_pruner_outcome(outcome, "validates", tmp_path)  # a valid plan: only the amount is wrong
    # KV groups: floor(4 * 0.25) = 1 removed where floor(4 * 0.5) = 2 are asked for
    with pytest.raises(ConformanceError, match=r"model\.layers\.4\.self_attn: removes 1 of 4 attention units; ratio 0\.5 asks for 2"):
        check_pruner_outcome(outcome, "ratio", tmp_path)


def test_an_explicit_layer_range_must_be_covered(tmp_path):
    outcome = outcome_of(MagnitudePruner(), tmp_path, {"ratio": 0.5, "layers": (2, 6)})
    check_pruner_outcome(outcome, "ratio", tmp_path)
    shifted = attrs.evolve(outcome, options={"ratio": 0.5, "layers": (1, 6)})
    with pytest.raises(ConformanceError, match="asked for layers 1:6, the plan records 2:6"):
        check_pruner_outcome(shifted, "ratio", tmp_path)


def test_a_pruner_that_applies_its_own_plan_fails(tmp_path):
    with pytest.raises(ConformanceError, match=r"plan\(\) changed the model's model\.layers\.4\.mlp\.up_proj\.weight"):
        check_pruner_outcome(outcome_of(MutatingPruner(), tmp_path), "decides_only", tmp_path)


def test_an_unseeded_pruner_fails_determinism(tmp_path):
    with pytest.raises(ConformanceError, match="two runs with the same seed give different plans"):
        check_pruner_outcome(outcome_of(UnseededPruner(), tmp_path), "deterministic", tmp_path)


def test_mask_counts_are_checked_per_group(tmp_path):
    """A 2:4 plan whose masks keep 3 of 4 in some groups is caught with the counts (MaskEntry only checks >= N)."""
    from loram_core.plan import MaskEntry

    outcome = outcome_of(registry.get("pruner", "magnitude"), tmp_path)
    module = "model.layers.4.mlp.up_proj"
    mask = torch.ones(96, 64, dtype=torch.bool)
    mask.view(96, 16, 4)[:, :, :3] = False  # 3 zeros in every group of 4: more than 2:4 says
    plan = PrunePlan(base=outcome.plan.base, pruner=PrunerInfo("magnitude", "0"), pattern="2:4",
                     entries={module: MaskEntry(mask=mask, pattern="2:4")})
    broken = attrs.evolve(outcome, plan=plan, pruner=MagnitudePruner(pattern="2:4"))
    with pytest.raises(ConformanceError, match=r"up_proj: 2:4 needs exactly 2 zeros in every 4 weights of a row; found groups with 3 to 3"):
        check_pruner_outcome(broken, "ratio", tmp_path)


def test_a_plan_whose_entries_share_an_index_tensor_round_trips(tmp_path):
    """gate/up/down keeping the same channels may hold one tensor; saving must not trip over shared storage."""
    from loram_core.plan import SliceEntry

    outcome = outcome_of(MagnitudePruner(), tmp_path)
    keep = torch.arange(0, 96, 2)
    mlp = "model.layers.4.mlp"
    entries = {**outcome.plan.entries, f"{mlp}.gate_proj": SliceEntry((96, 64), keep_out=keep),
               f"{mlp}.up_proj": SliceEntry((96, 64), keep_out=keep), f"{mlp}.down_proj": SliceEntry((64, 96), keep_in=keep)}
    shared = attrs.evolve(outcome, plan=attrs.evolve(outcome.plan, entries=entries))
    assert shared.plan.entries[f"{mlp}.up_proj"].keep_out is shared.plan.entries[f"{mlp}.down_proj"].keep_in
    check_pruner_outcome(shared, "round_trip", tmp_path)


def test_the_recovery_invariant_catches_a_wrong_scatter(tmp_path):
    """The recovery invariant (docs/architecture.md, "Recovery") checked exactly: recovery that puts lora_B rows
    in the wrong places fails with the module named."""
    import peft

    from loram_core.plan.fingerprint import linear_shapes
    from loram_core.recover import recover_adapter
    from loram_core.testing.conformance.harness import materialize
    from loram_core.testing.conformance.recovery_checks import check_invariant, integer_lora, lora_targets

    outcome = outcome_of(MagnitudePruner(), tmp_path)
    small = integer_lora(materialize(outcome, tmp_path), lora_targets(outcome.plan, outcome.config))
    state = {k: v.detach().clone() for k, v in peft.get_peft_model_state_dict(small).items()}
    shapes = linear_shapes(outcome.config)
    recovered = recover_adapter(state, outcome.plan, shapes, registry.get("recoverer", "zero"))
    check_invariant("test", outcome.plan, shapes, state, recovered)
    key = next(k for k in recovered if "layers.4.mlp.up_proj.lora_B" in k)
    recovered[key] = recovered[key].roll(1, dims=0)
    with pytest.raises(ConformanceError, match=r"model\.layers\.4\.mlp\.up_proj: recovered delta differs"):
        check_invariant("test", outcome.plan, shapes, state, recovered)


# --- quantizers, aligners, recoverers -------------------------------------------------------------------


def test_quantizer_contract(tmp_path):
    check_quantizer(FakeQuantizer(), workdir=tmp_path / "ok")
    with pytest.raises(ConformanceError, match=r"quantizer 'grid': quantized logits are \d+% off"):
        check_quantizer(FakeQuantizer(zero_instead=True), workdir=tmp_path / "noise")
    with pytest.raises(ConformanceError, match="bits must be an integer in 1..16"):
        check_quantizer(FakeQuantizer(), options={"bits": 0}, workdir=tmp_path / "bits")


@attrs.frozen
class StepsConfig:
    steps: int = 2


@attrs.frozen
class SGDAligner:
    """A few SGD steps of next-token loss on random windows: trains the pruned model in place."""

    name: str = "sgd"
    config_cls: type = StepsConfig
    mode: str = "train"

    def align(self, model, config, context):
        if self.mode == "noop":
            return {"steps": 0}
        if self.mode == "reshape":
            model.model.layers[4].mlp.up_proj = torch.nn.Linear(64, 10, bias=False)
            return {}
        gen = torch.Generator().manual_seed(context.seed)
        opt = torch.optim.SGD(model.parameters(), lr=1e-2)
        for _ in range(config.steps):
            batch = torch.randint(0, context.original_config.vocab_size, (2, 16), generator=gen)
            model(input_ids=batch, labels=batch).loss.backward()
            opt.step()
            opt.zero_grad()
        return {"dataset": "random", "steps": config.steps, "ppl_before": 2.0, "ppl_after": 1.5}


def test_aligner_contract(tmp_path):
    check_aligner(SGDAligner(), workdir=tmp_path / "ok")
    with pytest.raises(ConformanceError, match="left every weight unchanged"):
        check_aligner(SGDAligner(mode="noop"), workdir=tmp_path / "noop")
    with pytest.raises(ConformanceError, match="changed the pruned model's parameters or shapes"):
        check_aligner(SGDAligner(mode="reshape"), workdir=tmp_path / "reshape")


@attrs.frozen
class TransposedFill:
    name: str = "transposed"

    def fill(self, shape, *, factor, dtype, generator=None):
        return torch.zeros(tuple(reversed(shape)), dtype=dtype)


def test_recoverer_contract_rejects_a_wrong_shape(tmp_path):
    with pytest.raises(ConformanceError, match=r"recoverer 'transposed': fill\(\(4, 24\), factor=lora_A"):
        check_recoverer(TransposedFill(), workdir=tmp_path)


# --- naming what to check ------------------------------------------------------------------------------


def test_resolve_by_object_name_plugin_name_and_entry_point(monkeypatch):
    from loram_core import plugins
    from loram_core.errors import LoramError
    from loram_core.testing.conformance import targets

    assert [(t.kind, t.name) for t in resolve("magnitude")] == [("pruner", "magnitude")]
    assert [(t.kind, t.name) for t in resolve("loram_core.builtin.recoverers")] == [("recoverer", "normal"), ("recoverer", "zero")]

    class Plugin:
        @hookimpl
        def register_pruners(self, register):
            register(MissesRatioPruner())

    class FakeEntryPoint:
        name = "fake-dist"

        def load(self):
            return Plugin()

    monkeypatch.setattr(targets, "entry_points", lambda group: [FakeEntryPoint()] if group == "loram" else [])
    try:
        assert [(t.kind, t.name, t.plugin) for t in resolve("fake-dist")] == [("pruner", "misses-ratio", "fake-dist")]
    finally:
        plugins.pm.unregister(name="fake-dist")
    with pytest.raises(LoramError, match=r"--loram-plugin nope: no such plugin.*\(known: .*magnitude"):
        resolve("nope")


# --- the pytest plugin ---------------------------------------------------------------------------------

BROKEN_CONFTEST = '''
from loram_core import hookimpl, plugins
from loram_test_helpers import BrokenCouplingPruner, MissesRatioPruner


class Broken:
    @hookimpl
    def register_pruners(self, register):
        register(BrokenCouplingPruner())
        register(MissesRatioPruner())


def pytest_configure(config):
    plugins.load_plugins()
    plugins.pm.register(Broken(), name="broken")


def pytest_unconfigure(config):
    plugins.pm.unregister(name="broken")
'''


def test_suite_run_by_pytest_fails_the_broken_pruners_on_the_broken_rules(pytester, monkeypatch):
    monkeypatch.syspath_prepend(str(TESTS))  # where loram_test_helpers is
    pytester.makeconftest(BROKEN_CONFTEST)
    result = pytester.runpytest("-p", "loram_core.testing.pytest_plugin", "--loram-plugin", "broken-coupling",
                                "--loram-plugin", "misses-ratio", "--loram-family", "llama-gqa", "-p", "no:cacheprovider",
                                "--tb=short")
    cases = pruner_cases(BrokenCouplingPruner())
    kv_cases = [c for c in cases if c.options.get("attention_units") != "query_heads"]
    # broken coupling: validates, runs and recovery fail in every case that slices k_proj (a query-head plan
    # never does); the ratio is off in every case of the other; one visible skip per kind named by no
    # --loram-plugin (quantizer, aligner, recoverer, evaluator)
    failed = 3 * len(kv_cases) + len(cases)
    result.assert_outcomes(failed=failed, passed=2 * len(PRUNER_CHECKS) * len(cases) - failed, skipped=4)
    result.stdout.fnmatch_lines([
        "*_ test_pruner[[]broken-coupling-llama-gqa-ratio=0.5-validates[]] _*",
        "E   *ConformanceError: pruner 'broken-coupling' on tiny llama-gqa (ratio=0.5): the core rejects the plan: "
        "model.layers.4.self_attn.k_proj: breaks the coupling of model.layers.4.self_attn*",
        "*_ test_pruner[[]misses-ratio-llama-gqa-ratio=0.5-ratio[]] _*",
        "E   *ConformanceError: pruner 'misses-ratio' on tiny llama-gqa (ratio=0.5): "
        "model.layers.4.self_attn: removes 1 of 4 attention units; ratio 0.5 asks for 2*",
    ])


def test_pytest_plugin_rejects_an_unknown_name(pytester):
    result = pytester.runpytest("--loram-plugin", "nope", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--loram-plugin nope: no such plugin*"])


def test_loram_register_fixture_registers_for_one_test(pytester):
    pytester.makepyfile('''
        from loram_core import registry
        from loram_core.builtin import magnitude

        class Alias:
            from loram_core import hookimpl

            @hookimpl
            def register_pruners(self, register):
                register(magnitude.MagnitudePruner(name="mag2"))

        def test_registered(loram_register):
            loram_register(Alias(), "alias")
            assert registry.get("pruner", "mag2").name == "mag2"

        def test_gone_afterwards():
            assert "mag2" not in registry.collect("pruner")
    ''')
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=2)


def test_loram_register_fixture_forgets_a_broken_plugin_after_its_test(pytester):
    pytester.makepyfile('''
        from loram_core import plugins, registry

        class Broken:
            from loram_core import hookimpl

            @hookimpl
            def register_pruners(self, register):
                raise RuntimeError("boom")

        def test_broken_is_reported(loram_register):
            loram_register(Broken(), "broken-one")
            registry.collect("pruner")
            assert "boom" in plugins.broken["broken-one"]

        def test_not_reported_afterwards():
            assert "broken-one" not in plugins.broken
    ''')
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=2)


def test_plugin_loads_with_dash_p_when_autoload_is_off(pytester, monkeypatch):
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    result = pytester.runpytest_subprocess("-p", "loram_core.testing.pytest_plugin", "--loram-plugin", "none",
                                           "--loram-family", "llama-gqa", "--collect-only", "-q", "-p", "no:cacheprovider")
    # the pruner's rules, and one skipped placeholder each for quantizers, aligners, recoverers and evaluators
    result.stdout.fnmatch_lines(["*test_pruner[[]none-llama-gqa-defaults-validates[]]", "*test_recoverer[[]none[]]",
                                 "*test_evaluator[[]none[]]", f"{len(PRUNER_CHECKS) + 4} tests collected*"])


@attrs.frozen
class NoGPT2Pruner:
    """Declares a family it cannot prune: the suite records the refusal, the prune stage refuses in one line."""

    name: str = "no-gpt2"
    config_cls: type = StructuredConfig
    pattern: str = "structured"

    def unsupported(self, model_config):
        return "it reads weights as (out, in)" if model_config.model_type == "gpt2" else None

    def plan(self, model, config, context):
        return attrs.evolve(MagnitudePruner().plan(model, config, context), pruner=PrunerInfo(self.name, "0"))


def test_a_pruner_that_declares_a_family_unsupported_is_refused_for_it_and_checked_on_the_rest(tmp_path):
    passed = check_pruner(NoGPT2Pruner(), families=[family("llama-gqa"), family("gpt2-mha")],
                          cases=pruner_cases(NoGPT2Pruner())[:1], workdir=tmp_path)
    refused = [line for line in passed if "refused" in line]
    assert refused == ["gpt2-mha [ratio=0.5] refused: pruner 'no-gpt2' does not prune gpt2 models: "
                       "it reads weights as (out, in)"]
    assert len(passed) == 1 + len(PRUNER_CHECKS)


@pytest.mark.parametrize("name", ["magnitude", "random"])
def test_core_pruners_conform_on_a_mixture_of_experts(name, tmp_path):
    """A third party's MoE family (through its tiny_config) is checked the same way: expert entries are
    validated, materialized and shape-checked; LoRA on experts is tests/lifecycle/test_moe.py's."""
    from loram_core.testing.conformance.harness import TinyFamily

    pruner = registry.get("pruner", name)
    moe = TinyFamily("mixtral-moe", {"model_type": "mixtral"})
    passed = check_pruner(pruner, families=[moe], workdir=tmp_path)
    assert len(passed) == len([c for c in pruner_cases(pruner) if case_fits(moe.config(), c)]) * len(PRUNER_CHECKS)
