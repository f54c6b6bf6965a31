"""Perplexity: exact against a hand computation, windowing, modes and PEFT models."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from loram_core.errors import LoramError
from loram_core.evaluate import Perplexity, perplexity
from loram_core.testing.tiny import tiny_llama
from loram_core.train import TrainConfig, attach_lora


def _stream(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 128, (n,), generator=torch.Generator().manual_seed(seed))


def _by_hand(model, tokens: torch.Tensor, seq_len: int) -> float:
    """Mean NLL over every predicted token, one window at a time, log-softmax spelled out."""
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, tokens.numel() - seq_len + 1, seq_len):
            window = tokens[start : start + seq_len]
            logp = torch.log_softmax(model(window[None]).logits[0].double(), dim=-1)
            for t in range(seq_len - 1):
                total -= logp[t, window[t + 1]].item()
                count += 1
    return total / count


def test_matches_hand_computation_with_ragged_batches_and_tail():
    model = tiny_llama(0, layers=2)
    tokens = _stream(5 * 16 + 7)  # 5 windows of 16 and a ragged tail of 7
    result = perplexity(model, tokens, seq_len=16, batch_size=2, progress=False)  # batches of 2, 2, 1
    assert isinstance(result, Perplexity)
    assert result.tokens == 5 * 15
    expected = _by_hand(model, tokens[: 5 * 16], 16)
    assert result.nll == pytest.approx(expected, abs=1e-5)
    assert result.ppl == pytest.approx(math.exp(expected), rel=1e-5)
    # Same number however the windows are batched.
    one = perplexity(model, tokens, seq_len=16, batch_size=1, progress=False)
    assert one.nll == pytest.approx(result.nll, abs=1e-6)


def test_max_tokens_bounds_the_stream():
    model = tiny_llama(0, layers=2)
    tokens = _stream(200)
    bounded = perplexity(model, tokens, seq_len=16, max_tokens=40, progress=False)  # 2 windows
    assert bounded.tokens == 2 * 15
    direct = perplexity(model, tokens[:32], seq_len=16, progress=False)
    assert bounded == direct


def test_random_model_is_near_uniform_and_repetition_is_not_special():
    model = tiny_llama(0, layers=2)
    result = perplexity(model, _stream(256), seq_len=32, progress=False)
    # An untrained model over 128 tokens: roughly uniform, within a generous band.
    assert 64 < result.ppl < 256
    assert result.nll == pytest.approx(math.log(result.ppl))


def test_too_few_tokens_and_bad_input():
    model = tiny_llama(0, layers=2)
    with pytest.raises(LoramError, match="fewer than one window"):
        perplexity(model, _stream(100), seq_len=128, progress=False)
    with pytest.raises(LoramError, match="fewer than one window"):
        perplexity(model, _stream(1000), seq_len=128, max_tokens=100, progress=False)
    with pytest.raises(LoramError, match="1-D"):
        perplexity(model, _stream(64).view(2, 32), seq_len=16, progress=False)


def test_mode_is_restored():
    model = tiny_llama(0, layers=2)
    model.eval()
    perplexity(model, _stream(64), seq_len=16, progress=False)
    assert not model.training
    model.train()
    perplexity(model, _stream(64), seq_len=16, progress=False)
    assert model.training  # put back as found, but evaluated without dropout
    assert all(m.training for m in model.modules())


def test_peft_model_and_dropout_off():
    peft_model = attach_lora(tiny_llama(0, layers=2), TrainConfig(rank=4, alpha=8, dropout=0.5))
    peft_model.train()  # dropout 0.5 would make two evaluations differ if left on
    tokens = _stream(96)
    a = perplexity(peft_model, tokens, seq_len=32, progress=False)
    b = perplexity(peft_model, tokens, seq_len=32, progress=False)
    assert a == b
    # Fresh LoRA (B = 0) changes nothing: equal to the base model.
    base = perplexity(tiny_llama(0, layers=2), tokens, seq_len=32, progress=False)
    assert a.nll == pytest.approx(base.nll, abs=1e-6)


def test_uses_fp32_cross_entropy_on_shifted_logits():
    model = tiny_llama(0, layers=2)
    tokens = _stream(64)
    with torch.no_grad():
        logits = model(tokens.view(2, 32)).logits
    ref = F.cross_entropy(logits[:, :-1].reshape(-1, 128), tokens.view(2, 32)[:, 1:].reshape(-1))
    got = perplexity(model, tokens, seq_len=32, progress=False)
    assert got.nll == pytest.approx(ref.item(), abs=1e-6)
