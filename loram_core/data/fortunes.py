"""General English for alignment: Debian's ``fortunes`` package (``/usr/share/games/fortunes``).

Each fortune file holds short texts separated by lines of a single ``%``. A fortune is too short to be a
document of its own, and a whole file is too long (there are only ~40 files, so the held-out splits would
be two or three topics), so consecutive fortunes of one file are grouped into documents of about
``DOC_CHARS`` characters, keyed by file name and position, and split by that key: deterministic, and a
fortune's split never changes.
"""

from __future__ import annotations

import re
from pathlib import Path

from loram_core.data.splits import TextSplits, split_by_key
from loram_core.data.text_files import group_documents
from loram_core.errors import LoramError

FORTUNES_DIR = Path("/usr/share/games/fortunes")
APT_HINT = "apt-get install -y fortunes"
DOC_CHARS = 2000
_SEPARATOR = re.compile(r"^%[ \t]*$", re.MULTILINE)
_SKIP_SUFFIXES = (".dat", ".u8")


def fortune_files(folder: Path = FORTUNES_DIR) -> list[Path]:
    """The fortune text files: regular files, not symlinks (the ``*.u8`` links), indexes (``*.dat``) or folders."""
    folder = Path(folder)
    if not folder.is_dir():
        raise LoramError(f"the fortunes dataset needs Debian's fortunes package ({folder} is missing): {APT_HINT}")
    files = sorted(
        p for p in folder.iterdir()
        if p.is_file() and not p.is_symlink() and p.suffix not in _SKIP_SUFFIXES and not p.name.startswith(".")
    )
    if not files:
        raise LoramError(f"no fortune files found under {folder}; reinstall the package: {APT_HINT}")
    return files


def parse_fortunes(text: str) -> list[str]:
    """The ``%``-separated entries of one file, stripped, empty ones dropped."""
    return [entry.strip("\n").rstrip() for entry in _SEPARATOR.split(text.replace("\r\n", "\n")) if entry.strip()]


def load_fortunes(folder: Path = FORTUNES_DIR, doc_chars: int = DOC_CHARS) -> TextSplits:
    """All fortune files, grouped into ~``doc_chars`` documents keyed ``file:position``, split 80/10/10."""
    items = []
    for path in fortune_files(folder):
        text = path.read_text(encoding="utf-8", errors="replace")
        for i, doc in enumerate(group_documents(parse_fortunes(text), doc_chars)):
            items.append((f"{path.name}:{i}", doc))
    if len(items) < 3:
        raise LoramError(f"the fortune files under {folder} hold too little text ({len(items)} documents)")
    return split_by_key(items, name="fortunes")
