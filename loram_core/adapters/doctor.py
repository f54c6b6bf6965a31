"""``loram adapters doctor``: is the registry file a sound SQLite database, and do its records' files exist?"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

import attrs

from loram_core.adapters.store import AdapterStore


@attrs.frozen
class Diagnosis:
    path: Path
    exists: bool
    integrity: str  # "ok", or what SQLite reported
    schema_version: int | None = None
    records: int | None = None
    missing: tuple[str, ...] = ()  # record names whose weights file is gone
    changed: tuple[str, ...] = ()  # record names whose weights differ from the registered hash

    @property
    def healthy(self) -> bool:
        return self.integrity == "ok"


def integrity(path: Path) -> str:
    try:
        conn = sqlite3.connect(path, timeout=30)
        try:
            rows = [r[0] for r in conn.execute("PRAGMA integrity_check").fetchall()]
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        return str(exc)
    return "ok" if rows == ["ok"] else "; ".join(rows[:5])


def diagnose(store: AdapterStore) -> Diagnosis:
    if not store.path.exists():
        return Diagnosis(store.path, exists=False, integrity="ok")
    found = integrity(store.path)
    if found != "ok":
        return Diagnosis(store.path, exists=True, integrity=found)
    records = store.list()
    status = {r.name: r.status() for r in records}
    return Diagnosis(
        store.path, exists=True, integrity="ok", schema_version=store.schema_version(), records=len(records),
        missing=tuple(n for n, s in status.items() if s == "missing"),
        changed=tuple(n for n, s in status.items() if s == "changed"),
    )


def move_aside(store: AdapterStore) -> Path:
    """Rename the broken file (and its WAL/shared-memory companions) to ``adapters.db.broken-<timestamp>``;
    the next use creates an empty registry. Nothing is re-registered: the records were in the broken file."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = store.path.with_name(f"{store.path.name}.broken-{stamp}")
    n = 2
    while target.exists():
        target = store.path.with_name(f"{store.path.name}.broken-{stamp}-{n}")
        n += 1
    for suffix in ("-wal", "-shm"):
        companion = Path(f"{store.path}{suffix}")
        if companion.exists():
            os.replace(companion, Path(f"{target}{suffix}"))
    os.replace(store.path, target)
    store.schema_version()  # creates and migrates the fresh database now, so a failure shows here
    return target
