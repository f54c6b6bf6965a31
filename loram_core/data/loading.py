"""Turn a dataset spec (a registered alias or a file path) into ``TextSplits``."""

from __future__ import annotations

from pathlib import Path

from loram_core.data.splits import TextSplits
from loram_core.data.text_files import load_text_file
from loram_core.errors import LoramError, UnknownPluginError


def load_dataset(spec: str | Path) -> TextSplits:
    """A registered dataset alias (e.g. ``shakespeare``), else an existing text/jsonl file."""
    from loram_core import registry

    found = registry.collect("dataset")
    if not isinstance(spec, Path) and spec in found:
        return found[spec].obj.load()
    path = Path(spec).expanduser()
    if path.exists():  # a folder gets load_text_file's own message
        return load_text_file(path)
    if path.suffix or "/" in str(spec) or "\\" in str(spec):  # looks like a file the user meant
        raise LoramError(f"data file {spec} does not exist (dataset aliases: {', '.join(sorted(found)) or 'none'})")
    raise UnknownPluginError("dataset", str(spec), list(found))
