"""Aligner ``continual-pretrain``: the paper's alignment stage, full-parameter training of the pruned model
on general text (causal-LM loss), with the perplexity on the mixture's test split before and after."""

from __future__ import annotations

import math
from typing import Any

import attrs
import torch

from loram_core.builtin.align.config import ContinualPretrainConfig
from loram_core.builtin.align.loop import make_accelerator, summary, train_full
from loram_core.builtin.align.mixture import MixtureData, load_mixture


def causal_lm_objective(model: torch.nn.Module, batch: torch.Tensor):
    """Next-token cross-entropy of the batch on itself (the model shifts the labels)."""
    return model(input_ids=batch, labels=batch, use_cache=False).loss, {}


class MixtureEval:
    """Perplexity on each corpus's test split (its share of ``eval_tokens``), combined per token."""

    def __init__(self, data: MixtureData, cfg, context):
        self.cfg, self.progress = cfg, bool(context.progress)
        self.parts = data.test_tokens(context.tokenizer, cfg.eval_tokens, cfg.eval_seq_len) if cfg.eval_tokens else []

    def __call__(self, model) -> tuple[float, dict[str, float], int] | None:
        from loram_core.evaluate import perplexity

        if not self.parts:
            return None
        nll, count, by_name = 0.0, 0, {}
        for name, tokens in self.parts:
            r = perplexity(model, tokens, seq_len=self.cfg.eval_seq_len, batch_size=4, progress=self.progress)
            nll += r.nll * r.tokens
            count += r.tokens
            by_name[name] = r.ppl
        mean = nll / count
        return (math.exp(mean) if mean < 700 else math.inf), by_name, count


@attrs.frozen
class ContinualPretrain:
    name: str = "continual-pretrain"
    config_cls: type = ContinualPretrainConfig
    description: str = ("full-parameter continual pre-training of the pruned model on a data mixture "
                        "(lm_head and embeddings frozen by default; the paper's alignment)")

    def objective(self, config, context):
        return causal_lm_objective

    def align(self, model: torch.nn.Module, config, context) -> dict[str, Any]:
        data = load_mixture(config.data, context.tokenizer, config.seq_len)
        evaluate = MixtureEval(data, config, context)
        accelerator = make_accelerator(config, context)
        home = next(model.parameters()).device
        objective = self.objective(config, context)
        model.to(accelerator.device)
        try:
            before = evaluate(model)
            run = train_full(model, config, context, data, objective, aligner=self.name, accelerator=accelerator)
            after = evaluate(model)
        finally:
            model.to(home)
            del objective  # a teacher model, for distill
        result: dict[str, Any] = {"dataset": data.mixture.spec(), "mixture": data.mixture.to_json(), **summary(run)}
        if before is not None and after is not None:
            result.update(ppl_before=before[0], ppl_after=after[0], ppl_tokens=before[2])
            if len(before[1]) > 1:
                result["ppl_by_dataset"] = {n: {"before": before[1][n], "after": after[1][n]} for n in before[1]}
        return result
