"""Datasets, splits and token blocks: fast, with the character tokenizer."""

from __future__ import annotations

import json

import pytest
import torch

from loram_core.data import (
    TextSplits,
    eval_blocks,
    load_dataset,
    load_text_file,
    random_blocks,
    split_by_key,
    tokenize_documents,
)
from loram_core.errors import LoramError, UnknownPluginError
from loram_core.testing.tiny import tiny_tokenizer


def _items(n):
    return [(f"doc-{i}", f"text number {i}") for i in range(n)]


def _all(splits: TextSplits):
    return splits.train + splits.validation + splits.test


# --- splits ---------------------------------------------------------------------------------------


def test_split_is_deterministic_disjoint_and_complete():
    a, b = split_by_key(_items(200)), split_by_key(_items(200))
    assert a == b
    assert sorted(_all(a)) == sorted(t for _, t in _items(200))
    assert not set(a.train) & set(a.validation) and not set(a.train) & set(a.test)
    assert 130 < len(a.train) < 190 and len(a.validation) > 5 and len(a.test) > 5


def test_split_of_a_document_does_not_depend_on_the_others():
    full, half = split_by_key(_items(100)), split_by_key(_items(100)[::2])
    for name in ("train", "validation", "test"):
        assert set(half.split(name)) <= set(full.split(name))


def test_salt_changes_assignment():
    assert split_by_key(_items(50), salt="a") != split_by_key(_items(50), salt="b")


@pytest.mark.parametrize("n", [3, 4, 5, 7])
def test_every_split_non_empty_from_three_items(n):
    splits = split_by_key(_items(n))
    assert all(splits.split(s) for s in ("train", "validation", "test"))
    assert len(_all(splits)) == n
    assert split_by_key(_items(n)) == splits


def test_split_errors():
    with pytest.raises(LoramError, match="no documents"):
        split_by_key([])
    with pytest.raises(LoramError, match="fractions"):
        split_by_key(_items(5), fractions=(0.5, 0.5))
    with pytest.raises(LoramError, match="unknown split"):
        split_by_key(_items(5)).split("dev")


# --- text files -------------------------------------------------------------------------------------


def test_jsonl(tmp_path):
    path = tmp_path / "d.jsonl"
    rows = [{"text": f"document {i} " * 10} for i in range(30)]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    splits = load_text_file(path)
    assert sorted(_all(splits)) == sorted(r["text"] for r in rows)
    assert splits == load_text_file(path) and splits.name == "d.jsonl"


@pytest.mark.parametrize(
    "line, message",
    [("{not json", "line 2: not valid JSON"), ('{"txt": "x"}', 'line 2: expected an object'), ("[1]", "line 2")],
)
def test_jsonl_bad_line_names_file_and_line(tmp_path, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"text": "fine " * 100}) + "\n" + line + "\n")
    with pytest.raises(LoramError, match=message) as info:
        load_text_file(path)
    assert "bad.jsonl" in str(info.value)


def test_plain_text_groups_paragraphs(tmp_path):
    paragraphs = [f"Paragraph {i}. " + "word " * 60 for i in range(100)]  # ~320 chars each
    path = tmp_path / "book.txt"
    path.write_text("\n\n".join(paragraphs) + "\n")
    splits = load_text_file(path)
    docs = _all(splits)
    assert 10 <= len(docs) <= 20  # ~2000-char documents, not one per paragraph
    assert sum(d.count("Paragraph ") for d in docs) == 100
    assert all(s for s in (splits.train, splits.validation, splits.test))


def test_text_file_errors(tmp_path):
    with pytest.raises(LoramError, match="does not exist"):
        load_text_file(tmp_path / "missing.txt")
    (tmp_path / "empty.txt").write_text("  \n\n")
    with pytest.raises(LoramError, match="empty"):
        load_text_file(tmp_path / "empty.txt")
    (tmp_path / "small.txt").write_text("just one short line\n")
    with pytest.raises(LoramError, match="too little text"):
        load_text_file(tmp_path / "small.txt")


# --- load_dataset -----------------------------------------------------------------------------------


def test_load_dataset_file_and_unknown(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("\n\n".join("x " * 500 for _ in range(6)))
    assert load_dataset(str(path)) == load_text_file(path)
    with pytest.raises(UnknownPluginError, match="shakespeare"):
        load_dataset("no-such-dataset")


# --- tokens -----------------------------------------------------------------------------------------


def test_tokenize_documents_appends_eos_and_stops_early():
    tok = tiny_tokenizer()
    stream = tokenize_documents(tok, ["ab", "cde"])
    eos = tok.eos_token_id
    assert stream.dtype == torch.long and stream.dim() == 1
    assert stream.tolist() == tok("ab").input_ids + [eos] + tok("cde").input_ids + [eos]

    def docs():
        yield "abcdefgh"
        yield "ijkl"
        raise AssertionError("read past max_tokens")

    assert tokenize_documents(tok, docs(), max_tokens=10).numel() == 10
    assert tokenize_documents(tok, []).numel() == 0


def test_blocks_shapes_and_content():
    tokens = torch.arange(1000)
    gen = torch.Generator().manual_seed(0)
    batch = random_blocks(tokens, 16, 4, gen)
    assert batch.shape == (4, 16)
    assert torch.equal(batch[:, 1:] - batch[:, :-1], torch.ones(4, 15, dtype=torch.long))  # contiguous
    again = random_blocks(tokens, 16, 4, torch.Generator().manual_seed(0))
    assert torch.equal(batch, again)
    blocks = eval_blocks(tokens, 64)
    assert blocks.shape == (15, 64) and torch.equal(blocks.flatten(), tokens[:960])
    assert eval_blocks(tokens[:16], 16).shape == (1, 16)
    assert random_blocks(tokens[:16], 16, 2).shape == (2, 16)


def test_blocks_too_few_tokens():
    with pytest.raises(LoramError, match="10 tokens, need at least 16"):
        eval_blocks(torch.arange(10), 16)
    with pytest.raises(LoramError, match="10 tokens, need at least 16"):
        random_blocks(torch.arange(10), 16, 2)


# --- shakespeare ------------------------------------------------------------------------------------


def test_shakespeare_split_by_play():
    from loram_core.data.shakespeare import load_shakespeare, play_names

    splits = load_dataset("shakespeare")
    assert splits == load_shakespeare()
    assert len(_all(splits)) == 38 and len(set(_all(splits))) == 38
    names = {s: play_names(s) for s in ("train", "validation", "test")}
    assert sum(map(len, names.values())) == 38
    assert not set(names["train"]) & set(names["test"]) and not set(names["validation"]) & set(names["test"])
    assert not set(names["train"]) & set(names["validation"])
    assert "hamlet" in {n for v in names.values() for n in v}
    # Each document is one whole play; markdown markers are stripped.
    assert all(len(d) > 50_000 for d in _all(splits))
    assert "**" not in splits.test[0] and "\\[" not in splits.test[0]
    assert sum(map(len, splits.test)) > 200_000  # enough held-out text for ~50k tokens
