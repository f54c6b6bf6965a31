"""``loram adapters export``: a self-contained PEFT folder (weights, config, provenance, model card)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from loram_core.adapters.files import CONFIG, MODEL_CARD, SIDECAR, WEIGHTS
from loram_core.adapters.record import AdapterRecord
from loram_core.atomic import atomic_dir, write_json
from loram_core.errors import AdapterError, LoramError
from loram_core.lifecycle.rundir import file_hash


def export_adapter(record: AdapterRecord, out: str | Path, *, base_model: str | None = None,
                   force: bool = False) -> Path:
    """Copy the registered adapter to ``out``; ``base_model`` rewrites ``base_model_name_or_path`` (e.g. to a hub id
    for publishing). Refuses an adapter whose weights changed since registration: its provenance would be wrong."""
    out = Path(out).expanduser()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        if not force:
            raise LoramError(f"{out} exists and is not empty; choose another folder or pass --force to replace it")
        if not is_export(out):  # --force replaces an earlier export, never anything else
            raise LoramError(f"{out} is not a folder 'loram adapters export' wrote (it holds other files); "
                             f"--force replaces only an earlier export: choose another folder")
    status = record.status()
    if status != "ok":
        raise AdapterError(f"adapter '{record.name}': weights at {record.weights} are {status} since registration; "
                           f"re-register it with 'loram adapters add' before exporting")
    source = Path(record.adapter_path)
    config = json.loads((source / CONFIG).read_text())
    if base_model:
        config["base_model_name_or_path"] = base_model
    with atomic_dir(out) as tmp:
        shutil.copyfile(record.weights, tmp / WEIGHTS)
        if file_hash(tmp / WEIGHTS) != record.content_hash:  # changed between the check and the copy
            raise AdapterError(f"adapter '{record.name}': {record.weights} changed while it was exported")
        write_json(tmp / CONFIG, config)
        write_json(tmp / SIDECAR, {"registry": record.to_json(), **_sidecar(source)})
        (tmp / MODEL_CARD).write_text(model_card(record, config["base_model_name_or_path"]))
    return out


EXPORT_FILES = frozenset({WEIGHTS, CONFIG, SIDECAR, MODEL_CARD})


def is_export(folder: Path) -> bool:
    """An earlier export: only the files an export writes, and a sidecar holding the registry's record."""
    names = {p.name for p in folder.iterdir()}
    if not names <= EXPORT_FILES or SIDECAR not in names or any((folder / n).is_dir() for n in names):
        return False
    try:
        return isinstance(json.loads((folder / SIDECAR).read_text()).get("registry"), dict)
    except (ValueError, UnicodeDecodeError, AttributeError):
        return False


def _sidecar(source: Path) -> dict:
    path = source / SIDECAR  # a run's recovery sidecar, kept verbatim next to the registry's record
    return {"recovery": json.loads(path.read_text())} if path.is_file() else {}


def model_card(record: AdapterRecord, base_model: str) -> str:
    def plugin(block: dict | None) -> str:
        if not block:
            return "none"
        params = block.get("params") or block.get("options")
        extra = f" ({', '.join(f'{k}={v}' for k, v in sorted(params.items()) if v is not None)})" if params else ""
        return f"{block['name']} {block.get('version') or ''}".strip() + extra

    lora = record.lora or {}
    rows = [
        ("original model", f"`{record.base.name_or_path}` ({record.base.architecture}, "
                           f"{record.base.num_parameters:,} parameters, config hash `{record.base.config_hash}`)"),
        ("source", "recovered by a loram run" if record.source == "run" else "trained elsewhere, shapes checked by loram"),
        ("pruner", plugin(record.pruner)),
        ("quantizer", plugin(record.quantizer)),
        ("aligner", plugin(record.aligner)),
        ("recoverer", plugin(record.recoverer)),
        ("plan hash", f"`{record.plan_hash}`" if record.plan_hash else "none"),
        ("training data", record.data or "unknown"),
        ("LoRA", f"r={lora.get('r')}, alpha={lora.get('alpha')}, targets {', '.join(lora.get('target_modules') or [])}"),
        ("weights hash", f"`{record.content_hash}`"),
        ("loram version", record.loram_version),
    ]
    ppl = (record.metrics or {}).get("ppl") or {}
    ppl_rows = [(k, f"{v:.2f}") for k, v in ppl.items() if isinstance(v, (int, float))]
    eval_block = (record.metrics or {}).get("eval") or {}
    lines = [
        "---",
        "library_name: peft",
        f"base_model: {base_model}",
        "tags:",
        "- lora",
        "- loram",
        "---",
        "",
        f"# {record.name}",
        "",
        "A LoRA adapter for the original (unpruned) model. With LoRAM it was trained on a pruned copy of that model"
        if record.source == "run" else "A LoRA adapter registered with loram.",
        "and recovered to the original shapes (train small, infer large)." if record.source == "run" else "",
        "",
        "| provenance | |",
        "|---|---|",
        *(f"| {k} | {v} |" for k, v in rows),
    ]
    if ppl_rows:
        lines += ["", f"Perplexity on {eval_block.get('dataset')} {eval_block.get('split')} "
                      f"({eval_block.get('tokens')} tokens), from the run report:", "", "| model | ppl |", "|---|---|",
                  *(f"| {k} | {v} |" for k, v in ppl_rows)]
    lines += [
        "",
        "## Use",
        "",
        "```python",
        "from peft import PeftModel",
        "from transformers import AutoModelForCausalLM",
        "",
        f'model = AutoModelForCausalLM.from_pretrained("{base_model}")',
        'model = PeftModel.from_pretrained(model, "PATH/TO/THIS/FOLDER")',
        "```",
        "",
        "`loram.json` holds the full provenance record.",
        "",
    ]
    return "\n".join(lines)
