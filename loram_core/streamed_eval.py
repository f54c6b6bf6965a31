"""Perplexity of the original, or of the original + a recovered LoRA adapter, one decoder layer at a time from
its safetensors shards (``layer_stream``), so the original is never resident whole (docs/scaling.md, "Larger
than memory"). Held at once: one layer in fp32, the activations of the evaluated windows ``[windows, seq_len,
hidden]`` in fp32, and one batch's logits.

With an adapter, each layer is loaded and given ``scaling x B @ A`` in fp32 before it runs: the merged model's
weights, which the adapter on the original computes up to rounding."""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F

from loram_core.errors import LoramError
from loram_core.evaluate import Perplexity

Deltas = dict[str, tuple[torch.Tensor, torch.Tensor]]  # weight name -> (lora_A, lora_B), as lifecycle.merge reads them


def _add_deltas(deltas: Deltas, scaling: float):
    def visit(index: int, prefix: str, layer: torch.nn.Module, collect) -> None:
        for name, (lora_a, lora_b) in deltas.items():
            if name.startswith(prefix + "."):
                weight = layer.get_submodule(name[len(prefix) + 1:].removesuffix(".weight")).weight
                weight.data += (lora_b.float() @ lora_a.float()) * scaling

    return visit


@torch.no_grad()
def streamed_perplexity(model_path: str | Path, config, tokens: torch.Tensor, *, seq_len: int, batch_size: int = 4,
                        adapter: Path | None = None) -> Perplexity:
    """``evaluate.perplexity`` of the model at ``model_path`` (+ ``adapter``) on the same windows, streamed."""
    from loram_core.checkpoint import CheckpointReader
    from loram_core.layer_stream import stream_layers
    from loram_core.plan.apply import empty_model

    windows = tokens.numel() // seq_len
    if windows < 1:
        raise LoramError(f"perplexity: {tokens.numel()} evaluation tokens are fewer than one window of seq_len={seq_len}")
    ids = tokens[: windows * seq_len].to(torch.long).view(windows, seq_len)
    visit = None
    deltas: Deltas = {}
    if adapter is not None:
        from loram_core.lifecycle.merge import lora_deltas

        deltas, scaling = lora_deltas(Path(adapter))
        unstreamed = [n for n in deltas if not n.startswith("model.layers.")]
        if unstreamed:
            raise LoramError(f"{adapter} adapts {unstreamed[0]}, outside the decoder layers: it cannot be streamed")
        visit = _add_deltas(deltas, scaling)
    reader = CheckpointReader.open(model_path)
    skeleton = empty_model(config)
    hidden = stream_layers(skeleton, ids, stop=config.num_hidden_layers, batch_size=batch_size, reader=reader,
                           visit=visit)
    norm = reader.load_module(skeleton.model.norm, "model.norm")
    head = reader.get("lm_head.weight" if "lm_head.weight" in reader else "model.embed_tokens.weight")  # tied
    total = 0.0
    cap = getattr(config, "final_logit_softcapping", None)
    for first in range(0, windows, batch_size):
        logits = norm(hidden[first:first + batch_size]) @ head.T
        if cap:  # Gemma 2's final soft cap, as its forward applies it
            logits = torch.tanh(logits / cap) * cap
        batch = ids[first:first + batch_size]
        total += F.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)), batch[:, 1:].reshape(-1),
                                 reduction="sum").item()
    count = windows * (seq_len - 1)
    nll = total / count
    return Perplexity(ppl=math.exp(nll) if nll < 700 else math.inf, nll=nll, tokens=count)
