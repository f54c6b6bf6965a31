"""RUN_DIR layout (design §1) and stage records: a stage is skipped when its output matches its inputs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import attrs

from loram_core import distributed
from loram_core.atomic import write_json

RUN_SCHEMA = 1


@attrs.frozen
class RunDir:
    root: Path = attrs.field(converter=Path)

    plan = property(lambda self: self.root / "plan")
    pruned = property(lambda self: self.root / "pruned")
    adapter_pruned = property(lambda self: self.root / "adapter-pruned")
    adapter = property(lambda self: self.root / "adapter")
    merged = property(lambda self: self.root / "merged")
    checkpoints = property(lambda self: self.root / "checkpoints")
    stages = property(lambda self: self.root / "stages")
    report = property(lambda self: self.root / "report.json")
    run_json = property(lambda self: self.root / "run.json")

    def write_run_json(self, settings, plugins: dict[str, Any]) -> None:
        if not distributed.is_main_process():  # under accelerate launch only the main process writes
            return
        write_json(self.run_json, {"schema": RUN_SCHEMA, "settings": settings.to_json(), "plugins": plugins})

    def record(self, stage: str) -> dict[str, Any] | None:
        path = self.stages / f"{stage}.json"
        try:
            return json.loads(path.read_text())
        except (FileNotFoundError, ValueError):
            return None

    def done(self, stage: str, key: str, *outputs: Path) -> dict[str, Any] | None:
        """The stage's record if it finished with the same inputs and its outputs are all there."""
        rec = self.record(stage)
        if rec and rec.get("key") == key and all(Path(o).exists() for o in outputs):
            return rec
        return None

    def finish(self, stage: str, key: str, result: dict[str, Any]) -> dict[str, Any]:
        rec = {"stage": stage, "key": key, **result}
        if distributed.is_main_process():  # the other processes of a collective stage return the same record
            write_json(self.stages / f"{stage}.json", rec)
        return rec


def stage_key(*parts: Any) -> str:
    """A short hash of a stage's inputs: the settings it reads and its upstream stages' keys."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]
