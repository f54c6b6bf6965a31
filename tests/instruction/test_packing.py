"""Rows of examples: best-fit-decreasing packing keeps whole examples apart (the loss of a packed row is the
token-weighted loss of its examples run alone), padding is never trained, and a step's rows depend on the global
batch alone."""

import random

import pytest
import torch

from loram_core.data.encode import IGNORE, Example
from loram_core.data.packing import collate, pack_bfd, to_rows, to_stream
from loram_core.testing.tiny import tiny_llama
from loram_core.train.config import TrainConfig
from loram_core.train.loss import token_nll
from loram_core.train.sources import ExampleRows


def examples(n=12, seed=0):
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        length = rng.randint(4, 20)
        prompt = rng.randint(1, length - 2)
        ids = [rng.randint(3, 127) for _ in range(length)]
        out.append(Example(ids, [IGNORE] * prompt + ids[prompt:]))
    return out


def test_bfd_fills_the_fullest_bin_that_fits_longest_first():
    assert pack_bfd([5, 3, 8, 2, 4], 10) == [[2, 3], [0, 4], [1]]
    lengths = [random.Random(1).randint(1, 30) for _ in range(200)]
    bins = pack_bfd(lengths, 32)
    assert sorted(i for b in bins for i in b) == list(range(200))  # every example once
    assert all(sum(lengths[i] for i in b) <= 32 for b in bins)
    assert len(bins) <= -(-sum(lengths) // 32) + 3  # BFD is within a few bins of the bound here


def test_a_packed_row_has_the_loss_of_its_examples_run_alone():
    model = tiny_llama(0, layers=2).eval()
    data = examples()
    rows = to_rows(data, "bfd", 48)
    assert len(rows) < len(data)  # several examples share rows
    with torch.no_grad():
        packed = sum(token_nll(model, collate([row], pad_id=0)).item() for row in rows)
        alone = sum(token_nll(model, collate(to_rows([e], "none", 0), pad_id=0)).item() for e in data)
    trained = sum(e.trained for e in data)
    assert sum(collate([r], 0).trained for r in rows) == trained  # no cross-example target is trained
    assert packed / trained == pytest.approx(alone / trained, abs=1e-5)


def test_padding_is_never_trained_and_does_not_change_the_loss():
    model = tiny_llama(0, layers=2).eval()
    data = examples(4)
    rows = to_rows(data, "none", 0)
    with torch.no_grad():
        together = token_nll(model, collate(rows, pad_id=0)).item()  # padded to the longest
        apart = sum(token_nll(model, collate([r], pad_id=0)).item() for r in rows)
    batch = collate(rows, pad_id=0)
    lengths = [len(e) for e in data]
    assert all((batch.labels[i, n:] == IGNORE).all() for i, n in enumerate(lengths))
    assert together == pytest.approx(apart, rel=1e-5)


def test_wrapped_examples_keep_their_labels_in_the_stream():
    data = examples(3)
    ids, labels = to_stream(data)
    assert ids.tolist() == [t for e in data for t in e.input_ids]
    assert labels.tolist() == [t for e in data for t in e.labels]


def test_a_steps_rows_depend_on_the_global_batch_alone():
    rows = ExampleRows(to_rows(examples(10), "none", 0), pad_id=0)
    one = TrainConfig(batch_size=4, seq_len=32, steps=8, grad_accum=2)
    two = TrainConfig(batch_size=2, seq_len=32, steps=8, grad_accum=2)
    for step in range(8):
        assert torch.equal(rows.indices(step, one, 1), rows.indices(step, two, 2))
    seen = torch.cat([rows.indices(s, one, 1) for s in range(5)])[:40]  # 4 epochs of 10 rows
    assert all(sorted(seen[i:i + 10].tolist()) == list(range(10)) for i in range(0, 40, 10))
