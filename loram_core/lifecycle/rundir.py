"""RUN_DIR layout (docs/architecture.md, "The lifecycle") and stage records: a stage is skipped when its output matches its inputs."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import attrs

from loram_core import distributed
from loram_core.atomic import read_json, write_json
from loram_core.errors import LoramError

RUN_SCHEMA = 1
LOCK = ".loram.lock"
# a folder holding one of these was made by loram: a run (run.json) or a bench cell it prepares (cell.json)
PREPARED_BY_LORAM = ("run.json", "cell.json")


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

    def read_run_json(self) -> dict[str, Any]:
        """The whole ``run.json`` (schema, settings, plugins); a missing or unreadable one is the user's error."""
        if not self.run_json.is_file():
            raise LoramError(f"{self.root} is not a run directory (no run.json); start with 'loram run' or 'loram prune'")
        try:
            doc = json.loads(self.run_json.read_text())
            if not isinstance(doc, dict) or not isinstance(doc.get("settings"), dict):
                raise ValueError("no settings table")
            return doc
        except (ValueError, UnicodeDecodeError) as exc:
            raise LoramError(f"{self.run_json}: unreadable ({exc}); remove it or choose another RUN_DIR") from None

    def read_settings(self) -> dict[str, Any]:
        """The settings ``run.json`` recorded, as the flat dict ``make_settings`` takes."""
        return dict(self.read_run_json()["settings"])

    def read_report(self) -> dict[str, Any]:
        """``report.json`` ({} before the first report); a corrupt one names the command that writes it again."""
        if not self.report.is_file():
            return {}
        return read_json(self.report, "the run report", f"'loram eval {self.root}' writes it again")

    def check_writable(self) -> None:
        """A run writes into a new or empty folder, or into a run directory: never into a folder of the
        user's (its ``plan/``, ``merged/``, ... would replace same-named folders of theirs)."""
        if str(self.root) in ("", "."):
            raise LoramError("the run directory must be a folder of its own (--out RUN_DIR), not the current folder")
        if self.root.exists() and not self.root.is_dir():
            raise LoramError(f"{self.root} is a file, not a run directory; choose another --out")
        prepared = any((self.root / marker).is_file() for marker in PREPARED_BY_LORAM)
        if self.root.is_dir() and not prepared and any(p.name != LOCK for p in self.root.iterdir()):
            raise LoramError(f"{self.root} exists and is not a loram run directory (no run.json); "
                             f"choose a new or empty folder for --out")

    def check_schema(self) -> None:
        """A run directory written by another run-dir schema is refused rather than half-understood."""
        if self.run_json.is_file():
            schema = self.read_run_json().get("schema")
            if schema != RUN_SCHEMA:
                raise LoramError(f"{self.root} was written by run-dir schema {schema!r}; this loram writes {RUN_SCHEMA}")

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
            for output in outputs:
                if Path(output).suffix == ".safetensors":
                    self.readable(output, stage)  # a damaged output is never taken as finished work
            return rec
        return None

    def readable(self, file: Path, stage: str) -> Path:
        """``file``, written by ``stage`` into this run, if it is whole; else one line naming how to rebuild it."""
        from loram_core.checkpoint import check_safetensors

        return check_safetensors(file, f"delete {Path(file).parent} and re-run 'loram {stage} {self.root}'")

    def forget(self, stage: str) -> None:
        """Drop a stage's record (its inputs changed upstream): the stage runs again when next asked for."""
        if distributed.is_main_process():
            (self.stages / f"{stage}.json").unlink(missing_ok=True)

    @contextlib.contextmanager
    def lock(self):
        """Hold the run directory for this process: a second loram on it stops at once, naming the holder.

        An advisory ``flock`` on ``.loram.lock``: the kernel releases it when its process dies (kill -9
        included), so a stale lock is never left behind for a later run to clear. Under ``accelerate
        launch`` only the main process locks; the others follow it.
        """
        if not distributed.is_main_process():
            yield
            return
        import fcntl
        import socket

        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / LOCK
        with open(path, "a+") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                f.seek(0)
                holder = f.read().strip() or "another process"
                raise LoramError(f"{self.root} is in use by {holder}; wait for it to finish or choose another "
                                 f"--out") from None
            f.seek(0)
            f.truncate()
            f.write(f"loram pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
            f.flush()
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def annotate(self, stage: str, extra: dict[str, Any]) -> None:
        """Add what the runner measured around a finished stage (its peak memory) to the stage's record."""
        rec = self.record(stage)
        if rec is not None and distributed.is_main_process():
            write_json(self.stages / f"{stage}.json", {**rec, **extra})

    def finish(self, stage: str, key: str, result: dict[str, Any]) -> dict[str, Any]:
        rec = {"stage": stage, "key": key, **result}
        if distributed.is_main_process():  # the other processes of a collective stage return the same record
            write_json(self.stages / f"{stage}.json", rec)
        return rec


# Bumped when what a key hashes changes shape: every stage of an older run then runs again once, instead
# of special cases that keep old keys stable (2: every training field and the dtype are always hashed;
# 3: the data fields, as a table, replace the data name).
STAGE_KEY_VERSION = 3


def stage_key(*parts: Any) -> str:
    """A short hash of a stage's inputs: the settings it reads and its upstream stages' keys."""
    blob = json.dumps([STAGE_KEY_VERSION, *parts], sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]
