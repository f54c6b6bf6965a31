"""Plan <-> ``plan.json`` + ``plan.safetensors``. No pickle: indices as int64, masks bit-packed as uint8."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import attrs
import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from loram_core.atomic import write_bytes
from loram_core.errors import PlanError
from loram_core.plan.entries import MaskEntry, SliceEntry
from loram_core.plan.experts import ExpertEntry
from loram_core.plan.fingerprint import ModelFingerprint
from loram_core.plan.plan import SCHEMA_VERSION, PrunePlan, PrunerInfo

PLAN_JSON, PLAN_TENSORS = "plan.json", "plan.safetensors"
EXPERT_AXES = ("keep_experts", "keep_out", "keep_in")
_BITS = torch.tensor([128, 64, 32, 16, 8, 4, 2, 1], dtype=torch.uint8)


def pack_bits(mask: torch.Tensor) -> torch.Tensor:
    flat = mask.flatten().to(torch.uint8)
    flat = torch.cat([flat, flat.new_zeros(-flat.numel() % 8)])
    return (flat.view(-1, 8) * _BITS).sum(1).to(torch.uint8)


def unpack_bits(packed: torch.Tensor, shape) -> torch.Tensor:
    bits = (packed.view(-1, 1) & _BITS).ne(0).flatten()
    n = int(torch.tensor(shape).prod())
    if bits.numel() < n:
        raise PlanError(f"packed mask holds {bits.numel()} bits, shape {tuple(shape)} needs {n}")
    return bits[:n].view(*shape)


def plan_to_bytes(plan: PrunePlan) -> tuple[bytes, bytes]:
    tensors, entries = {}, {}
    for module, entry in plan.entries.items():
        if isinstance(entry, SliceEntry):
            meta = {"kind": "slice", "shape": list(entry.shape)}
            for axis in ("keep_out", "keep_in"):
                idx = getattr(entry, axis)
                if idx is not None:
                    # a copy: entries may share one index tensor (gate/up), and safetensors refuses shared storage
                    tensors[f"{module}.{axis}"] = idx.clone()
                    meta[axis] = len(idx)
        elif isinstance(entry, ExpertEntry):
            meta = {"kind": "experts", "shape": list(entry.shape)}
            for axis in EXPERT_AXES:
                idx = getattr(entry, axis)
                if idx is not None:
                    tensors[f"{module}.{axis}"] = idx.clone()
                    meta[axis] = list(idx.shape)
        else:
            meta = {"kind": "mask", "shape": list(entry.shape), "pattern": entry.pattern, "kept": entry.kept}
            tensors[f"{module}.mask"] = pack_bits(entry.mask)
        entries[module] = meta
    doc = {
        "schema": plan.schema,
        "base": attrs.asdict(plan.base),
        "pruner": {"name": plan.pruner.name, "version": plan.pruner.version, "params": dict(plan.pruner.params)},
        "pattern": plan.pattern,
        "entries": entries,
    }
    return (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode(), save_safetensors(tensors)


def plan_hash(plan: PrunePlan) -> str:
    doc, tensors = plan_to_bytes(plan)
    return hashlib.sha256(doc + tensors).hexdigest()[:16]


def save_plan(plan: PrunePlan, folder: str | Path) -> Path:
    """Write both files atomically; the JSON last, so a reader never sees a plan without its tensors."""
    folder = Path(folder)
    doc, tensors = plan_to_bytes(plan)
    write_bytes(folder / PLAN_TENSORS, tensors)
    write_bytes(folder / PLAN_JSON, doc)
    return folder


def plan_from_bytes(doc_bytes: bytes, tensor_bytes: bytes, source: str = "plan") -> PrunePlan:
    try:
        doc = json.loads(doc_bytes)
        tensors = load_safetensors(tensor_bytes)
    except Exception as exc:  # corrupt or truncated files: the user's to fix
        raise PlanError(f"{source}: unreadable plan ({type(exc).__name__}: {exc})") from None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA_VERSION:
        found = doc.get("schema") if isinstance(doc, dict) else None
        raise PlanError(f"{source}: plan schema {found!r}, this loram reads schema {SCHEMA_VERSION}")
    try:
        entries = {}
        for module, meta in doc["entries"].items():
            if meta["kind"] == "slice":
                keep = {a: tensors[f"{module}.{a}"] for a in ("keep_out", "keep_in") if a in meta}
                for axis, idx in keep.items():
                    if idx.dtype != torch.int64 or idx.numel() != meta[axis]:
                        raise PlanError(f"{source}: {module}.{axis} does not match plan.json")
                entries[module] = SliceEntry(shape=meta["shape"], **keep)
            elif meta["kind"] == "experts":
                keep = {a: tensors[f"{module}.{a}"] for a in EXPERT_AXES if a in meta}
                for axis, idx in keep.items():
                    if idx.dtype != torch.int64 or list(idx.shape) != meta[axis]:
                        raise PlanError(f"{source}: {module}.{axis} does not match plan.json")
                entries[module] = ExpertEntry(shape=meta["shape"], **keep)
            elif meta["kind"] == "mask":
                mask = unpack_bits(tensors[f"{module}.mask"], meta["shape"])
                entries[module] = MaskEntry(mask=mask, pattern=meta["pattern"])
            else:
                raise PlanError(f"{source}: {module} has unknown kind {meta['kind']!r}")
        return PrunePlan(
            base=ModelFingerprint(**doc["base"]),
            pruner=PrunerInfo(**doc["pruner"]),
            pattern=doc["pattern"],
            entries=entries,
            schema=doc["schema"],
        )
    except PlanError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, RuntimeError) as exc:
        raise PlanError(f"{source}: malformed plan ({type(exc).__name__}: {exc})") from None


def load_plan(folder: str | Path) -> PrunePlan:
    folder = Path(folder)
    for name in (PLAN_JSON, PLAN_TENSORS):
        if not (folder / name).is_file():
            raise PlanError(f"no plan at {folder}: {name} is missing")
    return plan_from_bytes((folder / PLAN_JSON).read_bytes(), (folder / PLAN_TENSORS).read_bytes(), str(folder))
