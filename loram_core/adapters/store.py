"""The adapter registry: one SQLite file (WAL, busy timeout, ``BEGIN IMMEDIATE`` writes).

Location: ``$LORAM_HOME/adapters.db``, else ``$XDG_DATA_HOME/loram/adapters.db``, else
``~/.local/share/loram/adapters.db``. Connections are short-lived (one per operation): the CLI does one thing
and exits, and a long-lived connection would keep the WAL from being checkpointed.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import sqlite3
import time
from pathlib import Path
from typing import Iterator

import attrs

from loram_core.adapters.record import COLUMNS, AdapterRecord, from_row, to_row
from loram_core.adapters.schema import migrate
from loram_core.errors import LoramError
from loram_core.plan.fingerprint import ModelFingerprint

DB_NAME = "adapters.db"
BUSY_TIMEOUT_S = 30.0


class RegistryCorruptError(LoramError):
    """The database file is not a readable SQLite registry."""


def registry_home() -> Path:
    if os.environ.get("LORAM_HOME"):
        return Path(os.environ["LORAM_HOME"]).expanduser()
    data = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data).expanduser() / "loram"


def db_path() -> Path:
    return registry_home() / DB_NAME


def corrupt_message(path: Path, detail: str) -> str:
    return (f"adapter registry {path} is unreadable ({detail}); run 'loram adapters doctor --repair' to move it "
            f"aside and start an empty registry (or point LORAM_HOME at another folder)")


def enable_wal(conn: sqlite3.Connection) -> None:
    """Put the database in WAL mode (readers never block the writer, the writer never blocks them).

    The switch takes an exclusive lock and SQLite does not call the busy handler for it: a second process
    opening the same new file at that moment gets "database is locked" at once. So retry, with backoff, for
    up to the busy timeout. The mode is stored in the file; later opens find it set and take no lock."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    delay = 0.005
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            busy = "locked" in str(exc) or "busy" in str(exc)
            if not busy or time.monotonic() + delay > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.25)


