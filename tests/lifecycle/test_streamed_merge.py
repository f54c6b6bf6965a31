"""The merge stage streams the original tensor by tensor: the merged weights are PEFT's ``merge_and_unload``
bit for bit (fp32), in the original's dtype (bf16), and the original is never in memory whole."""

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM

from loram_core.checkpoint import load_weights
from loram_core.lifecycle.merge import write_merged
from loram_core.memory import current_rss_mb, peak_rss_mb, reset_peak_rss
from loram_core.testing.sharded import sharded_llama_config, write_sharded_llama


def adapter_for(model, folder, seed=0):
    """A LoRA adapter with non-zero B (a trained one's shape), saved the stock PEFT way."""
    torch.manual_seed(seed)
    lora = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"]))
    with torch.no_grad():
        for name, p in lora.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.02)
    lora.save_pretrained(folder)
    return lora


def test_the_streamed_merge_is_peft_merge_and_unload_bit_for_bit(tmp_path):
    config = sharded_llama_config(layers=3, hidden=64, intermediate=96, heads=4, kv_heads=2)
    path = write_sharded_llama(tmp_path / "m", config, scaled=True, shard_bytes=40_000)
    lora = adapter_for(AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32), tmp_path / "adapter")
    reference = lora.merge_and_unload().state_dict()
    write_merged(str(path), tmp_path / "adapter", tmp_path / "merged", config)
    merged = load_weights(tmp_path / "merged")
    assert set(merged) == set(load_weights(path))
    assert all(torch.equal(merged[k], reference[k]) for k in merged)
    # the original's shard layout, file for file, and its index
    shards = sorted(p.name for p in path.glob("model-*.safetensors"))
    assert len(shards) > 1 and sorted(p.name for p in (tmp_path / "merged").glob("model-*.safetensors")) == shards
    assert (tmp_path / "merged" / "model.safetensors.index.json").read_text() == (path / "model.safetensors.index.json").read_text()
    assert AutoModelForCausalLM.from_pretrained(tmp_path / "merged").dtype == torch.float32


def test_a_bf16_original_is_merged_in_fp32_and_stored_in_bf16(tmp_path):
    config = sharded_llama_config(layers=2, hidden=64, intermediate=96, heads=4, kv_heads=2)
    path = write_sharded_llama(tmp_path / "m", config, scaled=True, dtype=torch.bfloat16)
    adapter_for(AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32), tmp_path / "adapter")
    fp32 = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    from peft import PeftModel

    reference = PeftModel.from_pretrained(fp32, tmp_path / "adapter").merge_and_unload().state_dict()
    write_merged(str(path), tmp_path / "adapter", tmp_path / "merged", config)
    merged = load_weights(tmp_path / "merged")
    assert all(merged[k].dtype == torch.bfloat16 for k in merged)
    assert all(torch.equal(merged[k], reference[k].to(torch.bfloat16)) for k in merged)


def test_merging_holds_one_tensor_not_the_model(tmp_path):
    config = sharded_llama_config(layers=16, hidden=512, intermediate=1536, heads=8, kv_heads=8, vocab=8192)
    path = write_sharded_llama(tmp_path / "m", config, scaled=True, shard_bytes=8 << 20)
    size_mb = sum(p.stat().st_size for p in path.glob("*.safetensors")) / 2**20
    small = sharded_llama_config(layers=1, hidden=512, intermediate=1536, heads=8, kv_heads=8, vocab=8192)
    lora = adapter_for(AutoModelForCausalLM.from_config(small), tmp_path / "adapter")  # layer 0's factors only
    del lora
    reset_peak_rss()
    before = current_rss_mb()
    write_merged(str(path), tmp_path / "adapter", tmp_path / "merged", config)
    if before is not None:
        assert size_mb > 200 and peak_rss_mb() - before < size_mb / 4, (peak_rss_mb() - before, size_mb)
