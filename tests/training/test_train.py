"""LoRA training on the tiny random Llama: learning, PEFT-format output, checkpoints and exact resume."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from loram_core import memory
from loram_core.errors import LoramError
from loram_core.testing.tiny import tiny_llama
from loram_core.train import TrainConfig, TrainResult, attach_lora, train_lora
from loram_core.train.batches import step_rows


def _tokens(n: int = 2048) -> torch.Tensor:
    # A short repeating phrase: trivially learnable, so the loss must fall fast.
    return torch.tensor([3, 17, 42, 5, 99, 8, 61, 23, 77, 12, 4, 50] * (n // 12), dtype=torch.long)


def _cfg(**kw) -> TrainConfig:
    base = dict(steps=30, batch_size=4, seq_len=32, lr=1e-2, rank=4, alpha=8, warmup_steps=2, checkpoint_every=0)
    base.update(kw)
    return TrainConfig(**base)


def _adapter(path) -> dict[str, torch.Tensor]:
    return load_file(path / "adapter_model.safetensors")


def test_config_defaults_and_dict_roundtrip():
    cfg = TrainConfig()
    assert (cfg.steps, cfg.batch_size, cfg.seq_len, cfg.rank, cfg.alpha) == (100, 4, 128, 8, 16)
    assert cfg.target_modules == ("all-linear",)  # every Linear of the decoder, resolved per family (train/targets.py)
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    assert TrainConfig(lr=1).lr == 1.0 and TrainConfig(target_modules=["q_proj"]).target_modules == ("q_proj",)


@pytest.mark.parametrize(
    "field, value",
    [
        ("steps", 0), ("batch_size", -1), ("seq_len", 1.5), ("rank", 0), ("alpha", True), ("grad_accum", 0),
        ("lr", 0.0), ("lr", -1e-4), ("dropout", 1.0), ("dropout", -0.1), ("schedule", "step"),
        ("warmup_steps", -1), ("weight_decay", -0.1), ("seed", -1), ("checkpoint_every", -5),
        ("target_modules", ()), ("max_grad_norm", float("nan")),
    ],
)
def test_bad_config_raises_naming_field(field, value):
    with pytest.raises(LoramError, match=field):
        TrainConfig(**{field: value})


def test_unknown_config_key():
    with pytest.raises(LoramError, match="stpes"):
        TrainConfig.from_dict({"stpes": 3})


def test_attach_lora_uses_peft_and_is_seeded():
    import peft

    a = attach_lora(tiny_llama(0, layers=2), _cfg(seed=3))
    b = attach_lora(tiny_llama(0, layers=2), _cfg(seed=3))
    assert isinstance(a, peft.PeftModel)
    sa, sb = peft.get_peft_model_state_dict(a), peft.get_peft_model_state_dict(b)
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    names = {n for n, p in a.named_parameters() if p.requires_grad}
    assert names and all("lora_" in n for n in names)
    assert any(".mlp.down_proj.lora_A" in n for n in names)
    with pytest.raises(LoramError, match="not found"):
        attach_lora(tiny_llama(0, layers=2), _cfg(target_modules=("c_attn",)))


def test_batches_depend_only_on_seed_and_step():
    tokens = torch.arange(1000)
    cfg = _cfg(seed=1, grad_accum=2)
    rows = step_rows(tokens, 5, cfg)
    assert rows.shape == (8, 32)
    assert torch.equal(rows, step_rows(tokens, 5, cfg))
    assert not torch.equal(rows, step_rows(tokens, 6, cfg))
    assert torch.equal(rows[:, 1:] - rows[:, :-1], torch.ones(8, 31, dtype=torch.long))  # contiguous windows


def test_loss_decreases_and_adapter_loads_with_stock_peft(tmp_path):
    from peft import PeftModel

    model = attach_lora(tiny_llama(0, layers=2), _cfg())
    result = train_lora(model, _tokens(), _cfg(), adapter_dir=tmp_path / "adapter",
                        base_model_name_or_path="org/tiny", progress=False)
    assert isinstance(result, TrainResult)
    assert result.steps == 30 and len(result.losses) == 30 and result.resumed_from is None
    assert result.tokens == 30 * 4 * 32 and result.tokens_per_s > 0
    assert result.loss_first == result.losses[0] and result.loss_last == result.losses[-1]
    # The tiny model's frozen final norm and tied embeddings cap its logits near 1.3, so its loss floors
    # around 3.7 (from log(128) = 4.85); a clear, steady drop is what we can ask for.
    assert sum(result.losses[-5:]) / 5 < result.loss_first - 0.7
    assert sum(result.losses[-5:]) < sum(result.losses[10:15]) < sum(result.losses[:5])
    if memory.current_rss_mb() is not None:
        assert result.train_peak_rss_mb is not None and result.train_peak_rss_mb >= 0
    assert not model.training  # came in eval mode (tiny_llama), leaves in eval mode

    out = tmp_path / "adapter"
    assert {"adapter_config.json", "adapter_model.safetensors"} <= {p.name for p in out.iterdir()}
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "org/tiny" and config["r"] == 4
    device = next(model.parameters()).device  # accelerate moves the model to the GPU when there is one
    loaded = PeftModel.from_pretrained(tiny_llama(0, layers=2), out).eval().to(device)
    x = _tokens(64)[None].to(device)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x).logits, model(x).logits, atol=1e-5, rtol=0)


def test_plain_model_gets_lora_and_gradient_accumulation(tmp_path):
    base = tiny_llama(0, layers=2)
    result = train_lora(base, _tokens(), _cfg(steps=6, grad_accum=2, batch_size=2), adapter_dir=tmp_path / "a",
                        progress=False)
    assert result.tokens == 6 * 2 * 2 * 32
    assert (tmp_path / "a" / "adapter_model.safetensors").is_file()
    assert any("lora_A" in n for n, _ in base.named_parameters())  # attached in place


def test_checkpoints_reload_with_weights_only(tmp_path):
    cfg = _cfg(steps=6, checkpoint_every=2)
    train_lora(tiny_llama(0, layers=2), _tokens(), cfg, adapter_dir=tmp_path / "a",
               checkpoint_dir=tmp_path / "ck", progress=False)
    kept = sorted(p.name for p in (tmp_path / "ck").iterdir())
    assert kept == ["step-4", "step-6"]  # only the last two
    ck = tmp_path / "ck" / "step-4"
    assert {"adapter_config.json", "adapter_model.safetensors", "optimizer.pt", "scheduler.pt", "state.json"} <= {
        p.name for p in ck.iterdir()
    }
    opt = torch.load(ck / "optimizer.pt", weights_only=True)
    sched = torch.load(ck / "scheduler.pt", weights_only=True)
    assert opt["state"] and sched["last_epoch"] == 4
    state = json.loads((ck / "state.json").read_text())
    assert state["step"] == 4 and len(state["losses"]) == 4 and state["config"]["steps"] == 6


def test_resume_equals_uninterrupted_run(tmp_path):
    cfg = _cfg(steps=8, checkpoint_every=4, grad_accum=2, batch_size=2, dropout=0.1)
    full = train_lora(tiny_llama(0, layers=2), _tokens(), cfg, adapter_dir=tmp_path / "full",
                      checkpoint_dir=tmp_path / "ck", progress=False)
    # Simulate a crash after step 4: the final adapter and the step-8 checkpoint never got written.
    shutil.copytree(tmp_path / "full", tmp_path / "reference")
    shutil.rmtree(tmp_path / "full")
    shutil.rmtree(tmp_path / "ck" / "step-8")
    resumed = train_lora(tiny_llama(0, layers=2), _tokens(), cfg, adapter_dir=tmp_path / "full",
                         checkpoint_dir=tmp_path / "ck", progress=False)
    assert resumed.resumed_from == 4
    assert resumed.losses == full.losses  # steps 5-8 recomputed bit for bit
    ref, got = _adapter(tmp_path / "reference"), _adapter(tmp_path / "full")
    assert ref.keys() == got.keys()
    for key in ref:
        assert torch.equal(ref[key], got[key]), key  # bit-identical, not merely close


def test_changed_config_does_not_resume(tmp_path):
    train_lora(tiny_llama(0, layers=2), _tokens(), _cfg(steps=4, checkpoint_every=2), adapter_dir=tmp_path / "a",
               checkpoint_dir=tmp_path / "ck", progress=False)
    again = train_lora(tiny_llama(0, layers=2), _tokens(), _cfg(steps=4, checkpoint_every=2, lr=5e-3),
                       adapter_dir=tmp_path / "a", checkpoint_dir=tmp_path / "ck", progress=False)
    assert again.resumed_from is None
    for step in ("step-2", "step-4"):  # the stale checkpoints were replaced by this config's
        assert json.loads((tmp_path / "ck" / step / "state.json").read_text())["config"]["lr"] == 5e-3
    # Finished run: resuming from the final checkpoint trains nothing and rewrites the same adapter.
    done = train_lora(tiny_llama(0, layers=2), _tokens(), _cfg(steps=4, checkpoint_every=2, lr=5e-3),
                      adapter_dir=tmp_path / "b", checkpoint_dir=tmp_path / "ck", progress=False)
    assert done.resumed_from == 4 and done.losses == again.losses and done.tokens_per_s == 0.0
    a, b = _adapter(tmp_path / "a"), _adapter(tmp_path / "b")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_bad_training_data(tmp_path):
    with pytest.raises(LoramError, match="fewer than seq_len"):
        train_lora(tiny_llama(0, layers=2), torch.arange(10), _cfg(), adapter_dir=tmp_path / "a", progress=False)
    with pytest.raises(LoramError, match="vocabulary"):
        train_lora(tiny_llama(0, layers=2), torch.full((100,), 500), _cfg(), adapter_dir=tmp_path / "a",
                   progress=False)
    with pytest.raises(LoramError, match="1-D"):
        train_lora(tiny_llama(0, layers=2), torch.zeros(2, 64, dtype=torch.long), _cfg(),
                   adapter_dir=tmp_path / "a", progress=False)


@pytest.mark.parametrize(("model_type", "leaves"), [
    ("llama", ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")),
    ("phi3", ("o_proj", "qkv_proj", "gate_up_proj", "down_proj")),  # the order Phi3Attention defines them
    ("gpt2", ("c_attn", "c_proj", "c_fc")),
])
def test_all_linear_names_every_linear_of_the_family_but_the_head(model_type, leaves):
    from loram_core.train.targets import target_leaves

    model = tiny_llama(0, layers=2, model_type=model_type)
    assert target_leaves(model, ("all-linear",)) == leaves
    assert target_leaves(model.config, ("all-linear",)) == leaves
    assert target_leaves(model, ("q_proj",)) == ("q_proj",)
    with pytest.raises(LoramError, match="'all-linear' stands alone"):
        target_leaves(model, ("all-linear", "q_proj"))
