"""The quantizers on a materialized model: really packed, the same bits as transformers' loader, explicit about
what they keep, and running forward/backward on CPU."""

import attrs
import bitsandbytes as bnb
import pytest
import torch
from transformers import AutoModelForCausalLM

from loram_core.configs import build_config
from loram_core.errors import LoramError
from loram_core.testing.tiny import tiny_llama
from loram_plugin_bnb import QUANTIZERS, describe, held_param_bytes, quantize_model
from loram_plugin_bnb.config import FP4Config, Int8Config, NF4Config
from loram_plugin_bnb.layers import keep_unfit_modules_on_general_path

PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def decoder_linears(model):
    return {n: m for n, m in model.named_modules() if n.rsplit(".", 1)[-1] in PROJECTIONS}


def test_nf4_weights_are_packed_with_double_quantized_state():
    model = tiny_llama(seed=1)
    fp32 = {n: m.weight.detach().clone() for n, m in decoder_linears(model).items()}
    quantize_model(model, NF4Config())
    modules = decoder_linears(model)
    assert modules.keys() == fp32.keys()
    for name, module in modules.items():
        assert isinstance(module, bnb.nn.Linear4bit), name
        w, state = module.weight, module.weight.quant_state
        assert w.dtype == torch.uint8 and w.numel() * 2 == fp32[name].numel()  # two 4-bit codes per byte
        assert state.quant_type == "nf4" and state.blocksize == 64 and tuple(state.shape) == tuple(fp32[name].shape)
        assert state.nested and state.absmax.dtype == torch.uint8  # double quantization: 8-bit absmax
        assert not w.requires_grad
    quantized_bytes = held_param_bytes(torch.nn.ModuleList(modules.values()))
    fp32_bytes = sum(t.numel() * 4 for t in fp32.values())
    assert quantized_bytes < fp32_bytes / 3


