"""A user's own corpus: a ``.jsonl`` file of {"text": ...} objects, or any other file as plain text."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from loram_core.data.splits import TextSplits, split_by_key
from loram_core.errors import LoramError

# Plain text is cut at blank lines, and consecutive paragraphs are joined into documents of about this
# many characters: splitting per paragraph would scatter tiny fragments of one text across the splits.
DOC_CHARS = 2000
# Below this there is not enough text for a train split plus held-out splits worth measuring.
MIN_CHARS = 200
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n+")


def load_text_file(path: str | Path, doc_chars: int = DOC_CHARS) -> TextSplits:
    path = Path(path).expanduser()
    if not path.is_file():
        raise LoramError(f"dataset file {path} does not exist" + (" (it is a folder)" if path.is_dir() else ""))
    try:
        raw = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise LoramError(f"dataset file {path} is not UTF-8 text (byte {exc.start})") from exc
    if not raw.strip():
        raise LoramError(f"dataset file {path} is empty")
    docs = _jsonl_docs(path, raw) if path.suffix.lower() == ".jsonl" else _text_docs(raw, doc_chars)
    chars = sum(map(len, docs))
    if chars < MIN_CHARS or len(docs) < 3:
        raise LoramError(
            f"dataset file {path} holds too little text to split ({len(docs)} documents, {chars} chars; "
            f"need at least 3 documents and {MIN_CHARS} chars)"
        )
    # Key on position and content: identical documents at different places still get their own key.
    items = [(f"{i}:{hashlib.sha256(d.encode()).hexdigest()[:16]}", d) for i, d in enumerate(docs)]
    return split_by_key(items, name=path.name)


def _jsonl_docs(path: Path, raw: str) -> list[str]:
    docs = []
    for number, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as exc:
            raise LoramError(f"{path}, line {number}: not valid JSON ({exc.msg})") from exc
        if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
            raise LoramError(f'{path}, line {number}: expected an object with a string "text" field')
        if obj["text"].strip():
            docs.append(obj["text"])
    return docs


def _text_docs(raw: str, doc_chars: int) -> list[str]:
    paragraphs = [p.strip() for p in _PARAGRAPH_BREAK.split(raw.replace("\r\n", "\n")) if p.strip()]
    return group_documents(paragraphs, doc_chars)


def group_documents(pieces: list[str], doc_chars: int = DOC_CHARS) -> list[str]:
    """Consecutive pieces (paragraphs, fortunes) joined by blank lines into documents of at least ``doc_chars``
    characters (the last one may be shorter)."""
    docs: list[str] = []
    current: list[str] = []
    size = 0
    for piece in pieces:
        current.append(piece)
        size += len(piece) + 2
        if size >= doc_chars:
            docs.append("\n\n".join(current))
            current, size = [], 0
    if current:
        docs.append("\n\n".join(current))
    return docs
