"""Stage eval: held-out perplexity for the report's four rows (docs/architecture.md, "The run report")."""

from __future__ import annotations

import math

from loram_core.errors import warn
from loram_core.lifecycle.resources import Resources
from loram_core.lifecycle.rundir import RunDir, stage_key
from loram_core.lifecycle.variants import model_variants
from loram_core.placement import Placement


def run_eval(run: RunDir, res: Resources) -> dict:
    from loram_core.evaluate import perplexity, response_perplexity, up_to

    s = res.settings
    upstream = [(run.record(st) or {}).get("key") for st in ("prune", "align", "train", "recover")]
    placement = Placement.from_settings(s)
    key = stage_key("eval", upstream, s.data_settings(), s.eval_tokens, s.eval_seq_len, res.model_path, placement.dtype_name)
    done = run.done("eval", key)
    if done:
        return done
    if res.examples is None:  # text: every token of windows of --eval-seq-len
        tokens = res.test_tokens
        score = lambda model: perplexity(model, tokens, seq_len=s.eval_seq_len, progress=res.progress)  # noqa: E731
        scored = {"scored": "all tokens", "seq_len": s.eval_seq_len,
                  "tokens": (tokens.numel() // s.eval_seq_len) * (s.eval_seq_len - 1)}
    else:  # examples: the held-out responses, prompts as context (as far as --eval-tokens reaches)
        examples = up_to(res.examples.test or res.examples.validation, s.eval_tokens)
        score = lambda model: response_perplexity(model, examples, progress=res.progress)  # noqa: E731
        scored = {"scored": "responses", "examples": len(examples), "tokens": sum(e.trained for e in examples)}
    rows: dict[str, float] = {}
    losses: dict[str, float] = {}  # mean NLL per scored token, nats

    def measure(name: str, model) -> None:
        result = score(model)
        rows[name], losses[name] = result.ppl, result.nll

    for name, model in model_variants(run, res):
        measure(name, model)
    overflowed = [f"{name} {value}" for name, value in rows.items() if not math.isfinite(value)]
    if overflowed:
        warn(f"perplexity not finite ({', '.join(overflowed)}): the model's predictions overflow (diverged training, "
             f"or a dtype too narrow for it); a recovered adapter with it is registered as 'diverged'")
    return run.finish("eval", key, {"ppl": rows, "loss": losses, "eval": {"dataset": res.data_name, "split": "test", **scored}})

