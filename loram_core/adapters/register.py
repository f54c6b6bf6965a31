"""Registering adapters: a run's recovered adapter (called by the recover stage) or a PEFT folder from elsewhere."""

from __future__ import annotations

from pathlib import Path

from loram_core.adapters.record import CONFIG, SIDECAR, WEIGHTS, AdapterRecord, metrics_from_report, record_external, record_from_run
from loram_core.adapters.shapes import check_adapter_fits
from loram_core.adapters.store import AdapterStore
from loram_core.errors import LoramError, warn
from loram_core.lifecycle.rundir import file_hash
from loram_core.plan.fingerprint import ModelFingerprint


def register_run(run_dir: str | Path, *, name: str | None = None, report: dict | None = None,
                 base: ModelFingerprint | None = None, store: AdapterStore | None = None) -> AdapterRecord:
    """Record RUN_DIR/adapter. Registering the same RUN_DIR again updates its record (name kept) instead of
    adding a second one; ``name`` renames it. The default name is the run directory's, made unique."""
    store = store or AdapterStore()
    run_dir = Path(run_dir).resolve()
    record = store.register_path(record_from_run(run_dir, name or run_dir.name, report=report, base=base))
    if name and record.name != name:
        record = store.rename(record.name, name)
    return record


def register_run_quietly(run_dir: Path, **kwargs) -> AdapterRecord | None:
    """For the lifecycle: a registry problem is reported and the run goes on (its artifacts are complete)."""
    try:
        return register_run(run_dir, **kwargs)
    except LoramError as exc:
        warn(f"the adapter was not registered: {exc}")
        return None


def register_recovered(run, res) -> AdapterRecord | None:
    """Called by the recover stage (``run``: RunDir, ``res``: Resources). The report is not written yet, so the
    record starts with the metrics the stage records hold; ``refresh_run_metrics`` adds the rest."""
    from loram_core.lifecycle.report import build_report

    report = {k: v for k, v in build_report(run, res.settings, res.model_path).items() if k not in ("ppl", "eval")}
    base = ModelFingerprint.from_config(res.config, name_or_path=res.settings.model)
    record = register_run_quietly(run.root, report=report, base=base)
    if record is not None and res.progress:  # on a terminal; a pipe gets the report alone
        from rich.console import Console

        Console(stderr=True, log_path=False).log(f"registered adapter '{record.name}' ('loram adapters show {record.name}')")
    return record


def refresh_run_metrics(run_dir: str | Path, report: dict) -> int:
    """After a run writes report.json: attach its metrics to the record of the run's adapter, if registered."""
    weights = Path(run_dir).resolve() / "adapter" / WEIGHTS
    if not weights.is_file():
        return 0
    try:
        return AdapterStore().update_metrics(weights.parent, file_hash(weights), metrics_from_report(report))
    except LoramError as exc:
        warn(f"the adapter's metrics were not recorded: {exc}")
        return 0


def is_run_adapter(path: Path) -> Path | None:
    """The RUN_DIR when ``path`` is a run directory or a run's adapter/ folder."""
    path = path.resolve()
    if (path / "run.json").is_file() and (path / "adapter" / WEIGHTS).is_file():
        return path
    if path.name == "adapter" and (path / SIDECAR).is_file() and (path.parent / "run.json").is_file():
        return path.parent
    return None


def register_path(path: str | Path, *, name: str | None = None, model: str | None = None, data: str | None = None,
                  store: AdapterStore | None = None, rename: bool = False) -> AdapterRecord:
    """``loram adapters add``: a run directory (full provenance) or a PEFT LoRA folder trained elsewhere, whose
    shapes are checked against ``model`` (default: the adapter's ``base_model_name_or_path``). A run already
    registered under another name is renamed only with ``rename``."""
    import json

    from loram_core.models.loading import load_config

    store = store or AdapterStore()
    path = Path(path).expanduser()
    if not path.exists():
        raise LoramError(f"{path} does not exist")
    run_dir = is_run_adapter(path)
    if run_dir is not None:
        existing = store.find_path(run_dir / "adapter")
        if existing is not None and name and existing.name != name and not rename:
            raise LoramError(f"{run_dir} is already registered as '{existing.name}'; pass --rename to rename it "
                             f"to '{name}'")
        base = None
        if model is not None:
            base = ModelFingerprint.from_config(load_config(model), name_or_path=model)
            planned = record_from_run(run_dir, "check").base
            if not planned.matches(base):
                raise LoramError(f"{run_dir} was trained for {describe(planned)}, not for {describe(base)}")
        return register_run(run_dir, name=name, base=base, store=store)
    folder = path.resolve()
    if model is None:
        try:
            model = json.loads((folder / CONFIG).read_text()).get("base_model_name_or_path")
        except (OSError, ValueError):
            model = None
        if not model:
            raise LoramError(f"{folder}: name the original model with --model (adapter_config.json names none)")
    config = load_config(model)
    check_adapter_fits(folder, config)
    existing = store.find_path(folder)
    if existing is not None:
        raise LoramError(f"{folder} is already registered as '{existing.name}'")
    base = ModelFingerprint.from_config(config, name_or_path=str(model))
    default = folder.name if folder.name != "adapter" else folder.parent.name
    return store.add(record_external(folder, name or default, base, data=data), unique=name is None)


def describe(fp: ModelFingerprint) -> str:
    return (f"{fp.name_or_path or '?'} ({fp.architecture}, config {fp.config_hash}, "
            f"{fp.num_parameters:,} parameters)")

