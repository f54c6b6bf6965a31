"""A tiny llama GGUF written in code (F32, 2 layers, byte-level BPE vocabulary), for the conversion tests.

It is laid out as llama.cpp's converter writes one: HF-shaped arrays under GGUF tensor names, q/k rows
permuted (transformers undoes that on load), no ``output.weight`` so the embeddings are tied.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

LAYERS, HIDDEN, FFN, HEADS, KV_HEADS = 2, 64, 128, 4, 2
MERGES = ["Ġ t", "h e", "Ġt he", "Ġ a", "i n", "o n", "e r", "a t"]


def _permute(weights: np.ndarray, heads: int) -> np.ndarray:
    """llama.cpp's rotary layout for q/k rows (convert_hf_to_gguf.py's ``LlamaModel.permute``)."""
    return weights.reshape(heads, 2, weights.shape[0] // heads // 2, *weights.shape[1:]).swapaxes(1, 2).reshape(
        weights.shape)


def _vocab() -> tuple[list[str], list[int]]:
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    tokens = list(bytes_to_unicode().values()) + ["".join(m.split()) for m in MERGES] + ["<|endoftext|>"]
    return tokens, [1] * (len(tokens) - 1) + [3]  # 1 normal, 3 control


def write_tiny_gguf(path: Path, seed: int = 0) -> Path:
    """Write the model to ``path`` (a ``.gguf`` file) and return it."""
    import gguf

    tokens, token_types = _vocab()
    vocab = len(tokens)
    rng = np.random.default_rng(seed)

    def weight(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.05).astype(np.float32)

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny")
    writer.add_block_count(LAYERS)
    writer.add_context_length(128)
    writer.add_embedding_length(HIDDEN)
    writer.add_feed_forward_length(FFN)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(KV_HEADS)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types(token_types)
    writer.add_token_merges(MERGES)
    writer.add_bos_token_id(vocab - 1)
    writer.add_eos_token_id(vocab - 1)

    head_dim = HIDDEN // HEADS
    writer.add_tensor("token_embd.weight", weight(vocab, HIDDEN))
    writer.add_tensor("output_norm.weight", 1 + weight(HIDDEN))
    for i in range(LAYERS):
        blk = f"blk.{i}."
        writer.add_tensor(blk + "attn_norm.weight", 1 + weight(HIDDEN))
        writer.add_tensor(blk + "attn_q.weight", _permute(weight(HIDDEN, HIDDEN), HEADS))
        writer.add_tensor(blk + "attn_k.weight", _permute(weight(KV_HEADS * head_dim, HIDDEN), KV_HEADS))
        writer.add_tensor(blk + "attn_v.weight", weight(KV_HEADS * head_dim, HIDDEN))
        writer.add_tensor(blk + "attn_output.weight", weight(HIDDEN, HIDDEN))
        writer.add_tensor(blk + "ffn_norm.weight", 1 + weight(HIDDEN))
        writer.add_tensor(blk + "ffn_gate.weight", weight(FFN, HIDDEN))
        writer.add_tensor(blk + "ffn_up.weight", weight(FFN, HIDDEN))
        writer.add_tensor(blk + "ffn_down.weight", weight(HIDDEN, FFN))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
