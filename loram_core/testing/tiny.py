"""Tiny random models (Llama family, Phi-3, GPT-2) and a character tokenizer, built in code (nothing is downloaded)."""

from __future__ import annotations

import string
from pathlib import Path

import torch


def tiny_llama_config(*, gqa: bool = True, layers: int = 8, model_type: str = "llama", **overrides):
    from transformers import AutoConfig

    values = dict(
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=layers,
        num_attention_heads=8,
        num_key_value_heads=4 if gqa else 8,
        head_dim=8,
        vocab_size=128,
        max_position_embeddings=256,
        tie_word_embeddings=True,
        attention_bias=model_type == "qwen2",
    )
    values.update(overrides)
    if model_type == "qwen2":
        values.pop("attention_bias")
    if model_type == "phi3":  # its defaults name token ids of Phi-3's 32k vocabulary
        values.update(pad_token_id=2, bos_token_id=1, eos_token_id=1)
    if model_type in ("mixtral", "qwen3_moe", "olmoe"):  # 4 experts, 2 per token
        experts = "num_local_experts" if model_type == "mixtral" else "num_experts"
        values = {experts: 4, "num_experts_per_tok": 2, "pad_token_id": 2, "bos_token_id": 1, "eos_token_id": 1,
                  **({"moe_intermediate_size": values["intermediate_size"]} if model_type == "qwen3_moe" else {}),
                  **values}
        values.pop("attention_bias", None)
    if model_type == "gpt2":  # GPT-2's own names; multi-head attention, head width hidden / heads
        for key in ("num_key_value_heads", "head_dim", "attention_bias"):
            values.pop(key, None)
        values["n_inner"] = values.pop("intermediate_size")
        values.update(bos_token_id=1, eos_token_id=1)
    return AutoConfig.for_model(model_type, **values)


def tiny_llama(seed: int = 0, **kwargs):
    """A random ``*ForCausalLM`` in fp32, deterministic for ``seed``."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(tiny_llama_config(**kwargs), dtype=torch.float32)
    return model.eval()


def tiny_tokenizer():
    """A character-level fast tokenizer over printable ASCII (ids < 128), with eos/pad/unk."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<unk>", "<eos>", "<pad>"]
    chars = [c for c in string.printable if c not in "\x0b\x0c"]
    vocab = {tok: i for i, tok in enumerate(specials + chars)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(pattern="", behavior="isolated")
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", eos_token="<eos>", pad_token="<pad>"
    )


def save_tiny_model(path: str | Path, seed: int = 0, **kwargs) -> Path:
    """Write a tiny model and its tokenizer as a stock Hugging Face folder."""
    path = Path(path)
    tiny_llama(seed=seed, **kwargs).save_pretrained(path)
    tiny_tokenizer().save_pretrained(path)
    return path


# A few seconds of every stage on the tiny model: the flags the CLI tests share.
FAST_FLAGS = ("--steps", "6", "--batch-size", "2", "--seq-len", "32", "--eval-seq-len", "64", "--eval-tokens", "1024",
              "--checkpoint-every", "3", "--no-progress")


def write_tiny_inputs(root: str | Path, **model_options) -> tuple[Path, Path]:
    """A tiny model folder (GQA Llama unless ``model_options`` say otherwise, e.g. ``model_type="gpt2"``) and a
    small repetitive text under ``root``: (model folder, data file)."""
    root = Path(root)
    model = save_tiny_model(root / "model", **{"gqa": True, **model_options})
    lines = [f"{w} said the {v} to the {w} of {v}." for w in ("king", "queen", "duke") for v in ("night", "sea", "crown")]
    data = root / "data.txt"
    data.write_text("\n\n".join(" ".join(lines[(i + j) % 9] for j in range(30)) for i in range(60)))
    return model, data


def peft_and_merged_logits(model: Path, run: Path, ids=None):
    """Logits of the original without and with the run's recovered adapter (stock ``PeftModel``), and of
    ``merged/``: what a user gets from the adapter either way."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    ids = torch.arange(40).reshape(2, 20) % 128 if ids is None else ids
    original = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32).eval()
    with torch.no_grad():
        untuned = original(input_ids=ids).logits
        tuned = PeftModel.from_pretrained(original, str(Path(run) / "adapter")).eval()(input_ids=ids).logits
        merged = AutoModelForCausalLM.from_pretrained(Path(run) / "merged", dtype=torch.float32).eval()(input_ids=ids).logits
    return untuned, tuned, merged
