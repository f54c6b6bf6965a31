"""The registry's SQL schema as numbered migrations; ``schema_migrations`` records which ones ran.

A migration is a tuple of statements, applied in one ``BEGIN IMMEDIATE`` transaction together with its row
in ``schema_migrations``, so two processes opening a new database at once apply each migration exactly once.
Append new migrations; never edit one that has shipped.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timezone

from loram_core.errors import LoramError

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: one row per registered adapter. JSON columns hold the plugin blocks {name, version, params|options}.
    (
        """CREATE TABLE adapters (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            created_at TEXT NOT NULL,
            source TEXT NOT NULL CHECK (source IN ('run', 'external')),
            adapter_path TEXT NOT NULL,
            content_hash TEXT NOT NULL,
            base_name_or_path TEXT NOT NULL,
            base_architecture TEXT NOT NULL,
            base_model_type TEXT NOT NULL,
            base_config_hash TEXT NOT NULL,
            base_num_parameters INTEGER NOT NULL,
            plan_hash TEXT,
            pruner TEXT,
            quantizer TEXT,
            aligner TEXT,
            recoverer TEXT,
            data TEXT,
            metrics TEXT NOT NULL DEFAULT '{}',
            lora TEXT NOT NULL DEFAULT '{}',
            run_dir TEXT,
            loram_version TEXT NOT NULL
        )""",
    ),
    # 2: `list --model` filters by the base's config hash; run registration looks adapters up by path.
    (
        "CREATE INDEX adapters_by_base ON adapters (base_config_hash)",
        "CREATE INDEX adapters_by_path ON adapters (adapter_path)",
    ),
)
LATEST = len(MIGRATIONS)


def current_version(conn: sqlite3.Connection) -> int:
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
    ).fetchone()
    if not exists:
        return 0
    return conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()[0]


def migrate(conn: sqlite3.Connection, path, target: int = LATEST) -> int:
    """Bring the database up to ``target``; returns the version it ends at. ``conn`` is in autocommit mode."""
    if current_version(conn) == target:  # the common case costs one read and no write lock
        return target
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)")
        version = current_version(conn)  # re-read under the lock: another process may have migrated meanwhile
        if version > LATEST:
            raise LoramError(
                f"adapter registry {path} has schema version {version}; this loram knows up to {LATEST}: upgrade loram"
            )
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        for number in range(version + 1, target + 1):
            for statement in MIGRATIONS[number - 1]:
                conn.execute(statement)
            conn.execute("INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)", (number, now))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return max(version, target)
