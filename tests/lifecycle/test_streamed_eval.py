"""Perplexity of the original (and of the original + its recovered adapter) streamed one decoder layer at a time
equals what the loaded model scores (docs/scaling.md, "Larger than memory")."""

import pytest
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoModelForCausalLM

from loram_core.evaluate import perplexity
from loram_core.streamed_eval import streamed_perplexity
from loram_core.testing.sharded import sharded_llama_config, write_sharded_llama

TOKENS = torch.randint(0, 128, (5 * 64 + 7,), generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    root = tmp_path_factory.mktemp("streamed")
    config = sharded_llama_config(layers=4, hidden=64, intermediate=96, heads=4, kv_heads=2)
    path = write_sharded_llama(root / "m", config, scaled=True, shard_bytes=50_000)
    torch.manual_seed(0)
    lora = get_peft_model(AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32),
                          LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "o_proj", "up_proj", "down_proj"]))
    with torch.no_grad():
        for name, p in lora.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    lora.save_pretrained(root / "adapter")
    return path, root / "adapter", config


def test_the_streamed_original_scores_what_the_loaded_original_scores(model):
    path, _, config = model
    loaded = perplexity(AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32), TOKENS, seq_len=64,
                        progress=False)
    streamed = streamed_perplexity(path, config, TOKENS, seq_len=64)
    assert streamed.tokens == loaded.tokens == 5 * 63
    assert streamed.nll == pytest.approx(loaded.nll, rel=1e-5)


def test_the_streamed_original_with_its_adapter_scores_what_peft_scores(model):
    path, adapter, config = model
    original = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    plain = perplexity(original, TOKENS, seq_len=64, progress=False)
    with_adapter = perplexity(PeftModel.from_pretrained(original, adapter), TOKENS, seq_len=64, progress=False)
    streamed = streamed_perplexity(path, config, TOKENS, seq_len=64, adapter=adapter)
    assert abs(with_adapter.nll - plain.nll) > 1e-3  # the adapter changes the scores
    assert streamed.nll == pytest.approx(with_adapter.nll, rel=1e-5)


PEAK = """
import sys, torch
from transformers import AutoConfig
from loram_core.memory import current_rss_mb, peak_rss_mb, reset_peak_rss
from loram_core.streamed_eval import streamed_perplexity
config = AutoConfig.from_pretrained(sys.argv[1])
tokens = torch.randint(0, 8192, (4 * 128,), generator=torch.Generator().manual_seed(0))
reset_peak_rss()
before = current_rss_mb()
streamed_perplexity(sys.argv[1], config, tokens, seq_len=128, batch_size=2)
print(peak_rss_mb() - before)
"""


def test_streaming_holds_one_layer_not_the_model(tmp_path):
    import os
    import subprocess
    import sys

    config = sharded_llama_config(layers=32, hidden=512, intermediate=1536, heads=8, kv_heads=8, vocab=8192)
    path = write_sharded_llama(tmp_path / "m", config, scaled=True, shard_bytes=8 << 20)  # fp32: 432 MiB
    size_mb = sum(p.stat().st_size for p in path.glob("*.safetensors")) / 2**20
    # its own process, with the allocator settings of every memory measurement (docs/architecture.md)
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_ARENA_MAX": "1", "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", PEAK, str(path)], capture_output=True, text=True, env=env, check=True)
    peak = float(out.stdout.strip().splitlines()[-1])
    assert size_mb > 400 and peak < size_mb / 2, (peak, size_mb)  # the loaded model alone is size_mb


def test_the_eval_stage_streams_the_original_when_asked_and_scores_the_same(inputs, tmp_path, capsys):
    import json

    from loram_core.cli.main import main
    from loram_core.testing.tiny import FAST_FLAGS

    model, data = inputs
    reports = {}
    for mode in ("off", "on"):
        assert main(["run", "--model", str(model), "--data", str(data), "--pruner", "random", "--no-merge", "--json",
                     "--stream-eval", mode, "--out", str(tmp_path / mode), *FAST_FLAGS]) == 0
        reports[mode] = json.loads(capsys.readouterr().out)
    assert reports["on"]["eval"]["streamed"] is True and "streamed" not in reports["off"]["eval"]
    for row in ("original", "loram", "pruned", "pruned_lora"):
        assert reports["on"]["ppl"][row] == pytest.approx(reports["off"]["ppl"][row], rel=1e-5), row


# a cap of 0.05 bends this tiny model's small logits enough to change the loss by 3e-3 (Gemma 2 uses 30)
@pytest.mark.parametrize("softcap", [None, 0.05], ids=["plain", "soft-capped logits"])
def test_a_model_mixing_sliding_and_full_attention_streams_each_layer_with_its_own_mask(softcap, tmp_path):
    # Gemma 3: five sliding-window layers, then a full-attention one, each type with its own mask and RoPE
    from loram_core.models.loading import load_config
    from loram_core.testing.tiny import save_tiny_model

    path = save_tiny_model(tmp_path / "gemma3", seed=3, model_type="gemma3_text", head_dim=16, sliding_window=8,
                           final_logit_softcapping=softcap)
    config = load_config(path)
    assert {"sliding_attention", "full_attention"} <= set(config.layer_types)
    tokens = torch.randint(0, 128, (4 * 32,), generator=torch.Generator().manual_seed(2))  # windows 4x the slide
    loaded = perplexity(AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32), tokens, seq_len=32,
                        progress=False)
    streamed = streamed_perplexity(path, config, tokens, seq_len=32)
    assert streamed.nll == pytest.approx(loaded.nll, rel=1e-5)
