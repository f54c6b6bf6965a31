"""The publisher workflow: ``loram publish RUN_DIR OUT`` ships the first half of a run (plan + pruned, possibly
aligned, weights + a model card); ``loram run --pruned OUT`` starts from it instead of pruning again.

A published folder names the base model it was made from by a fingerprint of the config (shapes) and a digest
of the weights (a few rows of every tensor: cheap at 70B, and any fine-tune or another checkpoint of the same
architecture changes it). A run refuses an original that does not match: the plan's indices and the pruned
weights only mean something against the weights they were cut from.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import attrs

from loram_core.atomic import atomic_dir, write_bytes, write_json
from loram_core.checkpoint import CheckpointReader, _open
from loram_core.errors import LoramError
from loram_core.lifecycle.pruned_folder import META, read_meta
from loram_core.lifecycle.rundir import RunDir, stage_key
from loram_core.plan import ModelFingerprint

PUBLISHED = "loram_published.json"
PUBLISH_SCHEMA = 1
# What a prune record carries over into a run that starts from the published folder.
_PRUNE_KEYS = ("pruner", "pattern", "plan_hash", "modules", "params_original", "params_pruned", "param_bytes_original")


class FingerprintError(LoramError):
    """A published pruned model used with another base model than the one it was made from."""


def weights_digest(model_path: str) -> str:
    """sha256 over every tensor's name, shape, dtype and its first, middle and last rows (raw bytes)."""
    import torch

    reader = CheckpointReader.open(model_path)
    h = hashlib.sha256()
    with contextlib.ExitStack() as stack:  # each shard opened once
        handles = {file: stack.enter_context(_open(file, reader.remedy)) for file in set(reader.files.values())}
        for name in sorted(reader.files):
            part = handles[reader.files[name]].get_slice(name)
            shape = list(part.get_shape())
            h.update(json.dumps([name, shape, part.get_dtype()]).encode())
            rows = sorted({0, shape[0] // 2, shape[0] - 1}) if shape and shape[0] > 0 else []
            for r in rows:
                h.update(part[r:r + 1].contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:32]


def base_fingerprint(config, model_path: str, name: str) -> dict[str, Any]:
    return {**attrs.asdict(ModelFingerprint.from_config(config, name_or_path=name)),
            "weights_digest": weights_digest(model_path)}


def publish_run(run_dir: Path, out: Path, config, model_path: str) -> dict[str, Any]:
    """Write OUT: plan/, pruned/, loram_published.json and README.md (model card). OUT is replaced whole."""
    run = RunDir(run_dir)
    prune = run.record("prune")
    if not prune or not (run.plan / "plan.json").is_file() or not (run.pruned / META).is_file():
        raise LoramError(f"{run_dir} has no finished prune stage to publish; run 'loram prune {run_dir}' first")
    out = Path(out)
    if out.exists() and not (out / PUBLISHED).is_file() and any(out.iterdir()):
        raise LoramError(f"{out} exists and is not a published loram folder; choose an empty or new folder")
    settings = run.read_settings()
    report = run.read_report()
    align = run.record("align") or (prune.get("published") or {}).get("align")
    card = {
        "schema": PUBLISH_SCHEMA,
        "base": base_fingerprint(config, model_path, settings["model"]),
        "prune": {k: prune.get(k) for k in _PRUNE_KEYS},
        "ratio": ((prune.get("pruner") or {}).get("params") or {}).get("ratio"),
        "align": align and {k: align.get(k) for k in ("aligner", "dataset", "steps", "tokens", "ppl_before", "ppl_after")},
        "ppl": {k: (report.get("ppl") or {}).get(k) for k in ("original", "pruned")},
        "eval": report.get("eval"),
        "data": settings.get("data"),
    }
    with atomic_dir(out) as tmp:
        shutil.copytree(run.plan, tmp / "plan")
        shutil.copytree(run.pruned, tmp / "pruned")
        write_bytes(tmp / "README.md", model_card(card).encode())
        write_json(tmp / PUBLISHED, card)  # written last: its presence means the folder is whole
    return card


def read_published(folder: Path) -> dict[str, Any]:
    folder = Path(folder)
    path = folder / PUBLISHED
    if not path.is_file():
        raise LoramError(f"{folder} is not a published pruned model (no {PUBLISHED}); make one with 'loram publish'")
    try:
        card = json.loads(path.read_text())
        card["base"]["weights_digest"], card["prune"]["plan_hash"]  # noqa: B018 - the keys this reads later
    except (ValueError, KeyError, TypeError) as exc:
        raise LoramError(f"{path} is unreadable ({exc.__class__.__name__}: {exc})") from None
    if card.get("schema") != PUBLISH_SCHEMA:
        raise LoramError(f"{path} has schema {card.get('schema')!r}; this loram reads {PUBLISH_SCHEMA}")
    for part in ("plan/plan.json", f"pruned/{META}"):
        if not (folder / part).is_file():
            raise LoramError(f"{folder} is incomplete: {part} is missing; publish it again")
    return card


def check_base(card: dict[str, Any], folder: Path, config, model_path: str, name: str) -> None:
    """Refuse an original whose config or weights differ from the base the folder was made from."""
    want = card["base"]
    have = base_fingerprint(config, model_path, name)
    for key, what in (("config_hash", "config"), ("num_parameters", "parameter count"), ("weights_digest", "weights")):
        if want.get(key) != have[key]:
            raise FingerprintError(
                f"published pruned model {folder} was made from '{want.get('name_or_path')}', and the original "
                f"given ('{name}') differs in its {what} ({key} {want.get(key)} != {have[key]}); pass the base "
                f"model it was made from")


def use_published(run: RunDir, settings, config, model_path: str) -> dict[str, Any]:
    """The prune stage of a run started with ``--pruned FOLDER``: check the base, copy plan/ and pruned/."""
    folder = Path(settings.pruned).expanduser()
    card = read_published(folder)
    key = stage_key("prune-published", card["base"]["weights_digest"], card["prune"]["plan_hash"],
                    card.get("align"), settings.model)
    done = run.done("prune", key, run.plan / "plan.json", run.pruned / META)
    if done:
        return done
    check_base(card, folder, config, model_path, settings.model)
    for part, target in (("plan", run.plan), ("pruned", run.pruned)):
        with atomic_dir(target) as tmp:
            shutil.rmtree(tmp)
            shutil.copytree(folder / part, tmp)
    aligned = read_meta(folder / "pruned").get("aligned_by") or {}
    published = {"path": str(folder.resolve()), "align": card.get("align"), "ppl": card.get("ppl"),
                 "aligned_key": aligned.get("key")}
    return run.finish("prune", key, {**card["prune"], "published": published})


def model_card(card: dict[str, Any]) -> str:
    base, prune, align, ppl = card["base"], card["prune"], card.get("align"), card.get("ppl") or {}
    pruner = prune.get("pruner") or {}
    fmt = lambda v: "—" if v is None else f"{v:,.2f}" if isinstance(v, float) else f"{v:,}"  # noqa: E731
    lines = [
        "---", "library_name: loram", "tags: [loram, pruned]", "---", "",
        f"# Pruned {base['name_or_path']} for LoRAM training", "",
        "A pruned (and possibly aligned) copy of the base model for training LoRA adapters small "
        "(\"train small, infer large\"). Train with `loram run --pruned THIS_FOLDER --model BASE ...`; the "
        "adapter is recovered to the base model's shapes and used with the dense base model.", "",
        "| | |", "|---|---|",
        f"| base model | `{base['name_or_path']}` ({base['architecture']}, {fmt(base['num_parameters'])} parameters) |",
        f"| base fingerprint | config `{base['config_hash']}`, weights `{base['weights_digest']}` |",
        f"| pruner | `{pruner.get('name')}` {pruner.get('version') or ''}, ratio {card.get('ratio')}, pattern "
        f"{prune.get('pattern')} |",
        f"| parameters | {fmt(prune.get('params_original'))} -> {fmt(prune.get('params_pruned'))} |",
    ]
    if align:
        lines.append(f"| alignment | `{align.get('aligner')}` on {align.get('dataset')}, {align.get('steps')} steps, "
                     f"{fmt(align.get('tokens'))} tokens |")
        lines.append(f"| alignment test perplexity | {fmt(align.get('ppl_before'))} before, "
                     f"{fmt(align.get('ppl_after'))} after |")
    else:
        lines.append("| alignment | none |")
    ev = card.get("eval") or {}
    lines.append(f"| perplexity on {ev.get('dataset') or card.get('data')} ({ev.get('split', 'test')}) | original "
                 f"{fmt(ppl.get('original'))}, pruned{' and aligned' if align else ''} {fmt(ppl.get('pruned'))} |")
    lines += ["", "Files: `plan/` (the prune plan: kept indices or masks), `pruned/` (pruned weights, safetensors, "
              "with the base config and tokenizer), `loram_published.json` (this card as data).", ""]
    return "\n".join(lines)
