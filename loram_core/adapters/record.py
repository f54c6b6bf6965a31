"""``AdapterRecord``: one registered adapter and where it came from; built from a RUN_DIR or a PEFT folder."""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import attrs

from loram_core import __version__
from loram_core.errors import AdapterError
from loram_core.lifecycle.rundir import RunDir, file_hash
from loram_core.plan.fingerprint import ModelFingerprint

from loram_core.adapters.files import CONFIG, SIDECAR, WEIGHTS  # noqa: F401  (re-exported)
# Report blocks worth keeping with the adapter (the per-step losses stay in the run's report).
METRIC_KEYS = ("params", "train", "ppl", "eval", "align")


@attrs.frozen
class AdapterRecord:
    name: str
    source: str  # "run": recovered by a loram run; "external": trained elsewhere, shapes checked on add
    adapter_path: str
    content_hash: str  # of adapter_model.safetensors, as ``lifecycle.rundir.file_hash`` computes it
    base: ModelFingerprint
    lora: dict = attrs.field(factory=dict)
    plan_hash: str | None = None
    pruner: dict | None = None
    quantizer: dict | None = None
    aligner: dict | None = None
    recoverer: dict | None = None
    data: str | None = None
    metrics: dict = attrs.field(factory=dict)
    run_dir: str | None = None
    loram_version: str = __version__
    created_at: str = attrs.field(factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))

    @property
    def weights(self) -> Path:
        return Path(self.adapter_path) / WEIGHTS

    def status(self) -> str:
        """``ok``; ``missing`` (the weights file is gone); ``changed`` (its content differs from the record);
        ``diverged`` (its recorded perplexity on the original is not finite: the training blew up)."""
        if not self.weights.is_file():
            return "missing"
        if file_hash(self.weights) != self.content_hash:
            return "changed"
        ppl = (self.metrics.get("ppl") or {}).get("loram")
        return "diverged" if isinstance(ppl, float) and not math.isfinite(ppl) else "ok"

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


_JSON_COLUMNS = ("lora", "pruner", "quantizer", "aligner", "recoverer", "metrics")
COLUMNS = ("name", "created_at", "source", "adapter_path", "content_hash", "base_name_or_path", "base_architecture",
           "base_model_type", "base_config_hash", "base_num_parameters", "plan_hash", *_JSON_COLUMNS, "data",
           "run_dir", "loram_version")


def to_row(record: AdapterRecord) -> dict[str, Any]:
    row = {k: getattr(record, k) for k in COLUMNS if not k.startswith("base_")}
    for key in _JSON_COLUMNS:
        row[key] = json.dumps(row[key], sort_keys=True) if row[key] is not None else None
    b = record.base
    row.update(base_name_or_path=b.name_or_path, base_architecture=b.architecture, base_model_type=b.model_type,
               base_config_hash=b.config_hash, base_num_parameters=b.num_parameters)
    return row


def from_row(row) -> AdapterRecord:
    values = {k: row[k] for k in COLUMNS if not k.startswith("base_")}
    for key in _JSON_COLUMNS:
        values[key] = json.loads(values[key]) if values[key] is not None else None
    base = ModelFingerprint(architecture=row["base_architecture"], model_type=row["base_model_type"],
                            config_hash=row["base_config_hash"], num_parameters=row["base_num_parameters"],
                            name_or_path=row["base_name_or_path"])
    return AdapterRecord(base=base, **values)


def _read_json(path: Path, what: str) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise AdapterError(f"{path} is missing: {what}") from None
    except ValueError as exc:
        raise AdapterError(f"{path} is unreadable ({exc})") from None


def lora_summary(adapter_config: dict) -> dict[str, Any]:
    targets = adapter_config.get("target_modules")
    return {"r": adapter_config.get("r"), "alpha": adapter_config.get("lora_alpha"),
            "target_modules": sorted(targets) if isinstance(targets, list) else targets,
            "peft_version": adapter_config.get("peft_version")}


def metrics_from_report(report: dict | None) -> dict[str, Any]:
    return {k: report.get(k) for k in METRIC_KEYS if report and report.get(k) is not None}


def record_from_run(run_dir: str | Path, name: str, *, report: dict | None = None,
                    base: ModelFingerprint | None = None) -> AdapterRecord:
    """The record of a run's recovered adapter: provenance from run.json, adapter/loram.json, plan/plan.json
    and the report (``report``, else RUN_DIR/report.json when it exists)."""
    run = RunDir(Path(run_dir).resolve())
    if not (run.adapter / WEIGHTS).is_file():
        raise AdapterError(f"{run.root} has no recovered adapter ({run.adapter / WEIGHTS}); run 'loram recover {run.root}'")
    run_json = run.read_run_json()
    settings, plugins = run_json.get("settings", {}), run_json.get("plugins", {})
    sidecar = _read_json(run.adapter / SIDECAR, "the adapter's provenance sidecar")
    if base is None:  # the plan records the fingerprint of the model it was made for
        base = ModelFingerprint(**_read_json(run.plan / "plan.json", "the run's plan")["base"])
    if report is None:
        report = run.read_report() or None

    def plugin(kind: str, options_key: str | None = None) -> dict | None:
        used = plugins.get(kind)
        if not used:
            return None
        block = {"name": used["name"], "version": used.get("version")}
        if options_key:
            block["options"] = settings.get(options_key) or {}
        return block

    pruner = {**sidecar["pruner"]} if "pruner" in sidecar else plugin("pruner")
    return AdapterRecord(
        name=name,
        source="run",
        adapter_path=str(run.adapter),
        content_hash=file_hash(run.adapter / WEIGHTS),
        base=base,
        lora=lora_summary(_read_json(run.adapter / CONFIG, "the PEFT adapter config")),
        plan_hash=sidecar.get("plan_hash"),
        pruner=pruner,
        quantizer=plugin("quantizer", "quantizer_options"),
        aligner=plugin("aligner", "aligner_options"),
        recoverer=sidecar.get("recoverer") or plugin("recoverer"),
        data=settings.get("data"),
        metrics=metrics_from_report(report),
        run_dir=str(run.root),
        loram_version=sidecar.get("loram_version", __version__),
    )


def record_external(folder: str | Path, name: str, base: ModelFingerprint, *, data: str | None = None) -> AdapterRecord:
    """The record of a PEFT adapter trained elsewhere (its shapes must be checked against ``base`` first)."""
    folder = Path(folder).resolve()
    return AdapterRecord(
        name=name,
        source="external",
        adapter_path=str(folder),
        content_hash=file_hash(folder / WEIGHTS),
        base=base,
        lora=lora_summary(_read_json(folder / CONFIG, "the PEFT adapter config")),
        data=data,
    )
