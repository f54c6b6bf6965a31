"""Quantized models with arbitrary pruned widths on any CPU: bitsandbytes' AVX512-BF16 packed layout is kept
off for the modules it cannot hold, and a kernel failure is one line naming the module."""

import bitsandbytes as bnb
import pytest
import torch

from loram_core.errors import LoramError
from loram_core.testing.tiny import tiny_llama
from loram_plugin_bnb import quantize_model
from loram_plugin_bnb.config import FP4Config, NF4Config
from loram_plugin_bnb.layers import fits_cpu_packed_layout, keep_unfit_modules_on_general_path

HAS_AVX512_BF16 = bnb.functional.has_avx512bf16()


@pytest.fixture
def cpu_claims_avx512_bf16(monkeypatch):
    """Make every new Linear4bit believe the CPU has AVX512-BF16, so the guard is tested on any machine."""
    monkeypatch.setattr(bnb.nn.modules, "has_avx512bf16", lambda: True)


def odd_width_model():
    # hidden 64 fits; intermediate 100 (out of gate/up not a multiple of 32, in of down not of 64) does not,
    # nor do the k/v projections' 24 rows
    return tiny_llama(seed=7, intermediate_size=100, num_attention_heads=8, num_key_value_heads=4, head_dim=6)


def test_layout_rule_is_the_one_bitsandbytes_asserts():
    assert fits_cpu_packed_layout(1536, 576, 64) and fits_cpu_packed_layout(32, 64, 64)
    assert not fits_cpu_packed_layout(4838, 5120, 64)  # LLaMA-2-13B's MLP at ratio 0.65
    assert not fits_cpu_packed_layout(64, 96, 64)  # the absmax reshape of issue 23: [64, 1] from 96 blocks
    assert fits_cpu_packed_layout(96, 80, 16) and not fits_cpu_packed_layout(96, 80, 32)


def test_by_default_every_module_takes_the_general_path(cpu_claims_avx512_bf16):
    model = quantize_model(tiny_llama(seed=7, intermediate_size=128, head_dim=8), NF4Config())
    four_bit = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert len(four_bit) == 8 * 7 and not any(m.support_avx512bf16_for_cpu for m in four_bit)


PACKED = dict(cpu_packed=True)


@pytest.mark.parametrize("config", [NF4Config(**PACKED), FP4Config(**PACKED), NF4Config(blocksize=32, **PACKED)],
                         ids=["nf4", "fp4", "nf4-b32"])
def test_modules_with_odd_widths_carry_the_general_path_setting(cpu_claims_avx512_bf16, config):
    model = quantize_model(odd_width_model(), config)
    four_bit = {n: m for n, m in model.named_modules() if isinstance(m, bnb.nn.Linear4bit)}
    assert len(four_bit) == 8 * 7
    for name, module in four_bit.items():
        fits = fits_cpu_packed_layout(module.out_features, module.in_features, config.blocksize)
        assert module.support_avx512bf16_for_cpu is fits, name
    kinds = {n.rsplit(".", 1)[-1]: m.support_avx512bf16_for_cpu for n, m in four_bit.items()}
    # 100 MLP channels fit nowhere; 48 query rows (8 x 6) and 24 KV rows do not either; o_proj is 64x48
    assert kinds == {"q_proj": False, "k_proj": False, "v_proj": False, "o_proj": False, "gate_proj": False,
                     "up_proj": False, "down_proj": False}
    fitting = quantize_model(tiny_llama(seed=7, intermediate_size=128, head_dim=8), config)
    assert all(m.support_avx512bf16_for_cpu for m in fitting.modules() if isinstance(m, bnb.nn.Linear4bit))


def test_the_guard_also_covers_a_model_from_transformers_loader(cpu_claims_avx512_bf16, tmp_path):
    from transformers import AutoModelForCausalLM

    odd_width_model().save_pretrained(tmp_path)
    model = AutoModelForCausalLM.from_pretrained(
        tmp_path, quantization_config=NF4Config().as_bitsandbytes_config(), dtype=torch.float32, device_map="cpu")
    switched = keep_unfit_modules_on_general_path(model)
    assert len(switched) == 8 * 7
    assert not any(m.support_avx512bf16_for_cpu for m in model.modules() if isinstance(m, bnb.nn.Linear4bit))


@pytest.mark.parametrize("config", [NF4Config(**PACKED), FP4Config(**PACKED)], ids=["nf4", "fp4"])
def test_eval_forward_of_odd_widths_matches_the_training_path(config):
    """No-grad eval forward (where bitsandbytes would repack) on odd widths runs on whatever CPU this is,
    and gives the logits of the same model in training mode with gradients on (the general path)."""
    model = quantize_model(odd_width_model(), config)
    ids = torch.randint(0, 128, (2, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        evaluated = model.eval()(ids).logits
    embeds = model.get_input_embeddings()(ids).detach().requires_grad_(True)
    trained = model.train()(inputs_embeds=embeds).logits
    torch.testing.assert_close(evaluated, trained.detach(), rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(not HAS_AVX512_BF16, reason="the packed path exists only on CPUs with AVX512-BF16")
def test_fitting_modules_keep_the_packed_fast_path():
    model = quantize_model(tiny_llama(seed=7, intermediate_size=128), NF4Config(**PACKED))
    with torch.no_grad():
        model(torch.zeros(1, 8, dtype=torch.long))
    states = [m.weight.quant_state for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert states and all(getattr(s, "packing_format_for_cpu", False) for s in states)


def test_a_failing_kernel_is_one_line_naming_module_shape_and_constraint(cpu_claims_avx512_bf16, monkeypatch):
    model = quantize_model(tiny_llama(seed=7, intermediate_size=128), NF4Config(**PACKED))

    def broken(*_a, **_k):
        raise RuntimeError("N must be divisible by block_n\nsecond line")

    monkeypatch.setattr(bnb, "matmul_4bit", broken)
    with pytest.raises(LoramError) as info, torch.no_grad():
        model(torch.zeros(1, 8, dtype=torch.long))
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("quantized module model.layers.0.self_attn.q_proj (64x64) failed in bitsandbytes: "
                              "N must be divisible by block_n")
    assert "out_features % 32 == 0 and in_features % blocksize (64) == 0" in message


@pytest.mark.skipif(not HAS_AVX512_BF16, reason="the packed path exists only on CPUs with AVX512-BF16")
def test_training_after_an_eval_forward_gets_the_gradients_of_a_model_never_evaluated():
    def grads(evaluate_first: bool):
        model = quantize_model(tiny_llama(seed=7, intermediate_size=128), NF4Config(**PACKED))
        ids = torch.randint(0, 128, (2, 16), generator=torch.Generator().manual_seed(0))
        if evaluate_first:
            with torch.no_grad():
                model.eval()(ids)  # repacks every module for the bf16 kernel, which has no backward
        embeds = model.get_input_embeddings()(ids).detach().requires_grad_(True)
        model.train()(inputs_embeds=embeds, labels=ids).loss.backward()
        return embeds.grad

    fresh, after_eval = grads(False), grads(True)
    assert fresh.abs().sum() > 0
    # the unpacked absmax went through bf16: close, not bit-identical (measured 0.004 of the norm; without
    # the unpacking the gradient through the frozen weights is lost: 0.88)
    assert float((after_eval - fresh).norm() / fresh.norm()) < 0.02
