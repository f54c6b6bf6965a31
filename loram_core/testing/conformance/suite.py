"""The conformance suite as pytest tests: collected when ``--loram-plugin NAME`` is given (see ../pytest_plugin.py).

One test per rule, tiny model and case for pruners; one per contract for quantizers, aligners, recoverers and task evaluators.
Each pruner is run once per model and case; the rules share that outcome.
"""

from __future__ import annotations

import pytest

from loram_core.testing.conformance import PRUNER_CHECKS, check_pruner_outcome, pruner_cases, run_pruner
from loram_core.testing.conformance.cases import case_fits
from loram_core.testing.conformance.harness import PrunerRefused, family, installed_families
from loram_core.testing.conformance.evaluator_checks import check_evaluator
from loram_core.testing.conformance.stage_checks import check_aligner, check_quantizer, check_recoverer

pytestmark = pytest.mark.loram_conformance


def pytest_generate_tests(metafunc):
    from loram_core.testing.pytest_plugin import TARGETS

    targets = metafunc.config.stash.get(TARGETS, [])
    families = [family(name) for name in metafunc.config.getoption("loram_family")] or installed_families()
    kinds = {"pruner_case": "pruner", "quantizer": "quantizer", "aligner": "aligner", "recoverer": "recoverer",
             "evaluator": "evaluator"}
    for fixture, kind in kinds.items():
        if fixture not in metafunc.fixturenames:
            continue
        mine = [(t, options) for t, options in targets if t.kind == kind]
        if kind == "pruner":
            params = [(t, fam, case) for t, options in mine for fam in families
                      for case in pruner_cases(t.obj, options) if case_fits(fam.config(), case)]
            ids = [f"{t.name}-{fam.name}-{case.label}" for t, fam, case in params]
        else:
            params, ids = mine, [t.name for t, _ in mine]
        if not params:  # one visible skip, rather than pytest's "empty parameter set"
            params, ids = [pytest.param(None, marks=pytest.mark.skip(reason=f"--loram-plugin names no {kind}"))], ["none"]
        metafunc.parametrize(fixture, params, ids=ids)


@pytest.fixture(scope="session")
def _outcomes():
    return {}


@pytest.fixture
def pruner_outcome(pruner_case, _outcomes, tmp_path_factory):
    """One ``run_pruner`` per (pruner, model, case), shared by the rules below."""
    target, fam, case = pruner_case
    key = (target.plugin, target.name, fam.name, case.label)
    if key not in _outcomes:
        workdir = tmp_path_factory.mktemp("conformance")
        try:
            _outcomes[key] = (run_pruner(target.obj, fam, case.options, workdir), workdir)
        except PrunerRefused as refused:
            _outcomes[key] = (str(refused), workdir)
    if isinstance(_outcomes[key][0], str):
        pytest.skip(_outcomes[key][0])  # the pruner declares this family unsupported, in one line
    return _outcomes[key]


@pytest.mark.parametrize("check", PRUNER_CHECKS)
def test_pruner(pruner_outcome, check):
    outcome, workdir = pruner_outcome
    check_pruner_outcome(outcome, check, workdir)


def test_quantizer(quantizer, tmp_path):
    target, options = quantizer
    check_quantizer(target.obj, tmp_path, options)


def test_aligner(aligner, tmp_path):
    target, options = aligner
    check_aligner(target.obj, tmp_path, options)


def test_recoverer(recoverer, tmp_path):
    target, _ = recoverer
    check_recoverer(target.obj, tmp_path)


def test_evaluator(evaluator, tmp_path):
    target, _ = evaluator
    check_evaluator(target.obj, tmp_path)
