"""The adapter registry: every recovered adapter recorded with its provenance in one SQLite file."""

from loram_core.adapters.record import AdapterRecord
from loram_core.adapters.register import register_path, register_run
from loram_core.adapters.store import AdapterStore, RegistryCorruptError, db_path, registry_home

__all__ = ["AdapterRecord", "AdapterStore", "RegistryCorruptError", "db_path", "register_path", "register_run",
           "registry_home"]
