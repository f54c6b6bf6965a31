"""``run_lifecycle``: the stages of the table, in order, on one run directory: the lifecycle's Python API.

The CLI only parses flags into ``RunSettings`` and calls this; tests and notebooks call it (or
``loram_core.run``) directly. Settings are validated before anything is written, and the data spec is read
before the first stage, so a typo never leaves a half-made run directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from loram_core import distributed, registry
from loram_core.errors import LoramError
from loram_core.lifecycle import stages as table
from loram_core.lifecycle.resources import Resources
from loram_core.lifecycle.rundir import RunDir
from loram_core.lifecycle.settings import RunSettings
from loram_core.estimate.stages import stage_estimates
from loram_core.memory import StagePeak, release_freed_memory


def plugins_used(settings: RunSettings) -> dict:
    """``{kind: {name, version, plugin}}`` of the plugins the run names; an unknown name is an error now."""
    used = {}
    pruner = None if settings.pruned else settings.pruner  # a published folder was pruned by its publisher
    for kind, name in (("pruner", pruner), ("quantizer", settings.quantizer),
                       ("aligner", settings.aligner), ("recoverer", settings.recoverer)):
        if name:
            found = registry.collect(kind)
            if name not in found:
                registry.get(kind, name)  # raises UnknownPluginError with installed names
            used[kind] = {"name": name, "version": found[name].version, "plugin": found[name].plugin}
    return used


def check_plugin_options(settings: RunSettings, plugins: dict) -> None:
    """Each plugin's options are type-checked like flags now (``--pruner-opt attention=maybe``), before the run
    directory is touched, not when its stage starts."""
    from loram_core.configs import build_config
    from loram_core.lifecycle.prune import pruner_config

    for kind, used in plugins.items():
        plugin = registry.get(kind, used["name"])
        if kind == "pruner":
            pruner_config(plugin, settings, say=lambda _message: None)  # the prune stage says it
        elif kind in ("quantizer", "aligner"):
            build_config(plugin.config_cls, dict(getattr(settings, f"{kind}_options")), owner=f"{kind} '{used['name']}'")


def _changed_settings(run: RunDir, settings: RunSettings):
    """``changed(names) -> {name: (recorded, now)}`` against ``run.json`` (nothing changed in a new run)."""
    before = run.read_settings() if run.run_json.is_file() else {}
    now = settings.to_json()
    return lambda names: {k: (before[k], now[k]) for k in names if k in before and before[k] != now[k]}


def _describe(changes: dict) -> str:
    return ", ".join(f"{k} {old!r} -> {new!r}" for k, (old, new) in changes.items())


def check_upstream_unchanged(run: RunDir, settings: RunSettings, stages: Iterable[str]) -> None:
    """A stage command may change the settings of the stages it runs (they run again, and the later ones
    when asked for), never one a finished earlier stage read: that stage would not run again, and run.json
    would then disagree with its artifacts."""
    changed = _changed_settings(run, settings)
    for stage in table.upstream_of(stages):
        record = run.record(stage.name)
        changes = changed(stage.settings_read(record)) if record is not None else {}
        if changes:
            raise LoramError(f"{run.root}: {_describe(changes)} would change what the finished {stage.name} stage "
                             f"read; run 'loram {stage.name} {run.root}' with it (and the later stages), or start a "
                             f"new run")


def check_overwrite(run: RunDir, settings: RunSettings, stages: Iterable[str], overwrite: bool) -> None:
    """Settings that would make a finished stage run again replace what it wrote (its adapter, its registry
    record): only with ``overwrite`` (``--overwrite``, as Hugging Face's ``overwrite_output_dir``)."""
    if overwrite:
        return
    changed = _changed_settings(run, settings)
    for stage in table.stages_named(stages):
        record = run.record(stage.name)
        # every setting the stage's key hashes: a changed one runs it again, replacing what it wrote
        changes = changed(stage.reads) if record is not None and stage.enabled(settings) and stage.replaces else {}
        if changes:
            raise LoramError(f"{run.root} holds a finished {stage.name} stage made with other settings "
                             f"({_describe(changes)}); pass --overwrite to run it again and replace what it wrote, "
                             f"or choose another --out")


def check_rank_fits(settings: RunSettings, config) -> None:
    """A LoRA rank above the narrowest targeted layer's width is no low-rank adapter (and a huge one); and
    PEFT's LoRA on parameters (``target_parameters``) has no dropout."""
    if settings.target_parameters and settings.dropout:
        raise LoramError(f"--target-parameters: PEFT's LoRA on parameters has no dropout; pass --dropout 0 "
                         f"(got {settings.dropout})")
    from loram_core.plan.fingerprint import linear_shapes
    from loram_core.train.targets import target_leaves

    targets = target_leaves(config, settings.target_modules)
    widths = {name: min(shape) for name, shape in linear_shapes(config).items() if name.rsplit(".", 1)[-1] in targets}
    if widths:
        name = min(widths, key=widths.get)
        if settings.rank > widths[name]:
            raise LoramError(f"--rank {settings.rank} is above the width of {name} ({widths[name]}): a LoRA rank "
                             f"must be at most the smallest dimension of the layers it adapts")


def check_eval_window(settings: RunSettings, res: Resources) -> None:
    """Perplexity needs one --eval-seq-len window of test text (or one held-out example): found now, not after
    training."""
    if res.examples is not None:
        if settings.stream_eval == "on":  # known now, not after training
            raise LoramError("--stream-eval on scores text windows; records (responses) are scored on the loaded model")
        if not (res.examples.test or res.examples.validation):
            raise LoramError(f"data {settings.data} has no test or validation example to evaluate on")
        return
    available = res.test_tokens.numel()
    if available < settings.eval_seq_len:
        raise LoramError(f"the test split of {settings.data} gives {available:,} evaluation tokens (at most "
                         f"--eval-tokens {settings.eval_tokens:,}), fewer than one --eval-seq-len window of "
                         f"{settings.eval_seq_len:,}; lower --eval-seq-len or give more text")


def run_lifecycle(run_dir: str | Path, settings: RunSettings, stages: Iterable[str] | None = None, *,
                  progress: bool = True, log=None, overwrite: bool = False, preflight: bool = True) -> dict | None:
    """Run ``stages`` (names of the stage table) on ``run_dir``; return the run report (None on the
    non-main processes of ``accelerate launch``). ``log(text)`` hears each stage's start; ``overwrite``
    lets changed settings replace finished stages' artifacts; ``preflight`` stops a run whose training
    would not fit in this machine's memory, or whose shards would not fit on its disk, by the estimates, before
    anything is written."""
    run = RunDir(run_dir)
    run.check_writable()
    run.check_schema()
    stages = tuple(stages) if stages is not None else tuple(row.name for row in table.STAGES)
    plugins = plugins_used(settings)  # an unknown plugin name is the more useful message: first
    check_plugin_options(settings, plugins)
    if settings.tasks and "tasks" in stages:  # an unknown task is known now, not after training
        from loram_core.task_eval import assign

        assign(settings.tasks, settings.include_path)
    check_upstream_unchanged(run, settings, stages)
    check_overwrite(run, settings, stages, overwrite)
    res = Resources(settings, progress=progress)
    res.preflight(needs_data=any(stage.needs_data for stage in table.stages_named(stages)))
    if "train" in stages:
        check_rank_fits(settings, res.config)
    if preflight:  # what will run (no record yet, or replaced with --overwrite): will it fit in memory and on disk?
        from loram_core.estimate.preflight import check_disk_fits, check_train_fits

        will_run = {name for name in stages if run.record(name) is None or overwrite}
        if "train" in will_run:
            check_train_fits(settings, res.config)
        check_disk_fits(settings, res.config, res.model_path, run.root, will_run)
    if "eval" in stages:
        check_eval_window(settings, res)
    with run.lock():
        return _run_stages(run, res, plugins, stages, log)


def _run_stages(run: RunDir, res: Resources, plugins: dict, stages: tuple[str, ...], log) -> dict | None:
    from loram_core.adapters.register import refresh_run_metrics
    from loram_core.lifecycle.report import build_report, write_report

    settings = res.settings
    if not run.run_json.is_file():  # a new run: its settings are known from the start
        run.write_run_json(settings, plugins)
    estimates = None  # computed once, when the first stage has run
    for stage in table.stages_named(stages):
        if not stage.enabled(settings):
            continue
        if log is not None:
            log(stage.name)
        before = (run.record(stage.name) or {}).get("key")
        # the main process writes; every process takes part in a collective stage
        release_freed_memory()  # what the stage before freed is not this one's baseline
        with StagePeak() as peak:
            distributed.run_stage(stage.load(), run, res, collective=stage.collective, device=settings.device)
        if (run.record(stage.name) or {}).get("key") != before:  # it ran again: later records are stale
            # next to the measured peak, what loram estimate's model said of it (from the config alone)
            if estimates is None:
                estimates = stage_estimates(settings, res.config, res.model_path)
            run.annotate(stage.name, {"measured": {**peak.result, "estimate_mb": _mib(estimates.get(stage.name))}})
            names = [row.name for row in table.STAGES]
            for later in table.STAGES[names.index(stage.name) + 1:]:
                if later.name not in stages:
                    run.forget(later.name)
    # an override is recorded once the stages it feeds have run: a failed one is not left behind in run.json
    run.write_run_json(settings, plugins)
    if not distributed.is_main_process():
        return None
    report = build_report(run, settings, res.model_path)
    write_report(run, report)
    refresh_run_metrics(run.root, report)  # the registry keeps the report's numbers
    return report


def _mib(n: int | None) -> float | None:
    return None if n is None else round(n / 2**20, 1)