class AdapterStore:
    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path is not None else db_path()

    @contextlib.contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """A migrated connection in autocommit mode; SQLite errors become one-line ``LoramError``s."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LoramError(f"cannot create the adapter registry folder {self.path.parent}: {exc.strerror}") from None
        conn = None
        try:
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            enable_wal(conn)
            migrate(conn, self.path)
            yield conn
        except sqlite3.OperationalError as exc:
            text = str(exc)
            if "locked" in text or "busy" in text:
                raise LoramError(f"adapter registry {self.path} stayed locked for {BUSY_TIMEOUT_S:.0f} s; try again") from None
            if "unable to open" in text or "readonly" in text:
                raise LoramError(f"cannot open the adapter registry {self.path}: {text}") from None
            raise RegistryCorruptError(corrupt_message(self.path, text)) from None
        except sqlite3.DatabaseError as exc:  # "file is not a database", "database disk image is malformed"
            raise RegistryCorruptError(corrupt_message(self.path, str(exc))) from None
        finally:
            if conn is not None:
                conn.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction that takes the write lock up front, so read-then-write steps cannot interleave."""
        with self.connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    # --- reads -----------------------------------------------------------------------------------------------

    def list(self, base: ModelFingerprint | None = None) -> list[AdapterRecord]:
        with self.connect() as conn:
            if base is None:
                rows = conn.execute("SELECT * FROM adapters ORDER BY name").fetchall()
            else:
                rows = conn.execute("SELECT * FROM adapters WHERE base_config_hash = ? ORDER BY name",
                                    (base.config_hash,)).fetchall()
        records = [from_row(r) for r in rows]
        return [r for r in records if base is None or r.base.matches(base)]

    def get(self, name: str) -> AdapterRecord:
        with self.connect() as conn:
            row = conn.execute("SELECT * FROM adapters WHERE name = ?", (name,)).fetchone()
            if row is None:
                names = [r[0] for r in conn.execute("SELECT name FROM adapters ORDER BY name")]
        if row is None:
            near = difflib.get_close_matches(name, names, n=1, cutoff=0.4)
            hint = f"; did you mean '{near[0]}'?" if near else ""
            raise LoramError(f"no adapter named '{name}' in {self.path}{hint} (registered: {', '.join(names) or 'none'})")
        return from_row(row)

    def find_path(self, adapter_path: str | Path) -> AdapterRecord | None:
        with self.connect() as conn:
            row = conn.execute("SELECT * FROM adapters WHERE adapter_path = ?", (str(adapter_path),)).fetchone()
        return from_row(row) if row else None

    # --- writes ----------------------------------------------------------------------------------------------

    def add(self, record: AdapterRecord, *, unique: bool = True) -> AdapterRecord:
        """Insert ``record``. ``unique``: take the first free name of ``name``, ``name-2``, ... (for default names);
        otherwise a taken name is an error. Returns the record as stored."""
        with self.transaction() as conn:
            return self._insert(conn, record, unique)

    def register_path(self, record: AdapterRecord) -> AdapterRecord:
        """Insert, or update the record already holding ``record.adapter_path`` (a re-run of the same RUN_DIR),
        keeping its name and registration time."""
        with self.transaction() as conn:
            row = conn.execute("SELECT name, created_at FROM adapters WHERE adapter_path = ?",
                               (record.adapter_path,)).fetchone()
            if row is None:
                return self._insert(conn, record, unique=True)
            record = attrs.evolve(record, name=row["name"], created_at=row["created_at"])
            values = to_row(record)
            sets = ", ".join(f"{k} = :{k}" for k in COLUMNS)
            conn.execute(f"UPDATE adapters SET {sets} WHERE name = :name", values)
            return record

    def update_metrics(self, adapter_path: str | Path, content_hash: str, metrics: dict) -> int:
        """Attach a run report's metrics to the record of that adapter file (same path and content)."""
        import json

        with self.transaction() as conn:
            cur = conn.execute("UPDATE adapters SET metrics = ? WHERE adapter_path = ? AND content_hash = ?",
                               (json.dumps(metrics, sort_keys=True), str(adapter_path), content_hash))
            return cur.rowcount

    def remove(self, name: str) -> AdapterRecord:
        record = self.get(name)
        with self.transaction() as conn:
            conn.execute("DELETE FROM adapters WHERE name = ?", (name,))
        return record

    def rename(self, old: str, new: str) -> AdapterRecord:
        check_name(new)
        record = self.get(old)
        with self.transaction() as conn:
            try:
                conn.execute("UPDATE adapters SET name = ? WHERE name = ?", (new, old))
            except sqlite3.IntegrityError:
                raise LoramError(f"an adapter named '{new}' already exists; choose another name") from None
        return attrs.evolve(record, name=new)

    def _insert(self, conn: sqlite3.Connection, record: AdapterRecord, unique: bool) -> AdapterRecord:
        check_name(record.name)
        columns = ", ".join(COLUMNS)
        params = ", ".join(f":{k}" for k in COLUMNS)
        # The write lock is held, so the first free suffix stays free; the loop is bounded all the same.
        for suffix in range(1, 10_000):
            name = record.name if suffix == 1 else f"{record.name}-{suffix}"
            try:
                conn.execute(f"INSERT INTO adapters ({columns}) VALUES ({params})", to_row(attrs.evolve(record, name=name)))
                return attrs.evolve(record, name=name)
            except sqlite3.IntegrityError:
                if not unique:
                    raise LoramError(f"an adapter named '{name}' already exists; pass another --name "
                                     f"or 'loram adapters rm {name}' first") from None
        raise LoramError(f"no free name left for '{record.name}'")

    # --- maintenance -----------------------------------------------------------------------------------------

    def schema_version(self) -> int:
        from loram_core.adapters.schema import current_version

        with self.connect() as conn:
            return current_version(conn)


def check_name(name: str) -> None:
    if not name or name != name.strip() or any(c in name for c in "/\\\n\t") or name.startswith("-"):
        raise LoramError(f"adapter name {name!r} is not usable: no slashes, tabs, newlines or leading '-'")
