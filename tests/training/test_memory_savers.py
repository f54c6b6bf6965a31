"""Gradient checkpointing and the chunked loss: the same loss and gradients as the plain path, less memory."""

from __future__ import annotations

import zlib

import pytest
import torch

from loram_core.testing.tiny import tiny_llama
from loram_core.train import TrainConfig, attach_lora, train_lora
from loram_core.train.loss import causal_lm_loss


def _batch(vocab: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, vocab, (3, 40), generator=torch.Generator().manual_seed(seed))


def _lora_model():
    model = attach_lora(tiny_llama(seed=1), TrainConfig(rank=4, alpha=8, dropout=0.0))
    # a non-zero lora_B, so the gradients reach every LoRA factor
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.02, generator=torch.Generator().manual_seed(zlib.crc32(name.encode()) % 1000))
    return model.train()


def _grads(model) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("chunk", [1, 7, 64, 10_000])
def test_chunked_loss_equals_model_loss_and_gradients(chunk):
    model = _lora_model()
    batch = _batch(model.config.vocab_size)
    plain = causal_lm_loss(model, batch, 0)
    plain.backward()
    want = _grads(model)
    model.zero_grad(set_to_none=True)
    chunked = causal_lm_loss(model, batch, chunk)
    chunked.backward()
    got = _grads(model)
    assert torch.allclose(chunked, plain, rtol=1e-6, atol=1e-6)
    assert want.keys() == got.keys() and len(want) > 0
    for name in want:
        assert torch.allclose(got[name], want[name], rtol=1e-4, atol=1e-7), name


def test_chunked_loss_leaves_the_model_as_it_was():
    model = _lora_model()
    batch = _batch(model.config.vocab_size, seed=3)
    causal_lm_loss(model, batch, 16)
    head = model.get_output_embeddings()
    assert not head._forward_pre_hooks  # the capturing hook is gone
    assert model(input_ids=batch).logits.shape == (3, 40, model.config.vocab_size)


def test_training_with_both_savers_matches_plain_training(tmp_path):
    tokens = torch.tensor([3, 17, 42, 5, 99, 8, 61, 23, 77, 12, 4, 50] * 200, dtype=torch.long)
    base = dict(steps=8, batch_size=4, seq_len=32, lr=1e-2, rank=4, alpha=8, warmup_steps=2, checkpoint_every=0)
    plain = train_lora(tiny_llama(seed=2), tokens, TrainConfig(**base), adapter_dir=tmp_path / "a", progress=False)
    saved = train_lora(tiny_llama(seed=2), tokens, TrainConfig(**base, gradient_checkpointing=True, loss_chunk=24),
                       adapter_dir=tmp_path / "b", progress=False)
    # Same dropout masks (the checkpoint restores the RNG on recompute) and the same math; only summation
    # order differs, so the curves agree closely and the loss falls in both.
    assert saved.losses[-1] < saved.losses[0]
    for a, b in zip(plain.losses, saved.losses):
        assert abs(a - b) < 1e-3 * max(1.0, abs(a))


def test_savers_are_ordinary_training_fields():
    # no compatibility shim: the stage key version was bumped once instead (lifecycle/rundir.py)
    assert TrainConfig().to_dict()["loss_chunk"] == 0 and TrainConfig().to_dict()["gradient_checkpointing"] is False
    cfg = TrainConfig(loss_chunk=128, gradient_checkpointing=True)
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
