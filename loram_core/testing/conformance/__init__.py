"""The conformance suite: the contracts a pruner, quantizer, aligner, recoverer or task evaluator must keep, runnable by any plugin.

The members each kind must have are its protocol in ``loram_core.protocols`` (checked first); the rules here
are what the core relies on beyond them.

From a plugin's own tests::

    from loram_core.testing.conformance import check_pruner

    def test_wanda_conforms(tmp_path):
        check_pruner(WandaPruner(), workdir=tmp_path)

or, with the pytest plugin this package ships (entry point ``pytest11``), one test per rule, model and case::

    pytest --loram-plugin wanda

Every check raises ``ConformanceError`` (an ``AssertionError``) naming the plugin, the tiny model and the rule.
"""

from __future__ import annotations

from pathlib import Path

from loram_core.testing.conformance.cases import PrunerCase, case_fits, pruner_cases
from loram_core.testing.conformance.failure import ConformanceError
from loram_core.testing.conformance.harness import FAMILIES, PrunerRefused, TinyFamily, run_pruner, scratch_dir
from loram_core.testing.conformance.pruner_checks import (
    check_decides_only,
    check_deterministic,
    check_plan_validates,
    check_pruned_model_runs,
    check_ratio,
    check_round_trip,
)
from loram_core.testing.conformance.recovery_checks import check_survives_recovery
from loram_core.testing.conformance.stage_checks import check_aligner as _check_aligner
from loram_core.testing.conformance.stage_checks import check_quantizer as _check_quantizer
from loram_core.testing.conformance.stage_checks import check_recoverer as _check_recoverer
from loram_core.testing.conformance.targets import resolve

PRUNER_CHECKS = ("validates", "runs", "ratio", "deterministic", "round_trip", "recovery", "decides_only")


def check_pruner_outcome(outcome, check: str, workdir: Path) -> None:
    """One named rule on one ``run_pruner`` outcome (the pytest plugin runs them as separate tests)."""
    if check == "validates":
        check_plan_validates(outcome)
    elif check == "runs":
        check_plan_validates(outcome)
        check_pruned_model_runs(outcome, workdir)
    elif check == "ratio":
        check_ratio(outcome)
    elif check == "deterministic":
        check_deterministic(outcome, workdir)
    elif check == "round_trip":
        check_round_trip(outcome, workdir)
    elif check == "recovery":
        check_plan_validates(outcome)
        check_survives_recovery(outcome, check_pruned_model_runs(outcome, workdir))
    elif check == "decides_only":
        check_decides_only(outcome)
    else:
        raise ValueError(f"unknown pruner check '{check}' (known: {', '.join(PRUNER_CHECKS)})")


def check_pruner(pruner, *, families=FAMILIES, cases=None, options=None, workdir=None) -> list[str]:
    """Every pruner rule on every tiny family and case; returns what passed, raises ``ConformanceError`` on a break.

    ``options`` are added to every case (e.g. a required config field); ``cases`` replaces ``pruner_cases``.
    """
    passed = []
    with scratch_dir(workdir) as work:
        for fam in families:
            for case in cases or pruner_cases(pruner, options):
                if not case_fits(fam.config(), case):
                    continue
                try:
                    outcome = run_pruner(pruner, fam, case.options, work)
                except PrunerRefused as refused:
                    passed.append(f"{fam.name} [{case.label}] refused: {refused}")
                    continue
                for check in ("validates", "ratio", "deterministic", "round_trip", "decides_only"):
                    check_pruner_outcome(outcome, check, work)
                    passed.append(f"{fam.name} [{case.label}] {check}")
                check_survives_recovery(outcome, check_pruned_model_runs(outcome, work))  # one pruned model for both
                passed += [f"{fam.name} [{case.label}] runs", f"{fam.name} [{case.label}] recovery"]
    return passed


def check_quantizer(quantizer, *, options=None, workdir=None) -> None:
    with scratch_dir(workdir) as work:
        _check_quantizer(quantizer, work, options)


def check_aligner(aligner, *, options=None, workdir=None) -> None:
    with scratch_dir(workdir) as work:
        _check_aligner(aligner, work, options)


def check_recoverer(recoverer, *, workdir=None) -> None:
    with scratch_dir(workdir) as work:
        _check_recoverer(recoverer, work)


__all__ = [
    "FAMILIES",
    "PRUNER_CHECKS",
    "ConformanceError",
    "PrunerCase",
    "TinyFamily",
    "check_aligner",
    "check_pruner",
    "check_pruner_outcome",
    "check_quantizer",
    "check_recoverer",
    "pruner_cases",
    "resolve",
    "run_pruner",
]
