"""QLoRAM training: LoRA over the NF4 pruned model learns, only the adapter trains, the 4-bit base stays put."""

import bitsandbytes as bnb
import peft
import torch
from peft.tuners.lora.bnb import Linear4bit as LoraLinear4bit

from loram_core.cli.main import main
from loram_core.plan.apply import apply_plan
from loram_core.plan.serialize import load_plan
from loram_core.testing.tiny import FAST_FLAGS, tiny_llama
from loram_core.train import TrainConfig, train_lora
from loram_plugin_bnb import quantize_model
from loram_plugin_bnb.config import NF4Config


def _tokens(n: int = 2048) -> torch.Tensor:
    # a short repeating phrase: trivially learnable, so the loss must fall
    return torch.tensor([3, 17, 42, 5, 99, 8, 61, 23, 77, 12, 4, 50] * (n // 12), dtype=torch.long)


def test_lora_over_an_nf4_pruned_model_learns_and_leaves_the_base_as_it_was(inputs, tmp_path):
    model_dir, data = inputs
    run = tmp_path / "run"
    assert main(["prune", str(run), "--model", str(model_dir), "--data", str(data), "--pruner", "magnitude",
                 "--ratio", "0.5", *FAST_FLAGS]) == 0
    model = apply_plan(tiny_llama(seed=0), load_plan(run / "plan"))  # the same weights as the saved tiny model
    assert model.model.layers[4].mlp.gate_proj.weight.shape == (48, 64)  # pruned: half the MLP channels
    quantize_model(model, NF4Config())
    packed = {m: m.weight.data.clone() for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)}
    cfg = TrainConfig(steps=20, batch_size=4, seq_len=32, lr=1e-2, rank=4, alpha=8, warmup_steps=2, checkpoint_every=0)
    result = train_lora(model, _tokens(), cfg, adapter_dir=tmp_path / "adapter", progress=False)

    losses = result.losses
    assert len(losses) == 20
    # measured: 4.78 -> 3.98 (mean of the first and last five steps)
    assert losses[-1] < losses[0] and sum(losses[-5:]) / 5 < 0.9 * sum(losses[:5]) / 5, losses
    wrapped = [m for m in model.modules() if isinstance(m, peft.tuners.lora.LoraLayer)]
    assert len(wrapped) == 8 * 7 and all(isinstance(m, LoraLinear4bit) for m in wrapped)  # PEFT's bnb LoRA layers
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    # PEFT wrapped the very same quantized modules (base_layer) and training left their packed weights alone
    assert {m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)} == set(packed)
    assert all(torch.equal(m.weight.data, before) for m, before in packed.items())