def test_same_bits_as_transformers_bitsandbytes_loader(inputs):
    model_dir, _ = inputs
    config = NF4Config()
    reference = AutoModelForCausalLM.from_pretrained(
        model_dir, quantization_config=config.as_bitsandbytes_config(), dtype=torch.float32, device_map="cpu")
    # as ours by default: bitsandbytes' general CPU path (its packed AVX512-BF16 one computes in bf16)
    keep_unfit_modules_on_general_path(reference, all_modules=True)
    ours = quantize_model(AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32), config)
    ref_modules, our_modules = decoder_linears(reference), decoder_linears(ours)
    for name, mine in our_modules.items():
        theirs = ref_modules[name]
        assert torch.equal(mine.weight.data, theirs.weight.data), name
        a, b = mine.weight.quant_state, theirs.weight.quant_state
        assert torch.equal(a.absmax, b.absmax) and torch.equal(a.state2.absmax, b.state2.absmax)
        assert torch.equal(a.offset, b.offset)
    ids = torch.randint(0, 128, (2, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(ours(ids).logits, reference(ids).logits)


def test_bf16_compute_dequantizes_as_transformers_bf16_loader_does(inputs, tmp_path):
    """compute_dtype=bfloat16 on a bf16 checkpoint: the same packed bits as transformers' ``dtype=bfloat16``
    loader, and each weight dequantizes straight to bf16 (no fp32 copy beside the bf16 one), to the same values."""
    from bitsandbytes.functional import dequantize_4bit

    model_dir, _ = inputs
    bf16_dir = tmp_path / "bf16"
    AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16).save_pretrained(bf16_dir)
    config = NF4Config(compute_dtype="bfloat16")
    reference = AutoModelForCausalLM.from_pretrained(
        bf16_dir, quantization_config=config.as_bitsandbytes_config(), dtype=torch.bfloat16, device_map="cpu")
    keep_unfit_modules_on_general_path(reference, all_modules=True)
    ours = quantize_model(AutoModelForCausalLM.from_pretrained(bf16_dir, dtype=torch.float32), config)
    ref_modules, our_modules = decoder_linears(reference), decoder_linears(ours)
    assert len(our_modules) == 8 * 7
    for name, mine in our_modules.items():
        theirs = ref_modules[name]
        assert torch.equal(mine.weight.data, theirs.weight.data), name
        a, b = mine.weight.quant_state, theirs.weight.quant_state
        assert a.dtype == b.dtype == torch.bfloat16, name
        assert torch.equal(a.absmax, b.absmax) and torch.equal(a.state2.absmax, b.state2.absmax)
        ours_w, theirs_w = dequantize_4bit(mine.weight.data, a), dequantize_4bit(theirs.weight.data, b)
        assert ours_w.dtype == torch.bfloat16 and torch.equal(ours_w, theirs_w), name


def test_describe_names_what_was_quantized_and_what_was_kept():
    model = tiny_llama(seed=2)
    total = sum(p.numel() for p in model.parameters())
    config = NF4Config()
    block = describe(quantize_model(model, config), config)
    assert block["modules_quantized"] == {p: 8 for p in PROJECTIONS}
    # lm_head is tied to the embedding and skipped by default; embeddings and norms are not Linear
    assert block["modules_kept"] == {"linear": ["lm_head"], "other": {"Embedding": 1, "LlamaRMSNorm": 17}}
    assert block["params_quantized"] + block["params_kept"] == total
    assert block["params_kept"] == 128 * 64 + 17 * 64  # the tied embedding once, and the norms
    assert (block["quant_type"], block["bits"], block["double_quant"], block["blocksize"]) == ("nf4", 4, True, 64)
    assert block["compute_dtype"] == "float32"  # no CUDA here
    assert block["param_bytes_base"] == held_param_bytes(model)


def test_skip_modules_keep_matching_linears_and_a_tied_lm_head_is_never_quantized():
    model = quantize_model(tiny_llama(seed=3), NF4Config(skip_modules="mlp.down_proj,model.layers.0"))
    for name, module in decoder_linears(model).items():
        keep = name.endswith("down_proj") or name.startswith("model.layers.0.")
        assert (type(module) is torch.nn.Linear) == keep, name
    block = describe(model, NF4Config(skip_modules="mlp.down_proj,model.layers.0"))
    assert len(block["modules_kept"]["linear"]) == 1 + 8 + 6  # lm_head, every down_proj, layer 0's other six
    # skip nothing: the lm_head shares its weight with the embedding, so it still stays as it is
    untied = quantize_model(tiny_llama(seed=3), NF4Config(skip_modules=""))
    assert type(untied.lm_head) is torch.nn.Linear
    assert untied.lm_head.weight is untied.model.embed_tokens.weight


def test_bad_options_and_models_are_clear_errors():
    with pytest.raises(LoramError, match="matches no Linear module"):
        quantize_model(tiny_llama(), NF4Config(skip_modules="lm_hed"))
    with pytest.raises(LoramError, match="blocksize must be one of"):
        build_config(NF4Config, {"blocksize": 48}, owner="quantizer 'nf4'")
    with pytest.raises(LoramError, match="compute_dtype"):
        build_config(NF4Config, {"compute_dtype": "float8"}, owner="quantizer 'nf4'")
    with pytest.raises(LoramError, match="unknown option"):
        build_config(NF4Config, {"bits": 8}, owner="quantizer 'nf4'")  # bits is what the name means
    model = quantize_model(tiny_llama(), NF4Config())
    with pytest.raises(LoramError, match="already quantized"):
        quantize_model(model, NF4Config())


@pytest.mark.parametrize("name,module_cls", [("nf4", bnb.nn.Linear4bit), ("fp4", bnb.nn.Linear4bit),
                                             ("int8", bnb.nn.Linear8bitLt)])
def test_each_quantizer_runs_forward_and_backward_on_cpu(name, module_cls):
    quantizer = next(q for q in QUANTIZERS if q.name == name)
    config = quantizer.config_cls()
    assert config.bits == quantizer.bits == (8 if name == "int8" else 4)
    reference = tiny_llama(seed=4)
    model = quantizer.quantize(tiny_llama(seed=4), config)
    assert all(isinstance(m, module_cls) for m in decoder_linears(model).values())
    assert getattr(model, "is_loaded_in_8bit" if name == "int8" else "is_loaded_in_4bit")
    ids = torch.randint(0, 128, (2, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want, other = reference(ids).logits, tiny_llama(seed=5)(ids).logits
        got = model(ids).logits
    # quantization moves the logits (measured: nf4 0.19, fp4 0.33, int8 0.015 of their norm), far less than
    # another model's are away (1.33)
    distance = lambda x: float((x - want).norm() / want.norm())
    assert 0 < distance(got) < 0.4 * distance(other)
    embeds = model.get_input_embeddings()(ids).detach().requires_grad_(True)
    model(inputs_embeds=embeds, labels=ids).loss.backward()  # gradients flow through the quantized layers
    assert embeds.grad is not None and embeds.grad.abs().sum() > 0


def test_configs_are_frozen_attrs_with_the_documented_defaults():
    for cls, quant_type in ((NF4Config, "nf4"), (FP4Config, "fp4")):
        c = cls()
        assert (c.quant_type, c.bits, c.double_quant, c.blocksize, c.skip_modules) == (quant_type, 4, True, 64, ("lm_head",))
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            c.blocksize = 128
    assert (Int8Config().bits, Int8Config().threshold) == (8, 6.0)


def test_kept_parameters_leave_the_memory_mapped_weights_file(inputs):
    """safetensors maps the weights file; a kept embedding still pointing into it would keep resident every
    page the quantizer read, i.e. the fp32 weights beside their packed copies."""
    from safetensors.torch import load_file

    model_dir, _ = inputs
    state = load_file(model_dir / "model.safetensors")  # mmap-backed, as the train stage loads the pruned model
    model = tiny_llama(seed=0)
    model.load_state_dict(state, strict=False, assign=True)
    model.tie_weights()
    assert model.model.embed_tokens.weight.data_ptr() == state["model.embed_tokens.weight"].data_ptr()
    quantize_model(model, NF4Config())
    mapped = {t.untyped_storage().data_ptr() for t in state.values()}
    assert not any(p.untyped_storage().data_ptr() in mapped for p in model.parameters())
    assert torch.equal(model.model.embed_tokens.weight, state["model.embed_tokens.weight"])
    assert model.lm_head.weight is model.model.embed_tokens.weight  # still tied
